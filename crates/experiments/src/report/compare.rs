//! `smartmixed compare`: baselines against SmartMixed across one or more sweep outputs, with
//! bootstrap confidence intervals over seeds and the reference's rank statistics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mixed_act::Activation;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::input_error;
use crate::grid::store::{ResultRow, ResultsStore, ShareRow};
use crate::run::files::write_atomic;
use crate::run::method::Method;

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

/// Share of pairs in which the first value is higher (ties count half): the probability of
/// improvement over seeds.
pub fn probability_of_improvement(diffs: &[f64]) -> f64 {
    let wins: f64 = diffs
        .iter()
        .map(|&d| match d.partial_cmp(&0.0) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Equal) => 0.5,
            _ => 0.0,
        })
        .sum();
    wins / diffs.len() as f64
}

/// Settings a comparison can be split by, in the order reports name them.
pub const CELL_SETTINGS: [&str; 14] = [
    "dataset",
    "preset",
    "epochs",
    "phase1_epochs",
    "lr",
    "batch_size",
    "tau",
    "clamp",
    "grad_clip",
    "phase2_init",
    "loss",
    "eval_selection",
    "pool",
    "split_seed",
];

/// A setting's value in a row, as the row writes it.
fn setting_value(r: &ResultRow, name: &str) -> String {
    match name {
        "dataset" => r.dataset.clone(),
        "preset" => r.preset.clone(),
        "epochs" => r.epochs.to_string(),
        "phase1_epochs" => r.phase1_epochs.to_string(),
        "lr" => r.lr.to_string(),
        "batch_size" => r.batch_size.to_string(),
        "tau" => r.tau.to_string(),
        "clamp" => r.clamp.clone(),
        "grad_clip" => r.grad_clip.clone(),
        "phase2_init" => r.phase2_init.clone(),
        "loss" => r.loss.clone(),
        "eval_selection" => r.eval_selection.clone(),
        "pool" => pool_label(&r.pool),
        "split_seed" => r.split_seed.to_string(),
        _ => unreachable!("not a cell setting: {name}"),
    }
}

/// A pool as reports show it: the paper's six, when they lead the list, as `paper` (`paper`,
/// `paper,gelu,silu`), which `--pool` reads back; other pools as listed.
pub fn pool_label(pool: &str) -> String {
    let paper = mixed_act::Pool::paper().to_string();
    match pool.strip_prefix(&paper) {
        Some("") => "paper".to_string(),
        Some(rest) if rest.starts_with(',') => format!("paper{rest}"),
        _ => pool.to_string(),
    }
}

/// Whether the row's method reads the setting (see `not_applicable` in results.csv).
fn applies(r: &ResultRow, name: &str) -> bool {
    !r.not_applicable.split_whitespace().any(|n| n == name)
}

/// What makes two rows the same run: architecture, method, seed and every setting the method
/// reads.
fn run_identity(r: &ResultRow) -> String {
    let mut id = format!(
        "{}|{}|{}|{}",
        arch_label(r.arch, &r.widths),
        r.widths,
        r.method,
        r.seed
    );
    for name in CELL_SETTINGS.iter().filter(|n| applies(r, n)) {
        id.push_str(&format!("|{name}={}", setting_value(r, name)));
    }
    id
}

/// The settings that take more than one value among the rows that read them.
pub fn varying_settings(rows: &[&ResultRow]) -> Vec<&'static str> {
    CELL_SETTINGS
        .into_iter()
        .filter(|name| {
            let mut values = rows
                .iter()
                .filter(|r| applies(r, name))
                .map(|r| setting_value(r, name));
            values
                .next()
                .is_some_and(|first| values.any(|v| v != first))
        })
        .collect()
}

/// A setting's value in a cell key: numbers order as numbers, before words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingValue(pub String);

impl Ord for SettingValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.0.parse::<f64>(), other.0.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.total_cmp(&b).then_with(|| self.0.cmp(&other.0)),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for SettingValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What a cell of the comparison is: an architecture (depth, widths, label) and the values of
/// the varying settings (`any` where only runs that do not read a setting are in the cell).
pub type CellKey = (usize, String, String, Vec<SettingValue>);

/// The value a cell shows for a setting no run of it reads.
pub const ANY: &str = "any";

/// An architecture in reports: its depth (for ordering) and its label (the architecture, and
/// the varying settings when there are any).
pub type ArchKey = (usize, String);
/// One share per function, by activation id (0 for functions outside the pool).
pub type Shares = [f64; Activation::COUNT];

