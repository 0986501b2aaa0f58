//! `smartmixed compare`: baselines against SmartMixed across one or more sweep outputs, with
//! bootstrap confidence intervals over seeds and the reference's rank statistics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mixed_act::Activation;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::input_error;
use crate::run_files::write_atomic;
use crate::store::{ResultRow, ResultsStore, ShareRow};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 4000;

/// Percentile `p` of sorted values: the element at round(p * (n - 1)).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn resample_mean(values: &[f64], rng: &mut ChaCha8Rng) -> f64 {
    (0..values.len())
        .map(|_| values[rng.random_range(0..values.len())])
        .sum::<f64>()
        / values.len() as f64
}

/// 95 % percentile bootstrap interval of the mean (resampling the seeds with replacement).
pub fn bootstrap_mean_ci(values: &[f64], rng: &mut ChaCha8Rng) -> (f64, f64) {
    let mut means: Vec<f64> = (0..RESAMPLES).map(|_| resample_mean(values, rng)).collect();
    means.sort_by(f64::total_cmp);
    (percentile(&means, 0.025), percentile(&means, 0.975))
}

/// 95 % percentile bootstrap interval of mean(a) - mean(b), resampling each group apart.
pub fn bootstrap_diff_ci(a: &[f64], b: &[f64], rng: &mut ChaCha8Rng) -> (f64, f64) {
    let mut diffs: Vec<f64> = (0..RESAMPLES)
        .map(|_| resample_mean(a, rng) - resample_mean(b, rng))
        .collect();
    diffs.sort_by(f64::total_cmp);
    (percentile(&diffs, 0.025), percentile(&diffs, 0.975))
}

/// An architecture in reports: its depth (for ordering) and its label.
pub type ArchKey = (usize, String);
/// One share per function, in pool order.
pub type Shares = [f64; Activation::COUNT];

/// One (architecture, method) cell of the comparison: `comparison.csv` rows.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cell {
    pub arch: String,
    pub widths: String,
    pub depth: usize,
    pub method: String,
    pub seeds: usize,
    pub mean_test_acc: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub rank: usize,
    pub mean_epoch_seconds: f64,
    /// SmartMixed rows: the best baseline by mean, and SmartMixed minus it with its interval.
    pub best_baseline: Option<String>,
    pub diff_vs_best_baseline: Option<f64>,
    pub diff_low: Option<f64>,
    pub diff_high: Option<f64>,
    pub phase1_epoch_seconds: Option<f64>,
    pub phase2_epoch_seconds: Option<f64>,
}

/// Everything `compare` computes.
#[derive(Debug)]
pub struct Comparison {
    pub cells: Vec<Cell>,
    /// Per method: (first places, mean rank, mean reciprocal rank, architectures).
    pub ranks: BTreeMap<String, (usize, f64, f64, usize)>,
    /// Mean over architectures of SmartMixed's phase-1 and phase-2 epoch time / ReLU's.
    pub phase_time_ratios: Option<(f64, f64)>,
    /// Per architecture label and layer: mean share of each function over seeds.
    pub shares: BTreeMap<ArchKey, Vec<Shares>>,
}

/// How reports name an architecture: its id, or `widths 512-256` for explicit widths.
pub fn arch_label(arch: Option<u32>, widths: &str) -> String {
    arch.map_or_else(|| format!("widths {widths}"), |id| id.to_string())
}

