//! The adaptive methods against everything else in a cell: every adaptive method paired by
//! seed with every fixed function and with every other adaptive method, and a table of what
//! each method costs (parameters added in training and at inference, the training step
//! relative to ReLU's, whether the network it leaves is a plain MLP).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use rand_chacha::ChaCha8Rng;

use crate::grid::store::ResultRow;
use crate::report::stats::{
    bootstrap_mean_ci, holm_some, mean, p_value, paired_t_p, probability_of_improvement,
};
use clap::ValueEnum;

use crate::run::config::DatasetName;
use crate::run::method::Method;
use crate::run::mnist1d::Mnist1dArgs;
use crate::run::net::{self, NetName};

/// One method minus another within a cell, paired by seed (runs with one seed share the split
/// and the initial linear weights).
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The cell's label (architecture and varying settings).
    pub cell: String,
    pub method: String,
    pub against: String,
    pub seeds: usize,
    pub mean_diff: f64,
    pub low: f64,
    pub high: f64,
    /// The share of seeds in which `method` is better.
    pub p_improvement: f64,
    /// The paired t-test's two-sided p, and that p adjusted by Holm over all pairs of the cell.
    pub t_p: Option<f64>,
    pub holm_p: Option<f64>,
}

/// What a method costs in a cell.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCost {
    pub cell: String,
    pub method: String,
    /// Parameters beyond the linear layers while training, and in the network it leaves.
    pub params_training: usize,
    pub params_inference: usize,
    /// Mean epoch time over ReLU's in the cell; `None` where either trained in a cohort
    /// (sharing its wall time) or the cell has no ReLU runs.
    pub step_vs_relu: Option<f64>,
    pub plain_mlp: bool,
}

/// The parameters of the linear and convolution layers of a row's network: its named net, or
/// an MLP of its widths ("512-256-128-64"), on its data set (MNIST-1D made with the arguments
/// of its `mnist1d` label).
fn linear_params(r: &ResultRow) -> Option<usize> {
    let args = Mnist1dArgs::from_label(&r.mnist1d).ok()?;
    let input = DatasetName::from_str(&r.dataset, true)
        .ok()?
        .input_shape(&args);
    let layers = match NetName::from_name(&r.net) {
        Some(net) => net.layers(),
        None => net::mlp(
            &r.widths
                .split('-')
                .map(|w| w.parse().ok())
                .collect::<Option<Vec<usize>>>()?,
        ),
    };
    Some(net::product_params(&net::plan(&layers, &input).ok()?))
}

fn adaptive(method: &str) -> Option<Method> {
    Method::from_name(method).filter(|m| m.is_adaptive())
}

/// Reports' order of methods: fixed functions by id, then the adaptive methods as
/// [`Method::ADAPTIVE`] lists them, then names this build does not know.
pub fn method_order(method: &str) -> (usize, usize) {
    match Method::from_name(method) {
        Some(Method::Baseline(a)) => (0, a.id()),
        Some(m) => (
            1,
            Method::ADAPTIVE.iter().position(|a| *a == m).unwrap_or(0),
        ),
        None => (2, 0),
    }
}

/// The cell's methods in [`method_order`].
fn ordered<'m>(by_method: &'m BTreeMap<String, Vec<&ResultRow>>) -> Vec<&'m String> {
    let mut methods: Vec<&String> = by_method.keys().collect();
    methods.sort_by_key(|m| method_order(m));
    methods
}

/// The pairs of one cell (`by_method`: the cell's runs by method): each adaptive method, in
/// [`Method::ADAPTIVE`]'s order, against every fixed function, then against the adaptive
/// methods after it.
pub fn pairs(
    cell: &str,
    by_method: &BTreeMap<String, Vec<&ResultRow>>,
    rng: &mut ChaCha8Rng,
) -> Vec<Pair> {
    let methods = ordered(by_method);
    let by_seed = |m: &str| -> BTreeMap<u64, f64> {
        by_method[m]
            .iter()
            .filter_map(|r| Some((r.seed, r.test_acc?)))
            .collect()
    };
    let mut out = Vec::new();
    for (i, method) in methods.iter().enumerate() {
        if adaptive(method).is_none() {
            continue;
        }
        let fixed = methods.iter().filter(|m| adaptive(m).is_none());
        for against in fixed.chain(&methods[i + 1..]) {
            let (mine, theirs) = (by_seed(method), by_seed(against));
            let diffs: Vec<f64> = mine
                .iter()
                .filter_map(|(seed, a)| Some(a - theirs.get(seed)?))
                .collect();
            if diffs.is_empty() {
                continue;
            }
            let (low, high) = bootstrap_mean_ci(&diffs, rng);
            out.push(Pair {
                cell: cell.to_string(),
                method: (*method).clone(),
                against: (*against).clone(),
                seeds: diffs.len(),
                mean_diff: mean(&diffs),
                low,
                high,
                p_improvement: probability_of_improvement(&diffs),
                t_p: paired_t_p(&diffs),
                holm_p: None,
            });
        }
    }
    let ps: Vec<Option<f64>> = out.iter().map(|p| p.t_p).collect();
    for (pair, adjusted) in out.iter_mut().zip(holm_some(&ps)) {
        pair.holm_p = adjusted;
    }
    out
}