/// One (architecture, settings, method) cell of the comparison: `comparison.csv` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub arch: String,
    pub widths: String,
    pub depth: usize,
    /// (setting, value) of every varying setting, in [`CELL_SETTINGS`] order.
    pub settings: Vec<(String, String)>,
    pub method: String,
    /// The settings this method does not read (results.csv's `not_applicable`): its runs
    /// serve every value of them.
    pub not_applicable: String,
    pub seeds: usize,
    pub mean_test_acc: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub rank: usize,
    pub mean_epoch_seconds: f64,
    /// SmartMixed rows: the best baseline by mean, and SmartMixed minus it with its interval
    /// (the two groups resampled apart).
    pub best_baseline: Option<String>,
    pub diff_vs_best_baseline: Option<f64>,
    pub diff_low: Option<f64>,
    pub diff_high: Option<f64>,
    pub phase1_epoch_seconds: Option<f64>,
    pub phase2_epoch_seconds: Option<f64>,
    /// Baseline rows: SmartMixed minus this baseline paired by seed (runs with one seed share
    /// the split and the initial weights): the number of pairs, the mean paired difference,
    /// its bootstrap interval and the share of seeds in which SmartMixed is better.
    pub paired_seeds: Option<usize>,
    pub paired_diff: Option<f64>,
    pub paired_low: Option<f64>,
    pub paired_high: Option<f64>,
    pub p_improvement: Option<f64>,
}

impl Cell {
    /// The cell's label: its architecture, then its settings.
    pub fn label(&self) -> String {
        settings_label(&self.arch, &self.settings)
    }

    /// `comparison.csv`'s columns and this cell's values (empty for none).
    fn csv_fields(&self) -> Vec<(String, String)> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let mut fields = vec![
            ("arch".to_string(), self.arch.clone()),
            ("widths".into(), self.widths.clone()),
            ("depth".into(), self.depth.to_string()),
        ];
        fields.extend(self.settings.iter().cloned());
        fields.extend([
            ("method".to_string(), self.method.clone()),
            ("not_applicable".into(), self.not_applicable.clone()),
            ("seeds".into(), self.seeds.to_string()),
            ("mean_test_acc".into(), self.mean_test_acc.to_string()),
            ("ci_low".into(), self.ci_low.to_string()),
            ("ci_high".into(), self.ci_high.to_string()),
            ("rank".into(), self.rank.to_string()),
            (
                "mean_epoch_seconds".into(),
                self.mean_epoch_seconds.to_string(),
            ),
            (
                "best_baseline".into(),
                self.best_baseline.clone().unwrap_or_default(),
            ),
            (
                "diff_vs_best_baseline".into(),
                opt(self.diff_vs_best_baseline),
            ),
            ("diff_low".into(), opt(self.diff_low)),
            ("diff_high".into(), opt(self.diff_high)),
            (
                "phase1_epoch_seconds".into(),
                opt(self.phase1_epoch_seconds),
            ),
            (
                "phase2_epoch_seconds".into(),
                opt(self.phase2_epoch_seconds),
            ),
            (
                "paired_seeds".into(),
                self.paired_seeds.map_or(String::new(), |n| n.to_string()),
            ),
            ("paired_diff".into(), opt(self.paired_diff)),
            ("paired_low".into(), opt(self.paired_low)),
            ("paired_high".into(), opt(self.paired_high)),
            ("p_improvement".into(), opt(self.p_improvement)),
        ]);
        fields
    }
}

/// `arch` followed by `name=value` of each setting (just `arch` when there are none).
pub fn settings_label(arch: &str, settings: &[(String, String)]) -> String {
    let mut label = arch.to_string();
    for (name, value) in settings {
        label.push_str(&format!(" {name}={value}"));
    }
    label
}

/// Everything `compare` computes.
#[derive(Debug)]
pub struct Comparison {
    /// The settings that vary in the inputs (each cell holds one value of each).
    pub varying: Vec<&'static str>,
    pub cells: Vec<Cell>,
    /// Per method: (first places, mean rank, mean reciprocal rank, cells).
    pub ranks: BTreeMap<String, (usize, f64, f64, usize)>,
    /// Mean over cells of SmartMixed's phase-1 and phase-2 epoch time / ReLU's.
    pub phase_time_ratios: Option<(f64, f64)>,
    /// Per SmartMixed cell and layer: mean share of each function over seeds.
    pub shares: BTreeMap<ArchKey, Vec<Shares>>,
    /// The functions some SmartMixed run's pool holds, in id order: the columns of the share
    /// tables and figures (the paper's six for runs over the default pool).
    pub functions: Vec<Activation>,
    /// Per SmartMixed cell, by activation id: whether its runs' pool holds the function (the
    /// share tables print `-` where it does not).
    pub held: BTreeMap<ArchKey, [bool; Activation::COUNT]>,
    /// Each SmartMixed run's key and the [`ArchKey`] of its cell (for per-run files).
    pub smartmixed_cells: BTreeMap<String, ArchKey>,
}

