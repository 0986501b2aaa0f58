//! `smartmixed compare`: baselines against SmartMixed across one or more sweep outputs, with
//! bootstrap confidence intervals over seeds and the reference's rank statistics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mixed_act::Activation;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::input_error;
use crate::grid::store::{ResultRow, ResultsStore, ShareRow};
use crate::report::adaptive::{self, MethodCost, Pair};
use crate::report::freeze::{self, Freeze};
use crate::report::setting_pairs::{self, SettingPair};
use crate::report::stats::{
    bootstrap_diff_ci, bootstrap_mean_ci, holds_after_holm, holm_some, mean, p_value, paired_t_p,
    probability_of_improvement, RESAMPLES,
};
use crate::run::files::write_atomic;
use crate::run::method::Method;
use crate::run::setting;

/// A setting's value in a row, as the row writes it: a match over [`setting::SETTINGS`]'
/// names (a test holds the two together).
fn setting_value(r: &ResultRow, name: &str) -> String {
    match name {
        "dataset" => r.dataset.clone(),
        // MNIST-1D rows from before the column: the published arguments.
        "mnist1d" if r.mnist1d.is_empty() && r.dataset == "mnist1d" => "published".to_string(),
        "mnist1d" => r.mnist1d.clone(),
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

/// Whether the row's method reads the setting (see `not_applicable` in results.csv) on the
/// row's data set.
fn applies(r: &ResultRow, name: &str) -> bool {
    !r.not_applicable.split_whitespace().any(|n| n == name) && setting::read_on(name, &r.dataset)
}

/// What makes two rows the same run: architecture, method, seed and every setting the method
/// reads.
fn run_identity(r: &ResultRow) -> String {
    let mut id = format!("{}|{}|{}|{}", arch_label(r), r.widths, r.method, r.seed);
    for name in setting::names().filter(|n| applies(r, n)) {
        id.push_str(&format!("|{name}={}", setting_value(r, name)));
    }
    id
}

/// The settings that take more than one value among the rows that read them.
pub fn varying_settings(rows: &[&ResultRow]) -> Vec<&'static str> {
    setting::names()
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    pub arch: String,
    pub widths: String,
    pub depth: usize,
    /// (setting, value) of every varying setting, in [`setting::SETTINGS`] order.
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
    /// The paired t-test's two-sided p-value, and that p-value adjusted by Holm over all of
    /// the cell's comparisons of SmartMixed (the baselines and the other adaptive methods).
    pub paired_t_p: Option<f64>,
    pub paired_holm_p: Option<f64>,
}

impl Cell {
    /// The cell's label: its architecture, then its settings.
    pub fn label(&self) -> String {
        settings_label(&self.arch, &self.settings)
    }

    /// `comparison.csv`'s columns and this cell's values (empty for none).
    fn csv_fields(&self) -> Vec<(String, String)> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let architecture = [
            ("arch", self.arch.clone()),
            ("widths", self.widths.clone()),
            ("depth", self.depth.to_string()),
        ];
        let results = [
            ("method", self.method.clone()),
            ("not_applicable", self.not_applicable.clone()),
            ("seeds", self.seeds.to_string()),
            ("mean_test_acc", self.mean_test_acc.to_string()),
            ("ci_low", self.ci_low.to_string()),
            ("ci_high", self.ci_high.to_string()),
            ("rank", self.rank.to_string()),
            ("mean_epoch_seconds", self.mean_epoch_seconds.to_string()),
            (
                "best_baseline",
                self.best_baseline.clone().unwrap_or_default(),
            ),
            ("diff_vs_best_baseline", opt(self.diff_vs_best_baseline)),
            ("diff_low", opt(self.diff_low)),
            ("diff_high", opt(self.diff_high)),
            ("phase1_epoch_seconds", opt(self.phase1_epoch_seconds)),
            ("phase2_epoch_seconds", opt(self.phase2_epoch_seconds)),
            (
                "paired_seeds",
                self.paired_seeds.map_or(String::new(), |n| n.to_string()),
            ),
            ("paired_diff", opt(self.paired_diff)),
            ("paired_low", opt(self.paired_low)),
            ("paired_high", opt(self.paired_high)),
            ("p_improvement", opt(self.p_improvement)),
            ("paired_t_p", opt(self.paired_t_p)),
            ("paired_holm_p", opt(self.paired_holm_p)),
        ];
        let owned = |(name, value): (&str, String)| (name.to_string(), value);
        architecture
            .into_iter()
            .map(owned)
            .chain(self.settings.iter().cloned())
            .chain(results.into_iter().map(owned))
            .collect()
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
    /// Per method: its ranks across the cells.
    pub ranks: BTreeMap<String, RankSummary>,
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
    /// Every adaptive method paired by seed with every other method of its cell.
    pub pairs: Vec<Pair>,
    /// What each method of each cell costs.
    pub costs: Vec<MethodCost>,
    /// The runs of methods whose first phase ends in a switch, each with its cell's label.
    pub switch_runs: Vec<(String, ResultRow)>,
    /// What the switch costs per cell and method, from the runs' epoch logs (read by
    /// [`compare_dirs`], which knows where they are).
    pub freezes: Vec<Freeze>,
    /// The shares of the other methods with per-neuron choices (the frozen soft mixture), by
    /// method name.
    pub other_shares: BTreeMap<String, AveragedShares>,
    /// Each varying setting's values against its first, paired by seed.
    pub setting_pairs: Vec<SettingPair>,
}

impl Comparison {
    /// Whether the results hold more than one adaptive method: then the report adds the
    /// methods side by side and the pairs (SmartMixed against fixed functions alone keeps the
    /// report it always had).
    pub fn compares_adaptive_methods(&self) -> bool {
        let mut adaptive: Vec<&str> = self
            .cells
            .iter()
            .map(|c| c.method.as_str())
            .filter(|m| is_adaptive(m))
            .collect();
        adaptive.sort();
        adaptive.dedup();
        adaptive.len() > 1
    }
}

/// A method's ranks across the cells it is in.
#[derive(Clone, Debug, PartialEq)]
pub struct RankSummary {
    /// The cells in which it ranks 1.
    pub first_places: usize,
    pub mean_rank: f64,
    pub mean_reciprocal_rank: f64,
    pub cells: usize,
}

impl RankSummary {
    /// The summary of a method's rank in each of its cells.
    fn of(ranks: &[usize]) -> RankSummary {
        let n = ranks.len() as f64;
        RankSummary {
            first_places: ranks.iter().filter(|&&r| r == 1).count(),
            mean_rank: ranks.iter().map(|&r| r as f64).sum::<f64>() / n,
            mean_reciprocal_rank: ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / n,
            cells: ranks.len(),
        }
    }
}

/// How reports name an architecture: its id, `widths 512-256` for explicit widths, or the
/// named net.
pub fn arch_label(r: &ResultRow) -> String {
    match (r.arch, r.net.as_str()) {
        (Some(id), _) => id.to_string(),
        (None, "") => format!("widths {}", r.widths),
        (None, net) => net.to_string(),
    }
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
    let arch_of = |r: &ResultRow| (r.depth, r.widths.clone(), arch_label(r));
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
pub fn is_adaptive(method: &str) -> bool {
    Method::from_name(method).is_some_and(Method::is_adaptive)
}

/// For the report modules' tests: the rows of a committed result set (`results/<set>`).
#[cfg(test)]
pub(crate) fn committed_rows(set: &str) -> Vec<ResultRow> {
    let dir = crate::crate_dir().join("../../results").join(set);
    ResultsStore::open(&dir).unwrap().results().unwrap()
}

/// Builds the comparison from result and share rows (rows with a status other than ok and
/// duplicate keys are left out).
pub fn compare(rows: &[ResultRow], share_rows: &[ShareRow], bootstrap_seed: u64) -> Comparison {
    let finished = distinct_finished_runs(rows);
    let varying = varying_settings(&finished);
    let mut bootstrap = Bootstrap::new(bootstrap_seed);
    let mut cells = Vec::new();
    let mut ranks: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut phase_time_ratios = Vec::new();
    let mut smartmixed_cells = BTreeMap::new();
    // The pairs draw from a stream of their own: the other intervals stay as they were.
    let mut pairs_rng = ChaCha8Rng::seed_from_u64(bootstrap_seed.wrapping_add(2));
    let (mut pairs, mut costs, mut switch_runs) = (Vec::new(), Vec::new(), Vec::new());
    // A run may stand in several cells (a method that does not read a varying setting).
    let mut other_choice_cells: BTreeMap<String, BTreeMap<String, Vec<ArchKey>>> = BTreeMap::new();
    for (key, members) in cells_of(&finished, &varying) {
        let runs = CellRuns::new(key, members, &varying);
        let label = runs.arch_key().1;
        let first_of_cell = cells.len();
        pairs.extend(adaptive::pairs(&label, &runs.by_method, &mut pairs_rng));
        costs.extend(adaptive::costs(&label, &runs.by_method));
        for (method, method_runs) in &runs.by_method {
            if Method::from_name(method).is_some_and(Method::has_switch) {
                switch_runs.extend(method_runs.iter().map(|&r| (label.clone(), r.clone())));
            }
            let other_choices = Method::from_name(method)
                .is_some_and(|m| m.has_choices() && m != Method::SmartMixed);
            if other_choices {
                let cells = other_choice_cells.entry(method.clone()).or_default();
                for r in method_runs {
                    cells
                        .entry(r.key.clone())
                        .or_default()
                        .push(runs.arch_key());
                }
            }
            let cell = runs.cell(method, &mut bootstrap);
            ranks.entry(method.clone()).or_default().push(cell.rank);
            if method == Method::SmartMixed.name() {
                smartmixed_cells
                    .extend(method_runs.iter().map(|r| (r.key.clone(), runs.arch_key())));
                phase_time_ratios.extend(runs.phase_time_ratios(&cell));
            }
            cells.push(cell);
        }
        adjust_for_the_cell(&mut cells[first_of_cell..]);
    }
    sort_cells(&mut cells);
    let one_cell_each = smartmixed_cells
        .iter()
        .map(|(key, cell)| (key.clone(), vec![cell.clone()]))
        .collect();
    let shares = average_shares(share_rows, &one_cell_each);
    let setting_pairs = setting_pairs_of(&finished, &varying, bootstrap_seed);
    Comparison {
        varying,
        cells,
        ranks: ranks
            .into_iter()
            .map(|(method, ranks)| (method, RankSummary::of(&ranks)))
            .collect(),
        phase_time_ratios: mean_pair(&phase_time_ratios),
        shares: shares.per_layer,
        functions: shares.functions,
        held: shares.held,
        smartmixed_cells,
        pairs,
        costs,
        switch_runs,
        freezes: Vec::new(),
        other_shares: other_choice_cells
            .into_iter()
            .map(|(method, cells)| (method, average_shares(share_rows, &cells)))
            .collect(),
        setting_pairs,
    }
}

/// [`setting_pairs::pairs`] over the finished runs, values in numeric order where they are
/// numbers, on a bootstrap stream of their own (the other intervals stay as they were).
fn setting_pairs_of(
    finished: &[&ResultRow],
    varying: &[&'static str],
    bootstrap_seed: u64,
) -> Vec<SettingPair> {
    let arch = |r: &ResultRow| arch_label(r);
    let order = |a: &str, b: &str| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(bootstrap_seed.wrapping_add(4));
    let read = setting_pairs::Readers {
        value: &setting_value,
        arch: &arch,
        reads: &applies,
        order: &order,
    };
    setting_pairs::pairs(finished, varying, &read, &mut rng)
}

/// The runs with status ok, each once by [`run_identity`]: two sweeps may have run the same
/// baseline with different SmartMixed-only settings, hence under other keys.
fn distinct_finished_runs(rows: &[ResultRow]) -> Vec<&ResultRow> {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| r.status == "ok" && r.test_acc.is_some())
        .filter(|r| seen.insert(run_identity(r)))
        .collect()
}

/// The random streams the intervals draw from, and the intervals already drawn.
struct Bootstrap {
    rng: ChaCha8Rng,
    /// The paired intervals draw from a stream of their own, so that adding them left every
    /// other interval of an earlier report as it was.
    paired_rng: ChaCha8Rng,
    /// By the sorted keys of the runs: a baseline run that serves several cells gets one
    /// interval, drawn the first time.
    intervals: HashMap<Vec<String>, (f64, f64)>,
}

impl Bootstrap {
    fn new(seed: u64) -> Bootstrap {
        Bootstrap {
            rng: ChaCha8Rng::seed_from_u64(seed),
            paired_rng: ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)),
            intervals: HashMap::new(),
        }
    }

    /// The interval of the mean of `accs`, the test accuracies of `runs`.
    fn mean_ci(&mut self, runs: &[&ResultRow], accs: &[f64]) -> (f64, f64) {
        let mut keys: Vec<String> = runs.iter().map(|r| r.key.clone()).collect();
        keys.sort();
        let rng = &mut self.rng;
        *self
            .intervals
            .entry(keys)
            .or_insert_with(|| bootstrap_mean_ci(accs, rng))
    }
}