/// Builds the comparison from result and share rows (rows with a status other than ok and
/// duplicate keys are left out).
pub fn compare(rows: &[ResultRow], share_rows: &[ShareRow], bootstrap_seed: u64) -> Comparison {
    let mut rng = ChaCha8Rng::seed_from_u64(bootstrap_seed);
    // (depth, widths, label) -> method -> rows
    let mut groups: BTreeMap<(usize, String, String), BTreeMap<String, Vec<&ResultRow>>> =
        BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for r in rows
        .iter()
        .filter(|r| r.status == "ok" && r.test_acc.is_some())
    {
        if seen.insert(r.key.clone()) {
            let label = arch_label(r.arch, &r.widths);
            groups
                .entry((r.depth, r.widths.clone(), label))
                .or_default()
                .entry(r.method.clone())
                .or_default()
                .push(r);
        }
    }
    let mut cells = Vec::new();
    let mut ranks: BTreeMap<String, (usize, f64, f64, usize)> = BTreeMap::new();
    let mut ratios = Vec::new();
    for ((depth, widths, label), methods) in &groups {
        let accs: BTreeMap<&String, Vec<f64>> = methods
            .iter()
            .map(|(m, rs)| (m, rs.iter().filter_map(|r| r.test_acc).collect()))
            .collect();
        let means: BTreeMap<&String, f64> = accs.iter().map(|(m, v)| (*m, mean(v))).collect();
        let rank_of = |m: &String| 1 + means.values().filter(|&&v| v > means[m]).count();
        let best_baseline = means
            .iter()
            .filter(|(m, _)| m.as_str() != "smartmixed")
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(m, _)| (*m).clone());
        let relu_seconds = methods.get("relu").map(|rs| {
            mean(
                &rs.iter()
                    .filter_map(|r| r.epoch_seconds)
                    .collect::<Vec<_>>(),
            )
        });
        for (method, rs) in methods {
            let values = &accs[method];
            let (ci_low, ci_high) = bootstrap_mean_ci(values, &mut rng);
            let rank = rank_of(method);
            let entry = ranks.entry(method.clone()).or_default();
            entry.0 += usize::from(rank == 1);
            entry.1 += rank as f64;
            entry.2 += 1.0 / rank as f64;
            entry.3 += 1;
            let secs = |f: fn(&ResultRow) -> Option<f64>| {
                let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                (!v.is_empty()).then(|| mean(&v))
            };
            let mut cell = Cell {
                arch: label.clone(),
                widths: widths.clone(),
                depth: *depth,
                method: method.clone(),
                seeds: values.len(),
                mean_test_acc: means[method],
                ci_low,
                ci_high,
                rank,
                mean_epoch_seconds: secs(|r| r.epoch_seconds).unwrap_or(f64::NAN),
                best_baseline: None,
                diff_vs_best_baseline: None,
                diff_low: None,
                diff_high: None,
                phase1_epoch_seconds: secs(|r| r.phase1_epoch_seconds),
                phase2_epoch_seconds: secs(|r| r.phase2_epoch_seconds),
            };
            if method == "smartmixed" {
                if let Some(best) = &best_baseline {
                    let (lo, hi) = bootstrap_diff_ci(values, &accs[best], &mut rng);
                    cell.best_baseline = Some(best.clone());
                    cell.diff_vs_best_baseline = Some(means[method] - means[best]);
                    (cell.diff_low, cell.diff_high) = (Some(lo), Some(hi));
                }
                if let (Some(relu), Some(p1), Some(p2)) = (
                    relu_seconds,
                    cell.phase1_epoch_seconds,
                    cell.phase2_epoch_seconds,
                ) {
                    ratios.push((p1 / relu, p2 / relu));
                }
            }
            cells.push(cell);
        }
    }
    // Within an architecture: the baselines in pool order, then SmartMixed.
    let order = |m: &str| {
        m.parse::<Activation>()
            .map_or(Activation::COUNT, |a| a.id())
    };
    cells.sort_by(|a, b| {
        (a.depth, &a.widths, &a.arch, order(&a.method)).cmp(&(
            b.depth,
            &b.widths,
            &b.arch,
            order(&b.method),
        ))
    });
    for v in ranks.values_mut() {
        v.1 /= v.3 as f64;
        v.2 /= v.3 as f64;
    }
    let phase_time_ratios = (!ratios.is_empty()).then(|| {
        let n = ratios.len() as f64;
        (
            ratios.iter().map(|r| r.0).sum::<f64>() / n,
            ratios.iter().map(|r| r.1).sum::<f64>() / n,
        )
    });

    let mut share_sums: BTreeMap<ArchKey, BTreeMap<usize, Vec<Shares>>> = BTreeMap::new();
    let ok_keys: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|r| r.status == "ok")
        .map(|r| r.key.as_str())
        .collect();
    for s in share_rows
        .iter()
        .filter(|s| ok_keys.contains(s.key.as_str()))
    {
        share_sums
            .entry((s.depth, arch_label(s.arch, &s.widths)))
            .or_default()
            .entry(s.layer)
            .or_default()
            .push([s.relu, s.sigmoid, s.tanh, s.leaky_relu, s.elu, s.selu]);
    }
    let shares = share_sums
        .into_iter()
        .map(|(arch, layers)| {
            let per_layer = layers
                .into_values()
                .map(|v| {
                    std::array::from_fn(|k| v.iter().map(|s| s[k]).sum::<f64>() / v.len() as f64)
                })
                .collect();
            (arch, per_layer)
        })
        .collect();
    Comparison {
        cells,
        ranks,
        phase_time_ratios,
        shares,
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

/// The report in Markdown.
pub fn render_markdown(c: &Comparison, sources: &[PathBuf]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# SmartMixed vs baselines\n");
    let _ = writeln!(
        md,
        "Sources: {}. Test accuracy in %, mean over seeds with a 95 % percentile bootstrap interval \
         ({RESAMPLES} resamples of the seeds); rank 1 = best mean. Only runs with status ok count.\n",
        sources.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(md, "## Per architecture (by depth)\n");
    let _ = writeln!(
        md,
        "| arch | widths | method | seeds | test acc | 95 % CI | rank | epoch s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for cell in &c.cells {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | [{}, {}] | {} | {:.1} |",
            cell.arch,
            cell.widths,
            cell.method,
            cell.seeds,
            pct(cell.mean_test_acc),
            pct(cell.ci_low),
            pct(cell.ci_high),
            cell.rank,
            cell.mean_epoch_seconds
        );
    }
    let _ = writeln!(
        md,
        "\n## SmartMixed minus the best baseline (percentage points)\n"
    );
    let _ = writeln!(
        md,
        "| arch | best baseline | difference | 95 % CI | verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for cell in c.cells.iter().filter(|c| c.diff_vs_best_baseline.is_some()) {
        let (d, lo, hi) = (
            cell.diff_vs_best_baseline.unwrap(),
            cell.diff_low.unwrap(),
            cell.diff_high.unwrap(),
        );
        let verdict = if lo > 0.0 {
            "SmartMixed better"
        } else if hi < 0.0 {
            "baseline better"
        } else {
            "no clear difference"
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:+.2} | [{:+.2}, {:+.2}] | {verdict} |",
            cell.arch,
            cell.best_baseline.as_deref().unwrap_or(""),
            100.0 * d,
            100.0 * lo,
            100.0 * hi
        );
    }
    let _ = writeln!(md, "\n## Across architectures\n");
    let _ = writeln!(
        md,
        "| method | first places | mean rank | mean reciprocal rank | architectures |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    let mut methods: Vec<_> = c.ranks.iter().collect();
    methods.sort_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
    for (m, (first, rank, mrr, n)) in methods {
        let _ = writeln!(md, "| {m} | {first} | {rank:.2} | {mrr:.3} | {n} |");
    }
    match c.phase_time_ratios {
        Some((p1, p2)) => {
            let _ = writeln!(
                md,
                "\nEpoch time relative to the ReLU baseline (mean over architectures): SmartMixed phase 1 \
                 {p1:.2}x, phase 2 {p2:.2}x."
            );
        }
        None => {
            let _ = writeln!(
                md,
                "\n(No architecture has both ReLU and SmartMixed runs: no epoch-time ratios.)"
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## SmartMixed's functions per layer (share of neurons, mean over seeds)\n"
    );
    let _ = writeln!(
        md,
        "| arch | layer | {} |",
        Activation::ALL.map(|a| a.name()).join(" | ")
    );
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(Activation::COUNT));
    for ((_, arch), layers) in &c.shares {
        for (l, s) in layers.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {arch} | {} | {} |",
                l + 1,
                s.map(|v| format!("{v:.2}")).join(" | ")
            );
        }
    }
    if let Some(finding) = paper_finding(c) {
        let _ = writeln!(md, "\n{finding}");
    }
    md
}