/// How reports name an architecture: its id, or `widths 512-256` for explicit widths.
pub fn arch_label(arch: Option<u32>, widths: &str) -> String {
    arch.map_or_else(|| format!("widths {widths}"), |id| id.to_string())
}

/// The cells of the comparison and the rows in each. A run that reads every varying setting
/// belongs to the one cell of its values; a baseline that does not read some of them (tau, say)
/// belongs to every cell that agrees with it on the rest, and to a cell of its own (`any` in
/// place of the unread values) only when no such cell exists.
fn cells_of<'a>(
    rows: &[&'a ResultRow],
    varying: &[&'static str],
) -> BTreeMap<CellKey, Vec<&'a ResultRow>> {
    let signature = |r: &ResultRow| -> Vec<Option<String>> {
        varying
            .iter()
            .map(|name| applies(r, name).then(|| setting_value(r, name)))
            .collect()
    };
    let arch_of = |r: &ResultRow| (r.depth, r.widths.clone(), arch_label(r.arch, &r.widths));
    let mut cells: BTreeMap<CellKey, Vec<&ResultRow>> = BTreeMap::new();
    let key = |r: &ResultRow, sig: &[Option<String>]| -> CellKey {
        let (depth, widths, label) = arch_of(r);
        let values = sig
            .iter()
            .map(|v| SettingValue(v.clone().unwrap_or_else(|| ANY.to_string())))
            .collect();
        (depth, widths, label, values)
    };
    let (full, partial): (Vec<&&ResultRow>, Vec<&&ResultRow>) = rows
        .iter()
        .partition(|r| signature(r).iter().all(Option::is_some));
    for r in full {
        cells.entry(key(r, &signature(r))).or_default().push(r);
    }
    let full_keys: Vec<CellKey> = cells.keys().cloned().collect();
    for r in partial {
        let sig = signature(r);
        let (depth, widths, label) = arch_of(r);
        let matching: Vec<&CellKey> = full_keys
            .iter()
            .filter(|k| {
                k.0 == depth
                    && k.1 == widths
                    && k.2 == label
                    && k.3
                        .iter()
                        .zip(&sig)
                        .all(|(have, want)| want.as_ref().is_none_or(|w| *w == have.0))
            })
            .collect();
        if matching.is_empty() {
            cells.entry(key(r, &sig)).or_default().push(r);
        } else {
            for k in matching {
                cells.get_mut(k).expect("a full cell").push(r);
            }
        }
    }
    cells
}

/// Whether results rows of `method` are an adaptive method's (a treatment), not a fixed function.
fn is_treatment(method: &str) -> bool {
    Method::from_name(method).is_some_and(Method::is_adaptive)
}