/// What each method of one cell costs.
pub fn costs(cell: &str, by_method: &BTreeMap<String, Vec<&ResultRow>>) -> Vec<MethodCost> {
    let alone = |rs: &[&ResultRow]| rs.iter().all(|r| r.cohort_models.unwrap_or(1) == 1);
    let seconds = |rs: &[&ResultRow]| -> Option<f64> {
        let v: Vec<f64> = rs.iter().filter_map(|r| r.epoch_seconds).collect();
        (alone(rs) && !v.is_empty()).then(|| mean(&v))
    };
    let relu = by_method.get("relu").and_then(|rs| seconds(rs));
    ordered(by_method)
        .into_iter()
        .map(|method| {
            let runs = &by_method[method];
            let added = runs
                .iter()
                .find_map(|r| Some(r.n_params? - linear_params(r)?))
                .unwrap_or(0);
            let plain = Method::from_name(method).is_none_or(Method::leaves_plain_mlp);
            MethodCost {
                cell: cell.to_string(),
                method: method.clone(),
                params_training: added,
                params_inference: if plain { 0 } else { added },
                step_vs_relu: seconds(runs).zip(relu).map(|(s, r)| s / r),
                plain_mlp: plain,
            }
        })
        .collect()
}

fn pct(v: f64) -> String {
    format!("{:+.2}", 100.0 * v)
}