/// Holm's adjustment of the t-test p-values of one cell's comparisons of SmartMixed.
fn adjust_for_the_cell(cells: &mut [Cell]) {
    let ps: Vec<Option<f64>> = cells.iter().map(|x| x.paired_t_p).collect();
    for (cell, adjusted) in cells.iter_mut().zip(holm_some(&ps)) {
        cell.paired_holm_p = adjusted;
    }
}

/// The runs of one cell by method, with what each method's row needs from the others.
struct CellRuns<'a> {
    depth: usize,
    widths: String,
    arch: String,
    settings: Vec<(String, String)>,
    by_method: BTreeMap<String, Vec<&'a ResultRow>>,
    accs: BTreeMap<String, Vec<f64>>,
    means: BTreeMap<String, f64>,
}

impl<'a> CellRuns<'a> {
    fn new(key: CellKey, members: Vec<&'a ResultRow>, varying: &[&str]) -> Self {
        let (depth, widths, arch, values) = key;
        let settings = varying
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.to_string(), v.0.clone()))
            .collect();
        let mut by_method: BTreeMap<String, Vec<&ResultRow>> = BTreeMap::new();
        for r in members {
            by_method.entry(r.method.clone()).or_default().push(r);
        }
        let accs: BTreeMap<String, Vec<f64>> = by_method
            .iter()
            .map(|(m, rs)| (m.clone(), rs.iter().filter_map(|r| r.test_acc).collect()))
            .collect();
        let means = accs.iter().map(|(m, v)| (m.clone(), mean(v))).collect();
        CellRuns {
            depth,
            widths,
            arch,
            settings,
            by_method,
            accs,
            means,
        }
    }

    /// The cell's [`ArchKey`].
    fn arch_key(&self) -> ArchKey {
        (self.depth, settings_label(&self.arch, &self.settings))
    }

    /// The row of `method`: its accuracy, interval, rank and epoch times, and for SmartMixed
    /// the difference to the best baseline, for the others the differences paired by seed.
    fn cell(&self, method: &str, bootstrap: &mut Bootstrap) -> Cell {
        let (runs, accs) = (&self.by_method[method], &self.accs[method]);
        let (ci_low, ci_high) = bootstrap.mean_ci(runs, accs);
        let mean_seconds = |f: fn(&ResultRow) -> Option<f64>| {
            let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            (!v.is_empty()).then(|| mean(&v))
        };
        let mut cell = Cell {
            arch: self.arch.clone(),
            widths: self.widths.clone(),
            depth: self.depth,
            settings: self.settings.clone(),
            method: method.to_string(),
            not_applicable: runs[0].not_applicable.clone(),
            seeds: accs.len(),
            mean_test_acc: self.means[method],
            ci_low,
            ci_high,
            rank: 1 + self
                .means
                .values()
                .filter(|&&v| v > self.means[method])
                .count(),
            mean_epoch_seconds: mean_seconds(|r| r.epoch_seconds).unwrap_or(f64::NAN),
            phase1_epoch_seconds: mean_seconds(|r| r.phase1_epoch_seconds),
            phase2_epoch_seconds: mean_seconds(|r| r.phase2_epoch_seconds),
            ..Cell::default()
        };
        if method == Method::SmartMixed.name() {
            self.add_diff_vs_best_baseline(&mut cell, &mut bootstrap.rng);
        } else {
            self.add_paired_diff(&mut cell, &mut bootstrap.paired_rng);
        }
        cell
    }

    /// SmartMixed minus the baseline with the best mean, the two groups resampled apart.
    fn add_diff_vs_best_baseline(&self, smartmixed: &mut Cell, rng: &mut ChaCha8Rng) {
        let best = self
            .means
            .iter()
            .filter(|(m, _)| !is_adaptive(m))
            .max_by(|a, b| a.1.total_cmp(b.1));
        let Some((best, best_mean)) = best else {
            return;
        };
        let (lo, hi) = bootstrap_diff_ci(&self.accs[&smartmixed.method], &self.accs[best], rng);
        smartmixed.best_baseline = Some(best.clone());
        smartmixed.diff_vs_best_baseline = Some(smartmixed.mean_test_acc - best_mean);
        (smartmixed.diff_low, smartmixed.diff_high) = (Some(lo), Some(hi));
    }

    /// SmartMixed minus this method, paired by seed; the pairs are resampled.
    fn add_paired_diff(&self, cell: &mut Cell, rng: &mut ChaCha8Rng) {
        let smartmixed_by_seed: BTreeMap<u64, f64> = self
            .by_method
            .get(Method::SmartMixed.name())
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| Some((r.seed, r.test_acc?)))
                    .collect()
            })
            .unwrap_or_default();
        let diffs: Vec<f64> = self.by_method[&cell.method]
            .iter()
            .filter_map(|r| Some(smartmixed_by_seed.get(&r.seed)? - r.test_acc?))
            .collect();
        if diffs.is_empty() {
            return;
        }
        let (lo, hi) = bootstrap_mean_ci(&diffs, rng);
        cell.paired_seeds = Some(diffs.len());
        cell.paired_diff = Some(mean(&diffs));
        (cell.paired_low, cell.paired_high) = (Some(lo), Some(hi));
        cell.p_improvement = Some(probability_of_improvement(&diffs));
        cell.paired_t_p = paired_t_p(&diffs);
    }

    /// SmartMixed's phase-1 and phase-2 epoch time over ReLU's. None where either trained in
    /// cohorts: a cohort's runs share its wall time.
    fn phase_time_ratios(&self, smartmixed: &Cell) -> Option<(f64, f64)> {
        let alone = |m: &str| {
            self.by_method
                .get(m)
                .is_some_and(|rs| rs.iter().all(|r| r.cohort_models.unwrap_or(1) == 1))
        };
        if !(alone("relu") && alone(&smartmixed.method)) {
            return None;
        }
        let relu: Vec<f64> = self.by_method["relu"]
            .iter()
            .filter_map(|r| r.epoch_seconds)
            .collect();
        let relu = mean(&relu);
        Some((
            smartmixed.phase1_epoch_seconds? / relu,
            smartmixed.phase2_epoch_seconds? / relu,
        ))
    }
}