/// Builds the comparison from result and share rows (rows with a status other than ok and
/// duplicate keys are left out).
pub fn compare(rows: &[ResultRow], share_rows: &[ShareRow], bootstrap_seed: u64) -> Comparison {
    let mut rng = ChaCha8Rng::seed_from_u64(bootstrap_seed);
    // The paired intervals draw from a stream of their own, so that adding them left every
    // other interval of an earlier report as it was.
    let mut paired_rng = ChaCha8Rng::seed_from_u64(bootstrap_seed.wrapping_add(1));
    // A run counts once: by key, and a baseline also by the settings it reads (two sweeps may
    // have run the same baseline with different SmartMixed-only settings, hence other keys).
    let mut seen = std::collections::HashSet::new();
    let ok: Vec<&ResultRow> = rows
        .iter()
        .filter(|r| r.status == "ok" && r.test_acc.is_some())
        .filter(|r| seen.insert(run_identity(r)))
        .collect();
    let varying = varying_settings(&ok);
    let mut cells = Vec::new();
    let mut ranks: BTreeMap<String, (usize, f64, f64, usize)> = BTreeMap::new();
    let mut ratios = Vec::new();
    let mut smartmixed_cells = BTreeMap::new();
    // The one adaptive method the tables compare against the baselines.
    let treatment = Method::SmartMixed.name();
    // A baseline run that serves several cells gets one interval, drawn the first time.
    let mut intervals: std::collections::HashMap<Vec<String>, (f64, f64)> = Default::default();
    for ((depth, widths, label, values), members) in cells_of(&ok, &varying) {
        let settings: Vec<(String, String)> = varying
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.to_string(), v.0.clone()))
            .collect();
        let mut methods: BTreeMap<String, Vec<&ResultRow>> = BTreeMap::new();
        for r in members {
            methods.entry(r.method.clone()).or_default().push(r);
        }
        let accs: BTreeMap<&String, Vec<f64>> = methods
            .iter()
            .map(|(m, rs)| (m, rs.iter().filter_map(|r| r.test_acc).collect()))
            .collect();
        let means: BTreeMap<&String, f64> = accs.iter().map(|(m, v)| (*m, mean(v))).collect();
        let rank_of = |m: &String| 1 + means.values().filter(|&&v| v > means[m]).count();
        let best_baseline = means
            .iter()
            .filter(|(m, _)| !is_treatment(m))
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(m, _)| (*m).clone());
        let relu_seconds = methods.get("relu").map(|rs| {
            mean(
                &rs.iter()
                    .filter_map(|r| r.epoch_seconds)
                    .collect::<Vec<_>>(),
            )
        });
        let smartmixed_by_seed: BTreeMap<u64, f64> = methods
            .get(treatment)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| Some((r.seed, r.test_acc?)))
                    .collect()
            })
            .unwrap_or_default();
        let arch_key: ArchKey = (depth, settings_label(&label, &settings));
        for (method, rs) in &methods {
            let values = &accs[method];
            let mut member_keys: Vec<String> = rs.iter().map(|r| r.key.clone()).collect();
            member_keys.sort();
            let (ci_low, ci_high) = *intervals
                .entry(member_keys)
                .or_insert_with(|| bootstrap_mean_ci(values, &mut rng));
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
                depth,
                settings: settings.clone(),
                method: method.clone(),
                not_applicable: rs[0].not_applicable.clone(),
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
                paired_seeds: None,
                paired_diff: None,
                paired_low: None,
                paired_high: None,
                p_improvement: None,
            };
            if method == treatment {
                for r in rs {
                    smartmixed_cells.insert(r.key.clone(), arch_key.clone());
                }
                if let Some(best) = &best_baseline {
                    let (lo, hi) = bootstrap_diff_ci(values, &accs[best], &mut rng);
                    cell.best_baseline = Some(best.clone());
                    cell.diff_vs_best_baseline = Some(means[method] - means[best]);
                    (cell.diff_low, cell.diff_high) = (Some(lo), Some(hi));
                }
                // Runs trained in cohorts share their cohort's wall time: no per-method ratio.
                let alone = |m: &str| {
                    methods
                        .get(m)
                        .is_some_and(|rs| rs.iter().all(|r| r.cohort_models.unwrap_or(1) == 1))
                };
                if let (Some(relu), Some(p1), Some(p2), true) = (
                    relu_seconds,
                    cell.phase1_epoch_seconds,
                    cell.phase2_epoch_seconds,
                    alone("relu") && alone(treatment),
                ) {
                    ratios.push((p1 / relu, p2 / relu));
                }
            } else {
                let diffs: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| Some(smartmixed_by_seed.get(&r.seed)? - r.test_acc?))
                    .collect();
                if !diffs.is_empty() {
                    // The pairs (seeds) are resampled: the mean's interval of the differences.
                    let (lo, hi) = bootstrap_mean_ci(&diffs, &mut paired_rng);
                    cell.paired_seeds = Some(diffs.len());
                    cell.paired_diff = Some(mean(&diffs));
                    (cell.paired_low, cell.paired_high) = (Some(lo), Some(hi));
                    cell.p_improvement = Some(probability_of_improvement(&diffs));
                }
            }
            cells.push(cell);
        }
    }
    // Within a cell: the baselines in pool order, then SmartMixed.
    let order = |m: &str| {
        m.parse::<Activation>()
            .map_or(Activation::COUNT, |a| a.id())
    };
    let setting_order = |c: &Cell| -> Vec<SettingValue> {
        c.settings
            .iter()
            .map(|(_, v)| SettingValue(v.clone()))
            .collect()
    };
    cells.sort_by(|a, b| {
        (
            a.depth,
            &a.widths,
            &a.arch,
            setting_order(a),
            order(&a.method),
        )
            .cmp(&(
                b.depth,
                &b.widths,
                &b.arch,
                setting_order(b),
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
    let mut held_by_cell: BTreeMap<ArchKey, [bool; Activation::COUNT]> = BTreeMap::new();
    for s in share_rows {
        if let Some(cell) = smartmixed_cells.get(&s.key) {
            let held = held_by_cell.entry(cell.clone()).or_default();
            for (held, share) in held.iter_mut().zip(&s.shares) {
                *held |= share.is_some();
            }
            share_sums
                .entry(cell.clone())
                .or_default()
                .entry(s.layer)
                .or_default()
                .push(s.shares.map(|v| v.unwrap_or(0.0)));
        }
    }
    let functions = Activation::ALL
        .into_iter()
        .filter(|a| held_by_cell.values().any(|h| h[a.id()]))
        .collect();
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
        varying,
        cells,
        ranks,
        phase_time_ratios,
        shares,
        functions,
        held: held_by_cell,
        smartmixed_cells,
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
         ({RESAMPLES} resamples of the seeds); rank 1 = best mean within a cell. Only runs with status ok count.\n",
        sources.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    );
    if c.varying.is_empty() {
        let _ = writeln!(
            md,
            "Cells: one per architecture (no other setting varies in these results).\n"
        );
    } else {
        let _ = writeln!(
            md,
            "Cells: architecture x {} (the settings that vary in these results). A baseline \
             does not read the SmartMixed-only settings ({}): one baseline run serves every cell \
             that agrees with it on the rest (`{ANY}` marks a value no run of the cell reads).\n",
            c.varying.join(" x "),
            crate::run::method::SELECTION_SETTINGS.join(", ")
        );
    }
    let seeds: Vec<usize> = c.cells.iter().map(|x| x.seeds).collect();
    let (fewest, most) = (
        seeds.iter().copied().min().unwrap_or(0),
        seeds.iter().copied().max().unwrap_or(0),
    );
    let seed_range = if fewest == most {
        format!("{fewest}")
    } else {
        format!("{fewest} to {most}")
    };
    let _ = writeln!(
        md,
        "Seeds per cell: {seed_range}.{}\n",
        if fewest < 5 {
            " With fewer than 5 seeds the bootstrap intervals are coarse (3 seeds give at most 10 \
         distinct resampled means) and tend to be too narrow: read them as a rough guide, not a test."
        } else {
            ""
        }
    );
    let setting_heads: String = c.varying.iter().map(|n| format!(" {n} |")).collect();
    let setting_rule = "---|".repeat(c.varying.len());
    let setting_cols = |cell: &Cell| -> String {
        cell.settings
            .iter()
            .map(|(_, v)| format!(" {v} |"))
            .collect()
    };
    let _ = writeln!(md, "## Per cell (by depth)\n");
    let _ = writeln!(
        md,
        "| arch | widths |{setting_heads} method | seeds | test acc | 95 % CI | rank | epoch s |"
    );
    let _ = writeln!(md, "|---|---|{setting_rule}---|---|---|---|---|---|");
    for cell in &c.cells {
        let _ = writeln!(
            md,
            "| {} | {} |{} {} | {} | {} | [{}, {}] | {} | {:.1} |",
            cell.arch,
            cell.widths,
            setting_cols(cell),
            cell.method,
            cell.seeds,
            pct(cell.mean_test_acc),
            pct(cell.ci_low),
            pct(cell.ci_high),
            cell.rank,
            cell.mean_epoch_seconds
        );
    }
    let verdict = |lo: f64, hi: f64| {
        if lo > 0.0 {
            "SmartMixed better"
        } else if hi < 0.0 {
            "baseline better"
        } else {
            "no clear difference"
        }
    };
    let _ = writeln!(
        md,
        "\n## SmartMixed minus the best baseline (percentage points)\n"
    );
    let _ = writeln!(
        md,
        "The best baseline by mean in each cell; the interval resamples the two groups' seeds \
         apart. The paired columns pair the runs by seed (same split, same initial weights): \
         mean paired difference, its bootstrap interval, and P(better) = the share of seeds in \
         which SmartMixed beats that baseline.\n"
    );
    let _ = writeln!(
        md,
        "| arch |{setting_heads} best baseline | difference | 95 % CI | verdict | paired | paired 95 % CI | P(better) |"
    );
    let _ = writeln!(md, "|---|{setting_rule}---|---|---|---|---|---|---|");
    for cell in c.cells.iter().filter(|c| c.diff_vs_best_baseline.is_some()) {
        let (d, lo, hi) = (
            cell.diff_vs_best_baseline.unwrap(),
            cell.diff_low.unwrap(),
            cell.diff_high.unwrap(),
        );
        let best = cell.best_baseline.as_deref().unwrap_or("");
        let paired = c.cells.iter().find(|b| {
            b.method == best
                && b.arch == cell.arch
                && b.widths == cell.widths
                && b.settings == cell.settings
        });
        let paired_cols = match paired.and_then(|b| {
            Some((
                b.paired_diff?,
                b.paired_low?,
                b.paired_high?,
                b.p_improvement?,
            ))
        }) {
            Some((pd, pl, ph, p)) => format!(
                "{:+.2} | [{:+.2}, {:+.2}] | {p:.2}",
                100.0 * pd,
                100.0 * pl,
                100.0 * ph
            ),
            None => "- | - | -".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} |{} {best} | {:+.2} | [{:+.2}, {:+.2}] | {} | {paired_cols} |",
            cell.arch,
            setting_cols(cell),
            100.0 * d,
            100.0 * lo,
            100.0 * hi,
            verdict(lo, hi)
        );
    }
    let _ = writeln!(
        md,
        "\n## SmartMixed minus each baseline, paired by seed (percentage points)\n"
    );
    let _ = writeln!(
        md,
        "| arch |{setting_heads} baseline | pairs | mean paired difference | 95 % CI | P(better) | verdict |"
    );
    let _ = writeln!(md, "|---|{setting_rule}---|---|---|---|---|---|");
    for cell in c.cells.iter().filter(|c| c.paired_diff.is_some()) {
        let (d, lo, hi) = (
            cell.paired_diff.unwrap(),
            cell.paired_low.unwrap(),
            cell.paired_high.unwrap(),
        );
        let _ = writeln!(
            md,
            "| {} |{} {} | {} | {:+.2} | [{:+.2}, {:+.2}] | {:.2} | {} |",
            cell.arch,
            setting_cols(cell),
            cell.method,
            cell.paired_seeds.unwrap_or(0),
            100.0 * d,
            100.0 * lo,
            100.0 * hi,
            cell.p_improvement.unwrap_or(f64::NAN),
            verdict(lo, hi)
        );
    }
    let _ = writeln!(md, "\n## Across cells\n");
    let _ = writeln!(
        md,
        "| method | first places | mean rank | mean reciprocal rank | cells |"
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
                "\nEpoch time relative to the ReLU baseline (mean over cells): SmartMixed phase 1 \
                 {p1:.2}x, phase 2 {p2:.2}x."
            );
        }
        None => {
            let _ = writeln!(
                md,
                "\n(No cell has both ReLU and SmartMixed runs trained one at a time: no epoch-time \
                 ratios. Runs trained in a cohort share its wall time; see cohort_models.)"
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## SmartMixed's functions per layer (share of neurons, mean over seeds)\n"
    );
    let names: Vec<&str> = c.functions.iter().map(|a| a.name()).collect();
    let _ = writeln!(md, "| arch | layer | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(c.functions.len()));
    for (key, layers) in &c.shares {
        let (held, arch) = (c.held.get(key), &key.1);
        for (l, s) in layers.iter().enumerate() {
            let values: Vec<String> = c
                .functions
                .iter()
                .map(|a| match held.is_some_and(|h| h[a.id()]) {
                    true => format!("{:.2}", s[a.id()]),
                    false => "-".to_string(),
                })
                .collect();
            let _ = writeln!(md, "| {arch} | {} | {} |", l + 1, values.join(" | "));
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
    let deep: Vec<&Vec<Shares>> = c
        .shares
        .iter()
        .filter(|((d, _), _)| *d >= 2)
        .map(|(_, l)| l)
        .collect();
    if deep.is_empty() {
        return None;
    }
    let n = deep.len() as f64;
    let rectifiers = |s: &Shares| s[0] + s[3];
    let exponentials = |s: &Shares| s[4] + s[5];
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
        "Paper's finding (early layers ReLU / Leaky ReLU, deep layers ELU / SELU), over {} cells of \
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
        if !dir.join(crate::grid::store::RESULTS_FILE).is_file() {
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
    for (i, cell) in comparison.cells.iter().enumerate() {
        let fields = cell.csv_fields();
        if i == 0 {
            writer.write_record(fields.iter().map(|(name, _)| name))?;
        }
        writer.write_record(fields.iter().map(|(_, value)| value))?;
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

    /// A pool axis: one cell per pool, the baseline (which reads no pool) in each, pools shown
    /// short, and the share table's columns are the functions some pool holds.
    #[test]
    fn pools_make_cells_that_share_their_baselines() {
        let paper = mixed_act::Pool::paper().to_string();
        let wide = format!("{paper},gelu");
        let mut rows = vec![
            row("r1", 3, 1, "relu", 1, 0.90, 1.0),
            row("r2", 3, 1, "relu", 2, 0.92, 1.0),
        ];
        for (key, seed, pool, acc) in [
            ("p1", 1, paper.as_str(), 0.91),
            ("p2", 2, paper.as_str(), 0.93),
            ("w1", 1, wide.as_str(), 0.95),
            ("w2", 2, wide.as_str(), 0.97),
        ] {
            let mut r = row(key, 3, 1, "smartmixed", seed, acc, 1.0);
            r.pool = pool.to_string();
            rows.push(r);
        }
        let share = |key: &str, shares: &[(Activation, f64)]| {
            let mut by_id = [None; Activation::COUNT];
            for &(a, v) in shares {
                by_id[a.id()] = Some(v);
            }
            ShareRow {
                key: key.into(),
                arch: Some(3),
                widths: "8".into(),
                depth: 1,
                seed: 1,
                layer: 1,
                width: 8,
                shares: by_id,
            }
        };
        let shares = vec![
            share("w1", &[(Activation::Relu, 0.5), (Activation::Gelu, 0.5)]),
            share("p1", &[(Activation::Relu, 1.0), (Activation::Tanh, 0.0)]),
        ];
        let c = compare(&rows, &shares, 0);
        assert_eq!(c.varying, ["pool"]);
        let labels: Vec<(String, String)> = c
            .cells
            .iter()
            .map(|x| (x.method.clone(), x.settings[0].1.clone()))
            .collect();
        assert_eq!(
            labels,
            [
                ("relu".to_string(), "paper".to_string()),
                ("smartmixed".to_string(), "paper".to_string()),
                ("relu".to_string(), "paper,gelu".to_string()),
                ("smartmixed".to_string(), "paper,gelu".to_string()),
            ]
        );
        let smartmixed_wide = &c.cells[3];
        assert_eq!(smartmixed_wide.paired_seeds, None);
        let relu_wide = &c.cells[2];
        assert_eq!(relu_wide.paired_seeds, Some(2));
        assert!((relu_wide.paired_diff.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(
            c.functions,
            [Activation::Relu, Activation::Tanh, Activation::Gelu]
        );
        assert_eq!(pool_label("relu,elu"), "relu,elu");
        assert_eq!(pool_label(&paper), "paper");
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
            pool: String::new(),
            split_seed: 42,
            not_applicable: if sm {
                String::new()
            } else {
                crate::run::method::SELECTION_SETTINGS.join(" ")
            },
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
            cohort_models: Some(1),
            epoch_seconds_per_model: Some(secs),
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
            shares: {
                let mut s = [None; Activation::COUNT];
                for (id, v) in [0.5, 0.0, 0.0, 0.25, 0.25, 0.0].into_iter().enumerate() {
                    s[id] = Some(v);
                }
                s
            },
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
            c.shares[&(3, "2".to_string())][0][..6],
            [0.5, 0.0, 0.0, 0.25, 0.25, 0.0]
        );
        let md = render_markdown(&c, &[PathBuf::from("x")]);
        assert!(
            md.contains("| 1 | elu | +2.00 | [+1.00, +3.00] | SmartMixed better |"),
            "{md}"
        );
    }

    #[test]
    fn paired_statistics_match_a_hand_computed_example() {
        // SmartMixed 0.96 / 0.98 and ReLU 0.90 / 0.99 on seeds 1 / 2: paired differences +0.06
        // and -0.01, mean +0.025, SmartMixed better in one seed of two. Resampling two pairs
        // gives a mean of -0.01, +0.025 or +0.06, so the interval is [-0.01, +0.06].
        let rows = vec![
            row("a", 1, 1, "relu", 1, 0.90, 1.0),
            row("b", 1, 1, "relu", 2, 0.99, 1.0),
            row("c", 1, 1, "smartmixed", 1, 0.96, 1.0),
            row("d", 1, 1, "smartmixed", 2, 0.98, 1.0),
            // A seed only the baseline has is not a pair.
            row("e", 1, 1, "relu", 3, 0.50, 1.0),
        ];
        let c = compare(&rows, &[], 0);
        let relu = c.cells.iter().find(|x| x.method == "relu").unwrap();
        assert_eq!(relu.paired_seeds, Some(2));
        assert!((relu.paired_diff.unwrap() - 0.025).abs() < 1e-12);
        assert!((relu.paired_low.unwrap() + 0.01).abs() < 1e-12);
        assert!((relu.paired_high.unwrap() - 0.06).abs() < 1e-12);
        assert_eq!(relu.p_improvement, Some(0.5));
        assert_eq!(probability_of_improvement(&[0.1, 0.0, -0.1, 0.2]), 0.625);
        let sm = c.cells.iter().find(|x| x.method == "smartmixed").unwrap();
        assert_eq!(sm.paired_diff, None, "pairs sit on the baseline rows");
        let md = render_markdown(&c, &[PathBuf::from("x")]);
        assert!(
            md.contains("| 1 | relu | 2 | +2.50 | [-1.00, +6.00] | 0.50 | no clear difference |"),
            "{md}"
        );
        assert!(md.contains("intervals are coarse"), "{md}");
    }

    #[test]
    fn cells_split_by_varying_settings_and_baselines_serve_every_value() {
        // tau varies for SmartMixed (0.1, 1); the one ReLU run per seed serves both cells.
        // lr varies for everyone: the ReLU run at lr 0.01 has no SmartMixed cell and gets a
        // cell of its own, with tau 'any'.
        let with = |mut r: ResultRow, tau: f64, lr: f64| {
            (r.tau, r.lr) = (tau, lr);
            r
        };
        let rows = vec![
            with(row("a", 1, 1, "relu", 1, 0.90, 1.0), 0.3, 1e-3),
            with(row("b", 1, 1, "relu", 2, 0.92, 1.0), 0.3, 1e-3),
            with(row("c", 1, 1, "smartmixed", 1, 0.95, 1.0), 0.1, 1e-3),
            with(row("d", 1, 1, "smartmixed", 2, 0.97, 1.0), 0.1, 1e-3),
            with(row("e", 1, 1, "smartmixed", 1, 0.80, 1.0), 1.0, 1e-3),
            with(row("f", 1, 1, "smartmixed", 2, 0.82, 1.0), 1.0, 1e-3),
            with(row("g", 1, 1, "relu", 1, 0.85, 1.0), 0.3, 1e-2),
            // The same ReLU run from another sweep that set a SmartMixed-only setting
            // (another key, the same run): counted once.
            with(row("a2", 1, 1, "relu", 1, 0.90, 1.0), 1.0, 1e-3),
        ];
        let c = compare(&rows, &[], 0);
        assert_eq!(c.varying, vec!["lr", "tau"]);
        let labels: Vec<String> = c
            .cells
            .iter()
            .map(|x| format!("{} {}", x.label(), x.method))
            .collect();
        assert_eq!(
            labels,
            [
                "1 lr=0.001 tau=0.1 relu",
                "1 lr=0.001 tau=0.1 smartmixed",
                "1 lr=0.001 tau=1 relu",
                "1 lr=0.001 tau=1 smartmixed",
                "1 lr=0.01 tau=any relu",
            ]
        );
        let cell = |i: usize| &c.cells[i];
        assert_eq!((cell(0).seeds, cell(0).rank, cell(1).rank), (2, 2, 1));
        // The ReLU runs serving both tau cells have one interval.
        assert_eq!(
            (cell(0).ci_low, cell(0).ci_high),
            (cell(2).ci_low, cell(2).ci_high)
        );
        assert_eq!((cell(2).rank, cell(3).rank), (1, 2));
        assert!((cell(2).paired_diff.unwrap() + 0.10).abs() < 1e-12);
        assert_eq!(cell(2).p_improvement, Some(0.0));
        assert_eq!(cell(4).paired_seeds, None);
        let md = render_markdown(&c, &[PathBuf::from("x")]);
        assert!(md.contains("architecture x lr x tau"), "{md}");
        assert!(md.contains("| arch | widths | lr | tau | method |"), "{md}");
    }

    /// The intervals of a report made before cells and paired statistics existed (commit
    /// baace95's results/quick/comparison.csv, from the committed results.csv) come out the
    /// same: the bootstrap stream is consumed in the same order, the paired one apart.
    #[test]
    fn earlier_reports_keep_their_intervals() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/quick");
        let store = ResultsStore::open(&dir).unwrap();
        let c = compare(&store.results().unwrap(), &store.shares().unwrap(), 0);
        let cell = |arch: &str, m: &str| {
            c.cells
                .iter()
                .find(|x| x.arch == arch && x.method == m)
                .unwrap()
        };
        let sigmoid = cell("1", "sigmoid");
        assert_eq!(
            (sigmoid.ci_low, sigmoid.ci_high),
            (0.9597000000000001, 0.9640999999999998)
        );
        let sm = cell("12", "smartmixed");
        assert_eq!((sm.ci_low, sm.ci_high), (0.9668, 0.972));
        assert_eq!(
            (sm.diff_low, sm.diff_high),
            (Some(-0.0087666666666667), Some(-0.0022999999999999687))
        );
    }
}