/// The paper's finding, tested on architectures of depth 2 or more: do first layers favour
/// ReLU / Leaky ReLU and last layers ELU / SELU?
fn paper_finding(c: &Comparison) -> Option<String> {
    let deep: Vec<&Vec<[f64; 6]>> = c
        .shares
        .iter()
        .filter(|((d, _), _)| *d >= 2)
        .map(|(_, l)| l)
        .collect();
    if deep.is_empty() {
        return None;
    }
    let n = deep.len() as f64;
    let rectifiers = |s: &[f64; 6]| s[0] + s[3];
    let exponentials = |s: &[f64; 6]| s[4] + s[5];
    let first_rect = deep.iter().map(|l| rectifiers(&l[0])).sum::<f64>() / n;
    let last_rect = deep
        .iter()
        .map(|l| rectifiers(l.last().unwrap()))
        .sum::<f64>()
        / n;
    let first_exp = deep.iter().map(|l| exponentials(&l[0])).sum::<f64>() / n;
    let last_exp = deep
        .iter()
        .map(|l| exponentials(l.last().unwrap()))
        .sum::<f64>()
        / n;
    let holds = first_rect > last_rect && last_exp > first_exp;
    Some(format!(
        "Paper's finding (early layers ReLU / Leaky ReLU, deep layers ELU / SELU), over {} architectures of \
         depth >= 2: ReLU + Leaky ReLU share {:.2} in the first layer vs {:.2} in the last; ELU + SELU {:.2} \
         first vs {:.2} last. {}",
        deep.len(),
        first_rect,
        last_rect,
        first_exp,
        last_exp,
        if holds { "The pattern holds here." } else { "The pattern does not hold here." }
    ))
}