/// One method's accuracy in one column of the table at a glance.
#[derive(Clone, Debug, PartialEq)]
pub struct GlanceEntry {
    /// The method and the values of the varying settings only some methods read
    /// (`smartmixed tau=1`).
    pub row: String,
    /// The architecture and the values of the varying settings every method reads
    /// (`arch 3 dataset=fashion-mnist`).
    pub column: String,
    /// Where the row sorts: by [`method_order`]; within a method in the order the entries come
    /// (compare's cells are in order of their settings' values, numbers as numbers).
    pub method_order: (usize, usize),
    pub seeds: usize,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// The table at a glance: one row per method (per value of the settings only it reads), one
/// column per architecture and data set, in the order of `entries`' first appearance; the best
/// mean of each column in bold. Entries repeated (a baseline serves several cells) count once.
pub fn write_glance(md: &mut String, entries: &[GlanceEntry]) -> fmt::Result {
    let mut columns: Vec<&str> = Vec::new();
    let mut rows: Vec<((usize, usize), &str)> = Vec::new();
    let mut table: BTreeMap<(&str, &str), &GlanceEntry> = BTreeMap::new();
    for e in entries {
        if !columns.contains(&e.column.as_str()) {
            columns.push(&e.column);
        }
        if !rows.iter().any(|(_, r)| *r == e.row) {
            rows.push((e.method_order, &e.row));
        }
        table.entry((&e.row, &e.column)).or_insert(e);
    }
    rows.sort_by_key(|(order, _)| *order);
    let best: Vec<f64> = columns
        .iter()
        .map(|c| {
            table
                .iter()
                .filter(|((_, col), _)| col == c)
                .map(|(_, e)| e.mean)
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    writeln!(md, "## At a glance\n")?;
    writeln!(
        md,
        "Test accuracy %, mean over seeds [95 % interval] (seeds); per column the best mean in \
         bold. Differences are in the paired tables below, not here: intervals of two methods \
         that overlap can still differ clearly seed by seed.\n"
    )?;
    let heads: String = columns.iter().map(|c| format!(" {c} |")).collect();
    writeln!(md, "| method |{heads}")?;
    writeln!(md, "|---|{}", "---|".repeat(columns.len()))?;
    for (_, row) in rows {
        let mut line = format!("| {row} |");
        for (column, best) in columns.iter().zip(&best) {
            let entry = table.get(&(row, *column)).filter(|e| e.seeds > 0);
            let cell = entry.map_or("-".to_string(), |e| {
                let mean = format!("{:.2}", 100.0 * e.mean);
                let mean = if e.mean == *best {
                    format!("**{mean}**")
                } else {
                    mean
                };
                format!(
                    "{mean} [{:.2}, {:.2}] ({})",
                    100.0 * e.low,
                    100.0 * e.high,
                    e.seeds
                )
            });
            line.push_str(&format!(" {cell} |"));
        }
        writeln!(md, "{line}")?;
    }
    writeln!(md)
}

/// The report's section on the adaptive methods: the cost table, then the pairs.
pub fn write_section(
    md: &mut String,
    costs: &[MethodCost],
    pairs: &[Pair],
    accuracy: &dyn Fn(&str, &str) -> Option<String>,
) -> fmt::Result {
    writeln!(md, "\n## The methods side by side\n")?;
    writeln!(
        md,
        "Test accuracy (mean over seeds, 95 % interval); parameters each method adds to the \
         linear layers while training and in the network it leaves; its mean epoch time over \
         ReLU's in the same cell (runs trained alone only; a cohort shares its wall time).\n"
    )?;
    writeln!(
        md,
        "| cell | method | test acc % | added in training | added at inference | epoch time vs ReLU | plain MLP |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for c in costs {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.cell,
            c.method,
            accuracy(&c.cell, &c.method).unwrap_or_else(|| "-".into()),
            c.params_training,
            c.params_inference,
            c.step_vs_relu.map_or("-".into(), |r| format!("{r:.2}x")),
            if c.plain_mlp { "yes" } else { "no" }
        )?;
    }
    writeln!(
        md,
        "\n## Adaptive methods paired by seed (percentage points)\n"
    )?;
    writeln!(
        md,
        "Each adaptive method minus every fixed function and every other adaptive method of its \
         cell, seed by seed (one seed: the same split and initial linear weights); 95 % interval \
         of the mean difference (the pairs resampled); the share of seeds in which it is better; \
         the paired t-test's two-sided p and that p adjusted by Holm over all of the cell's \
         pairs in this table (a family larger than SmartMixed's table above, so the same pair \
         can hold there and not here).\n"
    )?;
    writeln!(
        md,
        "| cell | method | minus | seeds | mean | interval | better in | t-test p | Holm p |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for p in pairs {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | [{}, {}] | {:.0} % | {} | {} |",
            p.cell,
            p.method,
            p.against,
            p.seeds,
            pct(p.mean_diff),
            pct(p.low),
            pct(p.high),
            100.0 * p.p_improvement,
            p_value(p.t_p),
            p_value(p.holm_p)
        )?;
    }
    Ok(())
}

/// `pairs.csv` and `methods.csv` beside comparison.csv.
pub fn csv_files(costs: &[MethodCost], pairs: &[Pair]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "cell",
        "method",
        "minus",
        "seeds",
        "mean_diff",
        "low",
        "high",
        "p_improvement",
        "t_p",
        "holm_p",
    ])?;
    for p in pairs {
        w.write_record([
            p.cell.clone(),
            p.method.clone(),
            p.against.clone(),
            p.seeds.to_string(),
            p.mean_diff.to_string(),
            p.low.to_string(),
            p.high.to_string(),
            p.p_improvement.to_string(),
            p.t_p.map_or(String::new(), |v| v.to_string()),
            p.holm_p.map_or(String::new(), |v| v.to_string()),
        ])?;
    }
    let pairs_csv = w.into_inner()?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "cell",
        "method",
        "params_training",
        "params_inference",
        "epoch_time_vs_relu",
        "plain_mlp",
    ])?;
    for c in costs {
        w.write_record([
            c.cell.clone(),
            c.method.clone(),
            c.params_training.to_string(),
            c.params_inference.to_string(),
            c.step_vs_relu.map_or(String::new(), |r| r.to_string()),
            c.plain_mlp.to_string(),
        ])?;
    }
    Ok((pairs_csv, w.into_inner()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn row(method: &str, seed: u64, acc: f64, n_params: usize) -> ResultRow {
        let mut r: ResultRow = serde_json::from_value(serde_json::json!({
            "key": format!("{method}-{seed}"), "dataset": "mnist", "arch": null, "widths": "8",
            "depth": 1, "method": method, "seed": seed, "preset": "default", "epochs": 1,
            "phase1_epochs": 0, "lr": 0.001, "batch_size": 64, "tau": 0.3, "clamp": "10",
            "grad_clip": "1", "phase2_init": "warm", "loss": "logits",
            "eval_selection": "argmax", "split_seed": 42, "n_params": n_params,
            "best_epoch": 1, "val_loss": 0.1, "val_acc": 0.9, "test_acc": acc,
            "phase1_test_acc": null, "epoch_seconds": 1.0, "phase1_epoch_seconds": null,
            "phase2_epoch_seconds": null, "train_seconds": 1.0, "status": "ok",
            "device": "cpu", "threads": 1, "git_commit": "", "timestamp": ""
        }))
        .unwrap();
        r.epoch_seconds = Some(if method == "relu" { 2.0 } else { 3.0 });
        r
    }

    /// Pairs by seed, in the documented order; costs from n_params and the widths.
    #[test]
    fn pairs_and_costs_match_a_hand_computed_example() {
        // Widths 8: linear parameters (784 + 1) 8 + (8 + 1) 10 = 6370.
        let runs = [
            row("relu", 1, 0.90, 6370),
            row("relu", 2, 0.92, 6370),
            row("prelu", 1, 0.91, 6378),
            row("prelu", 2, 0.95, 6378),
            row("smartmixed", 1, 0.93, 6418),
            row("smartmixed", 2, 0.91, 6418),
        ];
        let mut by_method: BTreeMap<String, Vec<&ResultRow>> = BTreeMap::new();
        for r in &runs {
            by_method.entry(r.method.clone()).or_default().push(r);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = pairs("1", &by_method, &mut rng);
        let names: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.method.as_str(), p.against.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("smartmixed", "relu"),
                ("smartmixed", "prelu"),
                ("prelu", "relu")
            ]
        );
        // smartmixed - prelu: +0.02, -0.04; prelu - relu: +0.01, +0.03.
        assert!((p[1].mean_diff + 0.01).abs() < 1e-12 && p[1].p_improvement == 0.5);
        assert!((p[2].mean_diff - 0.02).abs() < 1e-12 && p[2].p_improvement == 1.0);
        assert!(p[2].low >= 0.01 - 1e-12 && p[2].high <= 0.03 + 1e-12);
        // prelu - relu: t = 0.02 / (0.01414 / sqrt 2) = 2 on one degree of freedom (a Cauchy
        // tail), p = 1 - 2 atan(2) / pi; Holm over the cell's three pairs.
        let cauchy_p = 1.0 - 2.0 * 2f64.atan() / std::f64::consts::PI;
        assert!(
            (p[2].t_p.unwrap() - cauchy_p).abs() < 1e-9,
            "{:?}",
            p[2].t_p
        );
        let ps: Vec<f64> = p.iter().map(|x| x.t_p.unwrap()).collect();
        let held: Vec<f64> = p.iter().map(|x| x.holm_p.unwrap()).collect();
        assert_eq!(held, crate::report::stats::holm(&ps));
        let c = costs("1", &by_method);
        let prelu = c.iter().find(|c| c.method == "prelu").unwrap();
        assert_eq!((prelu.params_training, prelu.params_inference), (8, 8));
        assert!(!prelu.plain_mlp && (prelu.step_vs_relu.unwrap() - 1.5).abs() < 1e-12);
        let sm = c.iter().find(|c| c.method == "smartmixed").unwrap();
        assert_eq!(
            (sm.params_training, sm.params_inference, sm.plain_mlp),
            (48, 0, true)
        );
    }

    /// Rows in method order, columns in order of appearance, a repeated entry once, the best
    /// mean per column in bold, and a dash where a method has no runs.
    #[test]
    fn the_glance_table_pivots_cells_into_methods_by_column() {
        let entry = |row: &str, method: &str, column: &str, mean: f64| GlanceEntry {
            row: row.into(),
            column: column.into(),
            method_order: method_order(method),
            seeds: 3,
            mean,
            low: mean - 0.001,
            high: mean + 0.001,
        };
        // Within a method the entries' order stands (numbers as compare sorts them: 3 before 10).
        let entries = [
            entry("smartmixed tau=3", "smartmixed", "arch 3", 0.9795),
            entry("relu", "relu", "arch 3", 0.9790),
            entry("smartmixed tau=10", "smartmixed", "arch 3", 0.9811),
            entry("relu", "relu", "arch 3", 0.9790),
            entry("relu", "relu", "arch 12", 0.9750),
            GlanceEntry {
                seeds: 0,
                ..entry("pau", "pau", "arch 12", f64::NAN)
            },
        ];
        let mut md = String::new();
        write_glance(&mut md, &entries).unwrap();
        let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            table,
            [
                "| method | arch 3 | arch 12 |",
                "|---|---|---|",
                "| relu | 97.90 [97.80, 98.00] (3) | **97.50** [97.40, 97.60] (3) |",
                "| smartmixed tau=3 | 97.95 [97.85, 98.05] (3) | - |",
                "| smartmixed tau=10 | **98.11** [98.01, 98.21] (3) | - |",
                "| pau | - | - |",
            ]
        );
    }
}