/// Orders cells by architecture and settings; within a cell the fixed functions by id, then the
/// adaptive methods (SmartMixed first).
fn sort_cells(cells: &mut [Cell]) {
    cells.sort_by_key(|c| {
        let settings: Vec<SettingValue> = c
            .settings
            .iter()
            .map(|(_, v)| SettingValue(v.clone()))
            .collect();
        let method = adaptive::method_order(&c.method);
        (c.depth, c.widths.clone(), c.arch.clone(), settings, method)
    });
}

/// The mean of each component, None for no pairs.
fn mean_pair(pairs: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = pairs.len() as f64;
    (!pairs.is_empty()).then(|| {
        (
            pairs.iter().map(|p| p.0).sum::<f64>() / n,
            pairs.iter().map(|p| p.1).sum::<f64>() / n,
        )
    })
}

/// One method's shares, per cell: see the fields of the same names in [`Comparison`].
#[derive(Debug)]
pub struct AveragedShares {
    pub per_layer: BTreeMap<ArchKey, Vec<Shares>>,
    pub functions: Vec<Activation>,
    pub held: BTreeMap<ArchKey, [bool; Activation::COUNT]>,
}

/// Averages the share rows of each cell's runs per layer (`cells`: a method's run keys and
/// the cells each stands in), and notes which functions the runs' pools hold.
fn average_shares(
    share_rows: &[ShareRow],
    cells: &BTreeMap<String, Vec<ArchKey>>,
) -> AveragedShares {
    let mut by_layer: BTreeMap<ArchKey, BTreeMap<usize, Vec<Shares>>> = BTreeMap::new();
    let mut held: BTreeMap<ArchKey, [bool; Activation::COUNT]> = BTreeMap::new();
    for s in share_rows {
        for cell in cells.get(&s.key).into_iter().flatten() {
            let cell_held = held.entry(cell.clone()).or_default();
            for (is_held, share) in cell_held.iter_mut().zip(&s.shares) {
                *is_held |= share.is_some();
            }
            by_layer
                .entry(cell.clone())
                .or_default()
                .entry(s.layer)
                .or_default()
                .push(s.shares.map(|v| v.unwrap_or(0.0)));
        }
    }
    let mean_shares = |runs: Vec<Shares>| -> Shares {
        std::array::from_fn(|k| runs.iter().map(|s| s[k]).sum::<f64>() / runs.len() as f64)
    };
    AveragedShares {
        per_layer: by_layer
            .into_iter()
            .map(|(cell, layers)| (cell, layers.into_values().map(mean_shares).collect()))
            .collect(),
        functions: Activation::ALL
            .into_iter()
            .filter(|a| held.values().any(|h| h[a.id()]))
            .collect(),
        held,
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

/// The report in Markdown.
pub fn render_markdown(c: &Comparison, sources: &[PathBuf]) -> String {
    let mut md = String::new();
    write_report(&mut md, c, sources).expect("writing to a String does not fail");
    md
}

/// The report's sections, in order.
fn write_report(md: &mut String, c: &Comparison, sources: &[PathBuf]) -> fmt::Result {
    write_introduction(md, c, sources)?;
    if c.compares_adaptive_methods() {
        adaptive::write_glance(md, &glance_entries(&c.cells))?;
    }
    write_per_cell(md, c)?;
    write_vs_best_baseline(md, c)?;
    write_paired_by_seed(md, c)?;
    write_across_cells(md, c)?;
    if c.compares_adaptive_methods() {
        let accuracy = |cell: &str, method: &str| {
            let x = c
                .cells
                .iter()
                .find(|x| x.label() == cell && x.method == method)?;
            let (m, lo, hi) = (pct(x.mean_test_acc), pct(x.ci_low), pct(x.ci_high));
            Some(format!("{m} [{lo}, {hi}]"))
        };
        adaptive::write_section(md, &c.costs, &c.pairs, &accuracy)?;
        if !c.freezes.is_empty() {
            freeze::write_section(md, &c.freezes)?;
        }
        if !c.setting_pairs.is_empty() {
            setting_pairs::write_section(md, &c.setting_pairs)?;
        }
    }
    write_share_table(md, "SmartMixed", (&c.shares, &c.functions, &c.held))?;
    if let Some(finding) = paper_finding(c) {
        writeln!(md, "\n{finding}")?;
    }
    for (method, shares) in &c.other_shares {
        let shares = (&shares.per_layer, &shares.functions[..], &shares.held);
        write_share_table(md, method, shares)?;
    }
    Ok(())
}

/// The cells as the table at a glance arranges them: a setting only some methods read goes
/// with the method (its row), the architecture and every other setting make the column.
fn glance_entries(cells: &[Cell]) -> Vec<adaptive::GlanceEntry> {
    cells
        .iter()
        .map(|x| {
            let (own, shared): (Vec<_>, Vec<_>) = x
                .settings
                .iter()
                .cloned()
                .partition(|(name, _)| setting::selection_only(name));
            // A cell's baseline stands in it with the cell's value of a setting it never reads
            // (its runs' not_applicable, as the cells were made).
            let reads = |name: &str| !x.not_applicable.split_whitespace().any(|n| n == name);
            let own: Vec<_> = own
                .into_iter()
                .filter(|(name, v)| v != ANY && reads(name))
                .collect();
            let row = settings_label(&x.method, &own);
            // Explicit widths label themselves ("widths 16-8"); an id gets "arch".
            let arch = match x.arch.starts_with("widths") {
                true => x.arch.clone(),
                false => format!("arch {}", x.arch),
            };
            adaptive::GlanceEntry {
                method_order: adaptive::method_order(&x.method),
                row,
                column: settings_label(&arch, &shared),
                seeds: x.seeds,
                mean: x.mean_test_acc,
                low: x.ci_low,
                high: x.ci_high,
            }
        })
        .collect()
}

/// The title, the sources, what the numbers are, what a cell is and how many seeds cells hold.
fn write_introduction(md: &mut String, c: &Comparison, sources: &[PathBuf]) -> fmt::Result {
    match c.compares_adaptive_methods() {
        true => writeln!(
            md,
            "# SmartMixed, the adaptive methods and the fixed functions\n"
        )?,
        false => writeln!(md, "# SmartMixed vs baselines\n")?,
    }
    writeln!(
        md,
        "Sources: {}. Test accuracy in %, mean over seeds with a 95 % percentile bootstrap interval \
         ({RESAMPLES} resamples of the seeds); rank 1 = best mean within a cell. Only runs with status ok count.\n",
        sources.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    )?;
    if c.varying.is_empty() {
        writeln!(
            md,
            "Cells: one per architecture (no other setting varies in these results).\n"
        )?;
    } else {
        writeln!(
            md,
            "Cells: architecture x {} (the settings that vary in these results). A baseline \
             does not read the SmartMixed-only settings ({}): one baseline run serves every cell \
             that agrees with it on the rest (`{ANY}` marks a value no run of the cell reads).\n",
            c.varying.join(" x "),
            setting::selection_settings().collect::<Vec<_>>().join(", ")
        )?;
    }
    let seeds = c.cells.iter().map(|x| x.seeds);
    let (fewest, most) = (seeds.clone().min().unwrap_or(0), seeds.max().unwrap_or(0));
    let seed_range = if fewest == most {
        format!("{fewest}")
    } else {
        format!("{fewest} to {most}")
    };
    let caution = if fewest < 5 {
        " With fewer than 5 seeds the bootstrap intervals are coarse (3 seeds give at most 10 \
         distinct resampled means) and tend to be too narrow: read them as a rough guide, not a test."
    } else {
        ""
    };
    writeln!(md, "Seeds per cell: {seed_range}.{caution}\n")
}

/// The varying settings' column heads (` tau |`) and their header rule.
fn setting_heads(c: &Comparison) -> (String, String) {
    let heads = c.varying.iter().map(|n| format!(" {n} |")).collect();
    (heads, "---|".repeat(c.varying.len()))
}

/// A cell's values of the varying settings, as table columns.
fn setting_cols(cell: &Cell) -> String {
    cell.settings
        .iter()
        .map(|(_, v)| format!(" {v} |"))
        .collect()
}

/// What an interval of SmartMixed minus a baseline says.
fn verdict(lo: f64, hi: f64) -> &'static str {
    if lo > 0.0 {
        "SmartMixed better"
    } else if hi < 0.0 {
        "baseline better"
    } else {
        "no clear difference"
    }
}

fn write_per_cell(md: &mut String, c: &Comparison) -> fmt::Result {
    let (setting_heads, setting_rule) = setting_heads(c);
    writeln!(md, "## Per cell (by depth)\n")?;
    writeln!(
        md,
        "| arch | widths |{setting_heads} method | seeds | test acc | 95 % CI | rank | epoch s |"
    )?;
    writeln!(md, "|---|---|{setting_rule}---|---|---|---|---|---|")?;
    for cell in &c.cells {
        writeln!(
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
        )?;
    }
    Ok(())
}

fn write_vs_best_baseline(md: &mut String, c: &Comparison) -> fmt::Result {
    let (setting_heads, setting_rule) = setting_heads(c);
    writeln!(
        md,
        "\n## SmartMixed minus the best baseline (percentage points)\n"
    )?;
    writeln!(
        md,
        "The best baseline by mean in each cell; the interval resamples the two groups' seeds \
         apart. The paired columns pair the runs by seed (same split, same initial weights): \
         mean paired difference, its bootstrap interval, and P(better) = the share of seeds in \
         which SmartMixed beats that baseline.\n"
    )?;
    writeln!(
        md,
        "| arch |{setting_heads} best baseline | difference | 95 % CI | verdict | paired | paired 95 % CI | P(better) |"
    )?;
    writeln!(md, "|---|{setting_rule}---|---|---|---|---|---|---|")?;
    for cell in c.cells.iter().filter(|c| c.diff_vs_best_baseline.is_some()) {
        let (d, lo, hi) = (
            cell.diff_vs_best_baseline.unwrap(),
            cell.diff_low.unwrap(),
            cell.diff_high.unwrap(),
        );
        let best = cell.best_baseline.as_deref().unwrap_or("");
        writeln!(
            md,
            "| {} |{} {best} | {:+.2} | [{:+.2}, {:+.2}] | {} | {} |",
            cell.arch,
            setting_cols(cell),
            100.0 * d,
            100.0 * lo,
            100.0 * hi,
            verdict(lo, hi),
            paired_cols(c, cell, best)
        )?;
    }
    Ok(())
}

/// The paired columns of SmartMixed's row against `baseline` in the same cell (`-` where the
/// baseline has no pairs).
fn paired_cols(c: &Comparison, smartmixed: &Cell, baseline: &str) -> String {
    let paired = c.cells.iter().find(|b| {
        b.method == baseline
            && b.arch == smartmixed.arch
            && b.widths == smartmixed.widths
            && b.settings == smartmixed.settings
    });
    match paired.and_then(|b| {
        Some((
            b.paired_diff?,
            b.paired_low?,
            b.paired_high?,
            b.p_improvement?,
        ))
    }) {
        Some((d, lo, hi, p)) => format!(
            "{:+.2} | [{:+.2}, {:+.2}] | {p:.2}",
            100.0 * d,
            100.0 * lo,
            100.0 * hi
        ),
        None => "- | - | -".to_string(),
    }
}

fn write_paired_by_seed(md: &mut String, c: &Comparison) -> fmt::Result {
    let (setting_heads, setting_rule) = setting_heads(c);
    writeln!(
        md,
        "\n## SmartMixed minus each baseline, paired by seed (percentage points)\n"
    )?;
    writeln!(
        md,
        "The verdict reads the 95 % bootstrap interval of each comparison alone. A cell makes \
         many comparisons, and with few seeds bootstrap intervals tend to be too narrow, so two \
         more columns: the paired t-test's two-sided p and that p adjusted by Holm over the \
         cell's comparisons (holding the chance of any false call in the cell at 5 % \
         where Holm p < 0.05).\n"
    )?;
    writeln!(
        md,
        "| arch |{setting_heads} baseline | pairs | mean paired difference | 95 % CI | P(better) | verdict | t-test p | Holm p |"
    )?;
    writeln!(md, "|---|{setting_rule}---|---|---|---|---|---|---|---|")?;
    for cell in c.cells.iter().filter(|c| c.paired_diff.is_some()) {
        let (d, lo, hi) = (
            cell.paired_diff.unwrap(),
            cell.paired_low.unwrap(),
            cell.paired_high.unwrap(),
        );
        writeln!(
            md,
            "| {} |{} {} | {} | {:+.2} | [{:+.2}, {:+.2}] | {:.2} | {} | {} | {} |",
            cell.arch,
            setting_cols(cell),
            cell.method,
            cell.paired_seeds.unwrap_or(0),
            100.0 * d,
            100.0 * lo,
            100.0 * hi,
            cell.p_improvement.unwrap_or(f64::NAN),
            verdict(lo, hi),
            p_value(cell.paired_t_p),
            p_value(cell.paired_holm_p)
        )?;
    }
    writeln!(md, "\n{}", multiplicity_summary(c))?;
    Ok(())
}

/// How many of the paired comparisons have an interval clear of zero, and how many of those
/// hold after Holm's adjustment, each way.
fn multiplicity_summary(c: &Comparison) -> String {
    let paired: Vec<&Cell> = c.cells.iter().filter(|x| x.paired_diff.is_some()).collect();
    let called = |better: bool| {
        paired.iter().filter(move |x| {
            let (lo, hi) = (x.paired_low.unwrap_or(0.0), x.paired_high.unwrap_or(0.0));
            if better {
                lo > 0.0
            } else {
                hi < 0.0
            }
        })
    };
    let holds = |better: bool| {
        called(better)
            .filter(|x| holds_after_holm(x.paired_holm_p))
            .count()
    };
    format!(
        "Of these {} comparisons, {} with a bootstrap interval clear of zero (SmartMixed better \
         in {}, worse in {}); Holm p < 0.05 holds for {} of the {} and {} of the {}.",
        paired.len(),
        called(true).count() + called(false).count(),
        called(true).count(),
        called(false).count(),
        holds(true),
        called(true).count(),
        holds(false),
        called(false).count()
    )
}

/// Each method's ranks over the cells, and SmartMixed's epoch time against ReLU's.
fn write_across_cells(md: &mut String, c: &Comparison) -> fmt::Result {
    writeln!(md, "\n## Across cells\n")?;
    writeln!(
        md,
        "| method | first places | mean rank | mean reciprocal rank | cells |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    let mut methods: Vec<_> = c.ranks.iter().collect();
    methods.sort_by(|a, b| a.1.mean_rank.total_cmp(&b.1.mean_rank));
    for (method, r) in methods {
        writeln!(
            md,
            "| {method} | {} | {:.2} | {:.3} | {} |",
            r.first_places, r.mean_rank, r.mean_reciprocal_rank, r.cells
        )?;
    }
    match c.phase_time_ratios {
        Some((p1, p2)) => writeln!(
            md,
            "\nEpoch time relative to the ReLU baseline (mean over cells): SmartMixed phase 1 \
             {p1:.2}x, phase 2 {p2:.2}x."
        ),
        None => writeln!(
            md,
            "\n(No cell has both ReLU and SmartMixed runs trained one at a time: no epoch-time \
             ratios. Runs trained in a cohort share its wall time; see cohort_models.)"
        ),
    }
}

/// SmartMixed's mean share of each function per layer (`-` for functions outside a cell's pool).
/// One method's table of the functions its neurons keep, per cell and layer.
#[allow(clippy::type_complexity)]
fn write_share_table(
    md: &mut String,
    method: &str,
    (shares, functions, held): (
        &BTreeMap<ArchKey, Vec<Shares>>,
        &[Activation],
        &BTreeMap<ArchKey, [bool; Activation::COUNT]>,
    ),
) -> fmt::Result {
    writeln!(
        md,
        "\n## {method}'s functions per layer (share of neurons, mean over seeds)\n"
    )?;
    let names: Vec<&str> = functions.iter().map(|a| a.name()).collect();
    writeln!(md, "| arch | layer | {} |", names.join(" | "))?;
    writeln!(md, "|---|---|{}", "---|".repeat(functions.len()))?;
    for (key, layers) in shares {
        let (held, arch) = (held.get(key), &key.1);
        for (l, s) in layers.iter().enumerate() {
            let values: Vec<String> = functions
                .iter()
                .map(|a| match held.is_some_and(|h| h[a.id()]) {
                    true => format!("{:.2}", s[a.id()]),
                    false => "-".to_string(),
                })
                .collect();
            writeln!(md, "| {arch} | {} | {} |", l + 1, values.join(" | "))?;
        }
    }
    Ok(())
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
    let in_first_layer =
        |share: &dyn Fn(&Shares) -> f64| deep.iter().map(|l| share(&l[0])).sum::<f64>() / n;
    let in_last_layer = |share: &dyn Fn(&Shares) -> f64| {
        deep.iter().map(|l| share(l.last().unwrap())).sum::<f64>() / n
    };
    let (first_rect, last_rect) = (in_first_layer(&rectifiers), in_last_layer(&rectifiers));
    let (first_exp, last_exp) = (in_first_layer(&exponentials), in_last_layer(&exponentials));
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
    let mut comparison = compare(&rows, &shares, bootstrap_seed);
    if comparison.cells.is_empty() {
        return Err(input_error(
            "no finished runs (status ok) in the given directories",
        ));
    }
    if comparison.compares_adaptive_methods() {
        comparison.freezes = freezes(&comparison.switch_runs, dirs, bootstrap_seed)?;
    }
    Ok(comparison)
}

/// The freeze of every switching method, from the epochs.csv of each of its runs (in the first
/// of `dirs` that holds the run; runs without a log, or whose log never switches, are left out).
fn freezes(
    runs: &[(String, ResultRow)],
    dirs: &[PathBuf],
    bootstrap_seed: u64,
) -> Result<Vec<Freeze>> {
    let mut logged = Vec::new();
    for (cell, row) in runs {
        let log = dirs
            .iter()
            .map(|d| d.join("runs").join(&row.key).join("epochs.csv"))
            .find(|p| p.is_file());
        if let Some(switch) = log.map(|p| freeze::read_switch(&p)).transpose()?.flatten() {
            logged.push((cell.clone(), row.clone(), switch));
        }
    }
    // A stream of its own, so that the other intervals stay as they were.
    let mut rng = ChaCha8Rng::seed_from_u64(bootstrap_seed.wrapping_add(3));
    Ok(freeze::summarise(&logged, &mut rng))
}

/// Where a report over `dirs` goes: `--out` (made if missing) or else the first directory. A
/// report over several sets can so live apart from each set's own. An `--out` that is one of
/// the later sets is refused: the report would replace that set's own.
pub fn report_dir(dirs: &[PathBuf], out: Option<&Path>) -> Result<PathBuf> {
    let Some(out) = out else {
        return Ok(dirs[0].clone());
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(set) = dirs[1..].iter().find(|d| same(out, d)) {
        return Err(input_error(format!(
            "--out {}: that is {}, a set the report reads, and would replace its own report \
             (name the set first to write there, or another directory)",
            out.display(),
            set.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| {
        input_error(format!(
            "--out {}: cannot make a directory there ({e})",
            out.display()
        ))
    })?;
    Ok(out.to_path_buf())
}

/// Reads every directory's results, writes comparison.md, comparison.csv and the tables beside
/// them into `out` (else the first directory), and prints the Markdown.
pub fn run(dirs: &[PathBuf], out: Option<&Path>, bootstrap_seed: u64) -> Result<()> {
    let comparison = compare_dirs(dirs, bootstrap_seed)?;
    let md = render_markdown(&comparison, dirs);
    let out = report_dir(dirs, out)?;
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
    // Each file beside comparison.csv is this report's or none: one that an earlier report
    // wrote and this one does not is removed rather than left to contradict it.
    let (mut pairs, mut costs, mut freezes, mut pairs_by_setting) = (None, None, None, None);
    if comparison.compares_adaptive_methods() {
        let (p, c) = adaptive::csv_files(&comparison.costs, &comparison.pairs)?;
        (pairs, costs) = (Some(p), Some(c));
        if !comparison.freezes.is_empty() {
            freezes = Some(freeze::csv_file(&comparison.freezes)?);
        }
        if !comparison.setting_pairs.is_empty() {
            pairs_by_setting = Some(setting_pairs::csv_file(&comparison.setting_pairs)?);
        }
    }
    for (name, bytes) in [
        ("pairs.csv", pairs),
        ("methods.csv", costs),
        ("freeze.csv", freezes),
        ("setting_pairs.csv", pairs_by_setting),
    ] {
        let path = out.join(name);
        match bytes {
            Some(bytes) => write_atomic(&path, &bytes)?,
            None if path.exists() => std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?,
            None => {}
        }
    }
    crate::print_stdout(&md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared setting has a value in a results row (setting_value matches them all).
    #[test]
    fn every_setting_has_a_value_in_a_row() {
        let row: ResultRow = serde_json::from_value(serde_json::json!({
            "key": "k", "dataset": "mnist1d", "mnist1d": "seed=7", "arch": 3, "widths": "8",
            "depth": 1,
            "method": "relu", "seed": 1, "preset": "default", "epochs": 3, "phase1_epochs": 1,
            "lr": 0.001, "batch_size": 64, "tau": 0.3, "clamp": "10", "grad_clip": "1",
            "phase2_init": "warm", "loss": "logits", "eval_selection": "argmax",
            "pool": "relu,tanh", "split_seed": 42, "n_params": 1, "best_epoch": 1,
            "val_loss": 0.1, "val_acc": 0.9, "test_acc": 0.9, "phase1_test_acc": null,
            "epoch_seconds": 1.0, "phase1_epoch_seconds": null, "phase2_epoch_seconds": null,
            "train_seconds": 1.0, "status": "ok", "device": "cpu", "threads": 1,
            "git_commit": "", "timestamp": ""
        }))
        .unwrap();
        let values: Vec<String> = setting::names().map(|n| setting_value(&row, n)).collect();
        assert_eq!(
            values,
            [
                "mnist1d",
                "seed=7",
                "default",
                "3",
                "1",
                "0.001",
                "64",
                "0.3",
                "10",
                "1",
                "warm",
                "logits",
                "argmax",
                "relu,tanh",
                "42"
            ]
        );
        // An MNIST-1D row from before the column made the published data; other data sets
        // read no generator.
        let old = ResultRow {
            mnist1d: String::new(),
            ..row.clone()
        };
        assert_eq!(setting_value(&old, "mnist1d"), "published");
        let mnist = ResultRow {
            dataset: "mnist".into(),
            ..old
        };
        assert!(!applies(&mnist, "mnist1d") && applies(&row, "mnist1d"));
    }

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
            net: String::new(),
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
            mnist1d: String::new(),
            not_applicable: if sm {
                String::new()
            } else {
                setting::selection_settings().collect::<Vec<_>>().join(" ")
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
        let ranks = |first_places, mean_rank, mean_reciprocal_rank, cells| RankSummary {
            first_places,
            mean_rank,
            mean_reciprocal_rank,
            cells,
        };
        assert_eq!(c.ranks["smartmixed"], ranks(1, 1.5, 0.75, 2));
        assert_eq!(c.ranks["relu"], ranks(1, 2.0, (1.0 / 3.0 + 1.0) / 2.0, 2));
        assert_eq!(c.ranks["elu"].first_places, 0);
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
            row("f", 1, 1, "tanh", 1, 0.95, 1.0),
            row("g", 1, 1, "tanh", 2, 0.96, 1.0),
        ];
        let c = compare(&rows, &[], 0);
        let relu = c.cells.iter().find(|x| x.method == "relu").unwrap();
        assert_eq!(relu.paired_seeds, Some(2));
        assert!((relu.paired_diff.unwrap() - 0.025).abs() < 1e-12);
        assert!((relu.paired_low.unwrap() + 0.01).abs() < 1e-12);
        assert!((relu.paired_high.unwrap() - 0.06).abs() < 1e-12);
        assert_eq!(relu.p_improvement, Some(0.5));
        assert_eq!(probability_of_improvement(&[0.1, 0.0, -0.1, 0.2]), 0.625);
        // The t-test with one degree of freedom (a Cauchy tail): p = 1 - 2 atan(t) / pi, with
        // t = 0.025 / (0.0495 / sqrt 2) = 0.714 against ReLU and 0.015 / 0.005 = 3 against tanh
        // (differences 0.01 and 0.02). Holm over the two: tanh 2 x 0.2048, ReLU
        // max(0.6051, 0.4097).
        let cauchy_p = |t: f64| 1.0 - 2.0 * t.atan() / std::f64::consts::PI;
        let tanh = c.cells.iter().find(|x| x.method == "tanh").unwrap();
        // Against ReLU the deviations are +-0.035: sample sd 0.0495, standard error 0.035.
        let (t_relu, t_tanh) = (0.025 / 0.035, 3.0);
        assert!((relu.paired_t_p.unwrap() - cauchy_p(t_relu)).abs() < 1e-9);
        assert!((tanh.paired_t_p.unwrap() - cauchy_p(t_tanh)).abs() < 1e-9);
        assert!((tanh.paired_holm_p.unwrap() - 2.0 * cauchy_p(t_tanh)).abs() < 1e-9);
        assert_eq!(relu.paired_holm_p, relu.paired_t_p);
        let sm = c.cells.iter().find(|x| x.method == "smartmixed").unwrap();
        assert_eq!(sm.paired_diff, None, "pairs sit on the baseline rows");
        assert_eq!((sm.paired_t_p, sm.paired_holm_p), (None, None));
        // tanh's interval [+1, +2] calls SmartMixed better; two seeds cannot hold it after Holm.
        assert_eq!(
            multiplicity_summary(&c),
            "Of these 2 comparisons, 1 with a bootstrap interval clear of zero (SmartMixed \
             better in 1, worse in 0); Holm p < 0.05 holds for 0 of the 1 and 0 of the 0."
        );
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
        // At a glance, tau goes with SmartMixed (the baseline never reads it), lr with the column.
        let glance: Vec<(String, String)> = glance_entries(&c.cells)
            .into_iter()
            .map(|e| (e.row, e.column))
            .collect();
        let pair = |row: &str, column: &str| (row.to_string(), column.to_string());
        assert_eq!(
            glance,
            [
                pair("relu", "arch 1 lr=0.001"),
                pair("smartmixed tau=0.1", "arch 1 lr=0.001"),
                pair("relu", "arch 1 lr=0.001"),
                pair("smartmixed tau=1", "arch 1 lr=0.001"),
                pair("relu", "arch 1 lr=0.01"),
            ]
        );
    }

    /// The intervals of a report made before cells and paired statistics existed (commit
    /// baace95's results/quick/comparison.csv, from the committed results.csv) come out the
    /// same: the bootstrap stream is consumed in the same order, the paired one apart.
    #[test]
    fn earlier_reports_keep_their_intervals() {
        let dir = crate::crate_dir().join("../../results/quick");
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