/// The comparison of the results in `dirs` (any number of sweep outputs or shards of one).
pub fn compare_dirs(dirs: &[PathBuf], bootstrap_seed: u64) -> Result<Comparison> {
    let (mut rows, mut shares) = (Vec::new(), Vec::new());
    for dir in dirs {
        if !dir.join(crate::store::RESULTS_FILE).is_file() {
            return Err(input_error(format!(
                "{}: no results.csv (not a sweep output?)",
                dir.display()
            )));
        }
        let store = ResultsStore::open(dir)?;
        rows.extend(store.results()?);
        shares.extend(store.shares()?);
    }
    let comparison = compare(&rows, &shares, bootstrap_seed);
    if comparison.cells.is_empty() {
        return Err(input_error(
            "no finished runs (status ok) in the given directories",
        ));
    }
    Ok(comparison)
}

/// Reads every directory's results, writes comparison.md and comparison.csv into the first,
/// and prints the Markdown.
pub fn run(dirs: &[PathBuf], bootstrap_seed: u64) -> Result<()> {
    let comparison = compare_dirs(dirs, bootstrap_seed)?;
    let md = render_markdown(&comparison, dirs);
    let out: &Path = &dirs[0];
    write_atomic(&out.join("comparison.md"), md.as_bytes())?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    for cell in &comparison.cells {
        writer.serialize(cell)?;
    }
    write_atomic(
        &out.join("comparison.csv"),
        &writer.into_inner().context("encoding comparison.csv")?,
    )?;
    crate::print_stdout(&md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_bounds_on_a_hand_computed_example() {
        // Two seeds, 0.90 and 1.00: a resampled mean is 0.90, 0.95 or 1.00 with probabilities
        // 1/4, 1/2, 1/4, so the 2.5 % and 97.5 % points are 0.90 and 1.00.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(bootstrap_mean_ci(&[0.9, 1.0], &mut rng), (0.9, 1.0));
        // One value: a degenerate interval.
        assert_eq!(bootstrap_mean_ci(&[0.5], &mut rng), (0.5, 0.5));
        // Difference of {1, 1} and {0, 0}: always 1.
        assert_eq!(
            bootstrap_diff_ci(&[1.0, 1.0], &[0.0, 0.0], &mut rng),
            (1.0, 1.0)
        );
        // Same seed, same interval.
        let values = [0.97, 0.975, 0.981, 0.969, 0.978];
        let a = bootstrap_mean_ci(&values, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(
            a,
            bootstrap_mean_ci(&values, &mut ChaCha8Rng::seed_from_u64(1))
        );
        assert!(a.0 > 0.969 && a.1 < 0.981 && a.0 < mean(&values) && mean(&values) < a.1);
    }

    fn row(
        key: &str,
        arch: u32,
        depth: usize,
        method: &str,
        seed: u64,
        acc: f64,
        secs: f64,
    ) -> ResultRow {
        let sm = method == "smartmixed";
        ResultRow {
            key: key.into(),
            dataset: "mnist".into(),
            arch: Some(arch),
            widths: vec!["8"; depth].join("-"),
            depth,
            method: method.into(),
            seed,
            preset: "default".into(),
            epochs: 2,
            phase1_epochs: if sm { 1 } else { 0 },
            lr: 1e-3,
            batch_size: 8,
            tau: 0.3,
            clamp: "10".into(),
            grad_clip: "1".into(),
            phase2_init: "warm".into(),
            loss: "logits".into(),
            eval_selection: "argmax".into(),
            split_seed: 42,
            n_params: Some(10),
            best_epoch: Some(2),
            val_loss: Some(0.1),
            val_acc: Some(acc),
            test_acc: Some(acc),
            phase1_test_acc: sm.then_some(acc - 0.1),
            epoch_seconds: Some(secs),
            phase1_epoch_seconds: sm.then_some(2.0 * secs),
            phase2_epoch_seconds: sm.then_some(secs),
            train_seconds: Some(2.0 * secs),
            status: "ok".into(),
            device: "cpu".into(),
            threads: 2,
            git_commit: String::new(),
            timestamp: String::new(),
        }
    }

    #[test]
    fn ranks_differences_and_ratios_match_a_hand_computed_example() {
        // Arch 1: relu 0.90/0.92 (mean .91), elu .95/.95, smartmixed .96/.98 (mean .97).
        // Arch 2: relu .99/.99, elu .90/.90, smartmixed .94/.96 (mean .95). A failed run is ignored.
        let mut rows = vec![
            row("a", 1, 1, "relu", 1, 0.90, 1.0),
            row("b", 1, 1, "relu", 2, 0.92, 1.0),
            row("c", 1, 1, "elu", 1, 0.95, 2.0),
            row("d", 1, 1, "elu", 2, 0.95, 2.0),
            row("e", 1, 1, "smartmixed", 1, 0.96, 1.5),
            row("f", 1, 1, "smartmixed", 2, 0.98, 1.5),
            row("g", 2, 3, "relu", 1, 0.99, 2.0),
            row("h", 2, 3, "relu", 2, 0.99, 2.0),
            row("i", 2, 3, "elu", 1, 0.90, 2.0),
            row("j", 2, 3, "elu", 2, 0.90, 2.0),
            row("k", 2, 3, "smartmixed", 1, 0.94, 3.0),
            row("l", 2, 3, "smartmixed", 2, 0.96, 3.0),
        ];
        let mut failed = row("m", 2, 3, "smartmixed", 3, 0.10, 3.0);
        failed.status = "diverged (epoch 1)".into();
        rows.push(failed);
        let shares = vec![ShareRow {
            key: "k".into(),
            arch: Some(2),
            widths: "8-8-8".into(),
            depth: 3,
            seed: 1,
            layer: 1,
            width: 8,
            relu: 0.5,
            sigmoid: 0.0,
            tanh: 0.0,
            leaky_relu: 0.25,
            elu: 0.25,
            selu: 0.0,
        }];
        let c = compare(&rows, &shares, 0);
        let cell = |arch: &str, m: &str| {
            c.cells
                .iter()
                .find(|x| x.arch == arch && x.method == m)
                .unwrap()
                .clone()
        };
        assert!((cell("1", "smartmixed").mean_test_acc - 0.97).abs() < 1e-12);
        assert_eq!(
            (
                cell("1", "smartmixed").rank,
                cell("1", "elu").rank,
                cell("1", "relu").rank
            ),
            (1, 2, 3)
        );
        assert_eq!(
            (
                cell("2", "relu").rank,
                cell("2", "smartmixed").rank,
                cell("2", "elu").rank
            ),
            (1, 2, 3)
        );
        assert_eq!(
            cell("2", "smartmixed").seeds,
            2,
            "the diverged run is left out"
        );
        // SmartMixed - best baseline: arch 1 vs elu = +0.02, interval [0.01, 0.03] (the elu
        // mean is fixed; SmartMixed's resampled mean is .96, .97 or .98).
        let sm1 = cell("1", "smartmixed");
        assert_eq!(sm1.best_baseline.as_deref(), Some("elu"));
        assert!((sm1.diff_vs_best_baseline.unwrap() - 0.02).abs() < 1e-12);
        assert!(
            (sm1.diff_low.unwrap() - 0.01).abs() < 1e-12
                && (sm1.diff_high.unwrap() - 0.03).abs() < 1e-12
        );
        assert!((cell("2", "smartmixed").diff_vs_best_baseline.unwrap() + 0.04).abs() < 1e-12);
        // Ranks across architectures: smartmixed 1 and 2, relu 3 and 1, elu 2 and 3.
        assert_eq!(c.ranks["smartmixed"], (1, 1.5, 0.75, 2));
        assert_eq!(c.ranks["relu"], (1, 2.0, (1.0 / 3.0 + 1.0) / 2.0, 2));
        assert_eq!(c.ranks["elu"].0, 0);
        // Phase times over ReLU: arch 1 (3.0, 1.5) / 1.0, arch 2 (6.0, 3.0) / 2.0 -> (3.0, 1.5).
        let (p1, p2) = c.phase_time_ratios.unwrap();
        assert!((p1 - 3.0).abs() < 1e-12 && (p2 - 1.5).abs() < 1e-12);
        assert_eq!(
            c.shares[&(3, "2".to_string())][0],
            [0.5, 0.0, 0.0, 0.25, 0.25, 0.0]
        );
        let md = render_markdown(&c, &[PathBuf::from("x")]);
        assert!(
            md.contains("| 1 | elu | +2.00 | [+1.00, +3.00] | SmartMixed better |"),
            "{md}"
        );
    }
}
