//! A grid of runs through the same code as `train`, with resume and sharding: architectures x
//! methods x seeds x the product of the `[grid]` axes (any run setting given as a list).
//! Results go to a [`ResultsStore`]; each run's own files to `DIR/runs/<key>/`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bail_input;
use crate::device;
use crate::error::input_error;
use crate::grid::store::{ResultRow, ResultsStore, ShareRow};
use crate::interrupt::Interrupted;
use crate::progress::Progress;
use crate::run::config::{
    kebab, DatasetName, DeviceChoice, Method, NetName, Preset, Settings, TrainConfig,
};
use crate::run::data::{self, Splits};
use crate::run::files::{write_json, RunRecord};
use crate::run::net::{self, Planned};
use crate::run::train::board::{self, BoardTarget};
use crate::run::train::{self, RunOut, Summary};

/// An architecture in a sweep config: a reference id (`3`), explicit widths (`[64, 32]`) or a
/// named net with convolutions (`"lenet5"`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ArchSpec {
    Id(u32),
    Widths(Vec<usize>),
    Net(NetName),
}

impl<'de> Deserialize<'de> for ArchSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = toml::Value::deserialize(d)?;
        let whole = |v: &toml::Value| v.as_integer().and_then(|i| usize::try_from(i).ok());
        let spec = match &value {
            toml::Value::Integer(_) => whole(&value)
                .and_then(|i| u32::try_from(i).ok())
                .map(ArchSpec::Id),
            toml::Value::Array(items) => items
                .iter()
                .map(whole)
                .collect::<Option<Vec<usize>>>()
                .map(ArchSpec::Widths),
            toml::Value::String(name) => NetName::from_name(name).map(ArchSpec::Net),
            _ => None,
        };
        spec.ok_or_else(|| {
            let names: Vec<&str> = NetName::ALL.iter().map(|n| n.name()).collect();
            D::Error::custom(format!(
                "architecture {value}: an id (1..=18), a list of hidden widths or a net ({})",
                names.join(", ")
            ))
        })
    }
}

impl ArchSpec {
    /// As `--plan`, labels and errors name it.
    pub fn label(&self) -> String {
        match self {
            ArchSpec::Id(id) => format!("arch {id}"),
            ArchSpec::Widths(w) => format!("widths {}", widths_label(w)),
            ArchSpec::Net(net) => format!("net {net}"),
        }
    }
}

/// A sweep config file (`experiments/*.toml`). Unknown keys are rejected.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub name: Option<String>,
    pub dataset: Option<DatasetName>,
    /// IDX directory; `--data-dir`, then this, then `SMARTMIXED_DATA_DIR`, then the hub.
    pub data_dir: Option<PathBuf>,
    pub architectures: Vec<ArchSpec>,
    pub methods: Vec<Method>,
    pub seeds: Vec<u64>,
    pub preset: Option<Preset>,
    pub device: Option<DeviceChoice>,
    /// Any run setting, applied over the preset for every run of the grid.
    #[serde(default)]
    pub overrides: Settings,
    /// Grid axes: any setting `[overrides]` accepts, as a list of values (`tau = [0.1, 1.0]`).
    #[serde(default)]
    pub grid: toml::Table,
    /// At most this many runs train together as one cohort (`1`: one at a time); absent: the
    /// default of [`default_cohort_size`]. `--cohort-size` overrides it.
    pub cohort_size: Option<usize>,
    /// `false`: the runs write no TensorBoard events (`--no-tensorboard` says the same). Left
    /// out of manifest.json when absent, so that manifests of earlier sweeps stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<bool>,
}

/// One `[grid]` axis: a setting and its values, each value as a one-setting layer.
#[derive(Clone, Debug)]
pub struct Axis {
    pub key: String,
    /// The values as written in the file (strings unquoted), for labels and `--plan`.
    pub labels: Vec<String>,
    pub layers: Vec<Settings>,
}

impl Axis {
    /// Whether the axis changes runs of `method`.
    pub fn applies_to(&self, method: Method) -> bool {
        method.reads(&self.key)
    }
}

/// Why a key cannot be a grid axis (it has a list of its own or does not change a result).
fn not_an_axis(key: &str) -> Option<&'static str> {
    Some(match key {
        "arch" | "widths" | "net" => "list architectures in 'architectures'",
        "method" => "list methods in 'methods'",
        "seed" => "list seeds in 'seeds'",
        "preset" => "a sweep has one preset (the top-level 'preset')",
        "data_dir" | "device" => "it does not change a run's result",
        _ => return None,
    })
}

fn value_label(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SweepConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            input_error(format!("cannot read sweep config {}: {e}", path.display()))
        })?;
        let cfg: SweepConfig = toml::from_str(&text).map_err(|e| {
            input_error(format!(
                "invalid sweep config {}: {}",
                path.display(),
                e.to_string().trim()
            ))
        })?;
        for (what, empty) in [
            ("architectures", cfg.architectures.is_empty()),
            ("methods", cfg.methods.is_empty()),
            ("seeds", cfg.seeds.is_empty()),
        ] {
            if empty {
                bail_input!(
                    "sweep config {}: '{what}' must list at least one entry",
                    path.display()
                );
            }
        }
        if cfg.cohort_size == Some(0) {
            bail_input!(
                "sweep config {}: 'cohort_size' must be at least 1 (1 trains one run at a time)",
                path.display()
            );
        }
        // Every run of the grid resolves (a bad value in a list, say), checked before any work.
        expand(&cfg, None, None)
            .map_err(|e| input_error(format!("sweep config {}: {e:#}", path.display())))?;
        Ok(cfg)
    }

    /// The `[grid]` axes, checked: every key a run setting that can vary, every value a
    /// non-empty list of valid, distinct values, no key also in `[overrides]` (or, for
    /// `dataset`, at the top).
    pub fn axes(&self) -> Result<Vec<Axis>> {
        let overridden: Vec<String> = match serde_json::to_value(&self.overrides) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        };
        let mut axes = Vec::new();
        for (key, value) in &self.grid {
            if let Some(why) = not_an_axis(key) {
                bail_input!("[grid] key '{key}' cannot be an axis: {why}");
            }
            if overridden.contains(key) {
                bail_input!("'{key}' is in both [overrides] and [grid]: keep one");
            }
            if key == "dataset" && self.dataset.is_some() {
                bail_input!("'dataset' is set at the top and in [grid]: keep one");
            }
            let toml::Value::Array(values) = value else {
                bail_input!(
                    "[grid] '{key}' must be a list of values, got {value} (a single value \
                     belongs in [overrides])"
                );
            };
            if values.is_empty() {
                bail_input!("[grid] '{key}' must list at least one value");
            }
            let mut axis = Axis {
                key: key.clone(),
                labels: Vec::new(),
                layers: Vec::new(),
            };
            for v in values {
                let label = value_label(v);
                let mut one = toml::Table::new();
                one.insert(key.clone(), v.clone());
                let layer: Settings = toml::Value::Table(one).try_into().map_err(|e| {
                    input_error(format!(
                        "[grid] '{key}' = {label}: {}",
                        e.to_string().trim()
                    ))
                })?;
                // Equal as parsed, not as written: 1 and 1.0, "none" and "NONE".
                let parsed = serde_json::to_value(&layer).ok();
                if let Some(i) = axis
                    .layers
                    .iter()
                    .position(|l| serde_json::to_value(l).ok() == parsed)
                {
                    bail_input!(
                        "[grid] '{key}' lists one value twice ({} and {label})",
                        axis.labels[i]
                    );
                }
                axis.labels.push(label);
                axis.layers.push(layer);
            }
            axes.push(axis);
        }
        Ok(axes)
    }
}

/// `--shard I/N`: the I-th (1-based) of N disjoint parts of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count >= 1 && (1..=count).contains(&index) => {
                Ok(Shard { index, count })
            }
            _ => bail_input!("--shard must be I/N with 1 <= I <= N (for example 2/4), got '{s}'"),
        }
    }
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Runs are dealt round-robin in grid order, so every shard gets a similar mix.
    pub fn contains(&self, grid_index: usize) -> bool {
        grid_index % self.count == self.index - 1
    }
}

/// One run of the grid.
#[derive(Clone, Debug)]
pub struct GridRun {
    pub index: usize,
    pub config: TrainConfig,
    pub key: String,
    /// `key=value` of each grid axis that applies to this run's method.
    pub axis_values: Vec<String>,
}

impl GridRun {
    pub fn label(&self) -> String {
        let arch = match self.config.arch {
            Some(id) => format!("arch {id}"),
            None => format!("widths {}", widths_label(&self.config.widths)),
        };
        let mut label = format!("{arch} {} seed {}", self.config.method, self.config.seed);
        for value in &self.axis_values {
            label.push(' ');
            label.push_str(value);
        }
        label
    }
}

pub fn widths_label(widths: &[usize]) -> String {
    widths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("-")
}

/// A run's identity: a hash of every setting that changes its result (not where the data
/// live or which device ran it).
pub fn run_key(cfg: &TrainConfig) -> String {
    let mut identity = cfg.clone();
    identity.data_dir = None;
    identity.device = DeviceChoice::Auto;
    let json = serde_json::to_string(&identity).expect("a config serialises");
    Sha256::digest(json.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every run of the grid, in a fixed order: architectures, then the product of the axes (the
/// last axis fastest), then methods, then seeds. A run whose key is already in the list (a
/// baseline on an axis it does not read) is not repeated.
pub fn expand(
    cfg: &SweepConfig,
    data_dir: Option<PathBuf>,
    device: Option<DeviceChoice>,
) -> Result<Vec<GridRun>> {
    let axes = cfg.axes()?;
    let combinations = axes
        .iter()
        .fold(vec![Vec::new()], |partial: Vec<Vec<usize>>, axis| {
            partial
                .iter()
                .flat_map(|p| {
                    (0..axis.layers.len()).map(move |v| {
                        let mut next = p.clone();
                        next.push(v);
                        next
                    })
                })
                .collect()
        });
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for arch in &cfg.architectures {
        for combination in &combinations {
            for &method in &cfg.methods {
                for &seed in &cfg.seeds {
                    let mut layer = cfg.overrides.clone();
                    layer.preset = None;
                    layer.dataset = cfg.dataset.or(layer.dataset);
                    let mut axis_values = Vec::new();
                    for (axis, &v) in axes.iter().zip(combination) {
                        if axis.applies_to(method) {
                            layer = layer.overlay(&axis.layers[v]);
                            axis_values.push(format!("{}={}", axis.key, axis.labels[v]));
                        }
                    }
                    layer.data_dir = data_dir.clone().or(cfg.data_dir.clone()).or(layer.data_dir);
                    layer.device = device.or(cfg.device).or(layer.device);
                    (layer.arch, layer.widths, layer.net) = match arch {
                        ArchSpec::Id(id) => (Some(*id), None, None),
                        ArchSpec::Widths(w) => (None, Some(w.clone()), None),
                        ArchSpec::Net(net) => (None, None, Some(*net)),
                    };
                    layer.method = Some(method);
                    layer.seed = Some(seed);
                    let config = TrainConfig::resolve(
                        None,
                        Some(cfg.preset.unwrap_or(Preset::Default)),
                        &layer,
                    )
                    .with_context(|| {
                        format!(
                            "grid entry {} {method} seed {seed} {}",
                            arch.label(),
                            axis_values.join(" ")
                        )
                    })?;
                    let key = run_key(&config);
                    if seen.insert(key.clone()) {
                        runs.push(GridRun {
                            index: runs.len(),
                            config,
                            key,
                            axis_values,
                        });
                    }
                }
            }
        }
    }
    Ok(runs)
}

/// The text of `sweep --plan`: a `runs: N` line (scripts read it), the size of every axis,
/// what baselines do not multiply over, how many runs `out` already holds, then one line per
/// run: index, key, label and `done` when finished.
pub fn plan(cfg: &SweepConfig, grid: &[GridRun], out: &Path) -> Result<String> {
    let done = if out.join(crate::grid::store::RESULTS_FILE).is_file() {
        ResultsStore::open(out)?.finished_keys()?
    } else {
        Default::default()
    };
    let axes = cfg.axes()?;
    let mut text = format!("runs: {}\n", grid.len());
    let list = |v: &[String]| v.join(", ");
    let archs: Vec<String> = cfg
        .architectures
        .iter()
        .map(|a| match a {
            ArchSpec::Id(id) => id.to_string(),
            ArchSpec::Widths(w) => widths_label(w),
            ArchSpec::Net(net) => net.to_string(),
        })
        .collect();
    let methods: Vec<String> = cfg.methods.iter().map(Method::to_string).collect();
    let seeds: Vec<String> = cfg.seeds.iter().map(u64::to_string).collect();
    text.push_str(&format!(
        "architectures: {} ({})\n",
        archs.len(),
        list(&archs)
    ));
    text.push_str(&format!(
        "methods: {} ({})\n",
        methods.len(),
        list(&methods)
    ));
    text.push_str(&format!("seeds: {} ({})\n", seeds.len(), list(&seeds)));
    for axis in &axes {
        text.push_str(&format!(
            "grid {}: {} ({})\n",
            axis.key,
            axis.labels.len(),
            list(&axis.labels)
        ));
    }
    let smartmixed_only: Vec<&str> = axes
        .iter()
        .filter(|a| !a.applies_to(Method::Baseline(mixed_act::Activation::Relu)))
        .map(|a| a.key.as_str())
        .collect();
    if !smartmixed_only.is_empty() {
        text.push_str(&format!(
            "baselines run once over {} (SmartMixed-only settings)\n",
            smartmixed_only.join(", ")
        ));
    }
    let finished = grid.iter().filter(|r| done.contains(&r.key)).count();
    text.push_str(&format!(
        "finished in {}: {finished} of {}\n",
        out.display(),
        grid.len()
    ));
    for run in grid {
        let mark = if done.contains(&run.key) { " done" } else { "" };
        text.push_str(&format!(
            "{} {} {}{mark}\n",
            run.index + 1,
            run.key,
            run.label()
        ));
    }
    Ok(text)
}

/// `manifest.json`: what made the results.
#[derive(Serialize)]
struct Manifest<'a> {
    config: &'a SweepConfig,
    config_file: String,
    shard: String,
    crate_version: &'static str,
    rustc_version: &'static str,
    candle_version: &'static str,
    features: Vec<&'static str>,
    cpu_model: String,
    /// Per-core cache sizes (gemm blocks matrix products by them: other sizes, other bits).
    cpu_caches: String,
    /// The matrix-product kernel family and the CPU's SIMD sets (other kernels, other bits).
    matmul_kernels: &'static str,
    cpu_simd: String,
    threads: usize,
    device: String,
    gpu_name: Option<String>,
    git_commit: Option<String>,
    git_dirty: bool,
    data_source: String,
    written: String,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The first core's caches as Linux lists them, e.g. `L1d 48K, L1i 32K, L2 1024K, L3 32768K`
/// (empty where sysfs has none).
fn cpu_caches() -> String {
    let dir = Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut caches: Vec<String> = (0..8)
        .filter_map(|i| {
            let index = dir.join(format!("index{i}"));
            let (level, kind, size) = (
                read(index.join("level"))?,
                read(index.join("type"))?,
                read(index.join("size"))?,
            );
            let kind = match kind.as_str() {
                "Data" => "d",
                "Instruction" => "i",
                _ => "",
            };
            Some(format!("L{level}{kind} {size}"))
        })
        .collect();
    caches.dedup();
    caches.join(", ")
}

/// The current UTC time, RFC 3339 to the second.
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What a sweep invocation did.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub total: usize,
    pub in_shard: usize,
    pub skipped: usize,
    pub ran: usize,
    pub failed: usize,
}

pub struct SweepOptions {
    pub config_file: PathBuf,
    pub out: PathBuf,
    pub shard: Shard,
    pub device: Option<DeviceChoice>,
    pub data_dir: Option<PathBuf>,
    pub progress: Progress,
    /// `--cohort-size`: overrides the config's `cohort_size`.
    pub cohort_size: Option<usize>,
    /// `false` (`--no-tensorboard`): no TensorBoard events, whatever the config says.
    pub tensorboard: bool,
}

/// The directory, under a sweep's output, where its runs write their TensorBoard events.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// Where a sweep's runs write their TensorBoard events: one directory per run under the
/// sweep's `tensorboard/`, named by the run's settings (see [`board::sweep_target`]).
pub struct BoardLayout {
    pub root: PathBuf,
    /// The sweep's name (its config's, else its output directory's), which its groups start
    /// with.
    pub sweep: String,
    /// The sweep's grid axes, whose values the names hold.
    pub axes: Vec<String>,
    /// Whether runs write events (`false`: they only remove an earlier attempt's).
    pub enabled: bool,
}

impl BoardLayout {
    /// The layout of a sweep writing into `out`.
    pub fn of(cfg: &SweepConfig, out: &Path, enabled: bool) -> Result<Self> {
        Ok(Self {
            root: out.join(TENSORBOARD_DIR),
            sweep: sweep_name(cfg.name.as_deref(), out),
            axes: cfg.axes()?.into_iter().map(|a| a.key).collect(),
            enabled,
        })
    }

    pub fn target(&self, cfg: &TrainConfig) -> BoardTarget {
        board::sweep_target(&self.root, &self.sweep, cfg, &self.axes)
    }
}

/// A sweep's name: its config's `name`, else its output directory's name.
pub fn sweep_name(name: Option<&str>, out: &Path) -> String {
    name.map(str::to_string).unwrap_or_else(|| {
        out.file_name()
            .map_or("sweep".to_string(), |n| n.to_string_lossy().into_owned())
    })
}

/// Parameters (weights, biases, selection logits) that one cohort may hold on the CPU: 12 MB of
/// weights, 48 MB with gradients and Adam's moments, near the last-level cache.
const CPU_COHORT_PARAMETERS: usize = 3_000_000;
/// On the CPU, a model above this many parameters trains alone by default: its step is
/// compute-bound, and stacking saves nothing (measured with `bench cohort` on two cores: 7
/// models of architecture 1 or 3 step at 0.91-0.97x the per-model time of one, 21 at
/// 1.18-1.44x, and the quick sweep took 8-20 % longer in cohorts than one at a time), while a
/// small model's step is overhead-bound and gains (widths 64-32: 0.68-0.71x).
const CPU_ALONE_ABOVE_PARAMETERS: usize = 200_000;
/// On a GPU memory is the limit (every model's step is launch-bound there): parameters, and
/// the models' copies of an evaluation chunk (2048 images, 6.4 MB per model).
const GPU_COHORT_PARAMETERS: usize = 400_000_000;
const GPU_COHORT_MODELS: usize = 256;

/// How many models of the layers `plan` train together when the sweep does not say: as many
/// of a group's runs as the shard holds, capped so that the cohort's work fits the budget of
/// the device (and at most 256 models on a GPU); on the CPU models above 200 K train alone (at
/// least 1). A model's work: per example, the multiply-adds of its products with their biases
/// (an MLP's: its linear parameters; a convolution's: its weights times its output positions)
/// plus its selection logits (at most every candidate per hidden unit). On the CPU a net with
/// convolutions trains alone: a cohort of ten MNIST-1D CNNs took 1.06x the time of training
/// them one at a time (`--cohort-size 10` against 1, five methods x two seeds, one thread).
pub fn default_cohort_size(plan: &[Planned], on_gpu: bool) -> usize {
    let convolutions = plan
        .iter()
        .any(|p| matches!(p.spec, net::LayerSpec::Conv { .. }));
    if convolutions && !on_gpu {
        return 1;
    }
    let products: usize = plan
        .iter()
        .filter_map(|p| {
            let (out, fan_in) = p.weight_dims()?;
            Some(p.rows_per_example() * out * (fan_in + 1))
        })
        .sum();
    let logits: usize =
        net::hidden_units(plan).iter().sum::<usize>() * mixed_act::Activation::COUNT;
    let per_model = products + logits;
    if on_gpu {
        (GPU_COHORT_PARAMETERS / per_model).clamp(1, GPU_COHORT_MODELS)
    } else if per_model > CPU_ALONE_ABOVE_PARAMETERS {
        1
    } else {
        (CPU_COHORT_PARAMETERS / per_model).max(1)
    }
}

/// The cohorts of a shard's pending runs: runs that may train together (the same data,
/// widths, epochs, batch size, learning rate, clipping, loss and evaluation; see
/// [`train::cohort_mismatch`]), in grid order, split into cohorts of at most `limit(widths)`.
pub fn cohorts<'a>(
    pending: &[&'a GridRun],
    limit: impl Fn(&TrainConfig) -> usize,
) -> Vec<Vec<&'a GridRun>> {
    let mut groups: Vec<Vec<&'a GridRun>> = Vec::new();
    for &run in pending {
        let c = &run.config;
        let fits = |g: &Vec<&GridRun>| {
            let first = &g[0].config;
            train::cohort_mismatch(first, c).is_none()
                && first.lr == c.lr
                && first.grad_clip == c.grad_clip
                && first.device == c.device
        };
        match groups.iter_mut().find(|g| fits(g)) {
            Some(g) => g.push(run),
            None => groups.push(vec![run]),
        }
    }
    groups
        .into_iter()
        .flat_map(|g| {
            let size = limit(&g[0].config).max(1);
            // Cohorts whose sizes differ by at most one, rather than full ones and a remainder.
            let count = g.len().div_ceil(size);
            let (per, bigger) = (g.len() / count, g.len() % count);
            let mut rest = g.as_slice();
            (0..count)
                .map(|c| {
                    let (cohort, tail) = rest.split_at(per + usize::from(c < bigger));
                    rest = tail;
                    cohort.to_vec()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn run_sweep(opts: &SweepOptions) -> Result<SweepReport> {
    let cfg = SweepConfig::from_file(&opts.config_file)?;
    let grid = expand(&cfg, opts.data_dir.clone(), opts.device)?;
    let store = ResultsStore::open(&opts.out)?;
    let (pending, mut report) = pending_runs(&cfg, &grid, &store, opts)?;
    if pending.is_empty() {
        return Ok(report);
    }
    let data = SweepData::load(&grid, &pending, opts)?;
    let commit = crate::git_commit();
    write_manifest(&cfg, &data, commit.clone(), opts)?;
    let cohort_size = opts.cohort_size.or(cfg.cohort_size);
    let on_gpu = data.device_name != "cpu";
    let cohorts = cohorts(&pending, |c| {
        cohort_size.unwrap_or_else(|| {
            default_cohort_size(&c.plan().expect("checked when the grid resolved"), on_gpu)
        })
    });
    if cohorts.len() < pending.len() {
        let sizes: Vec<String> = cohorts.iter().map(|c| c.len().to_string()).collect();
        opts.progress.note(&format!(
            "training in {} cohorts of {} models (--cohort-size {})",
            cohorts.len(),
            sizes.join(", "),
            cohort_size.map_or("default".to_string(), |n| n.to_string())
        ));
    }
    let boards = BoardLayout::of(
        &cfg,
        &opts.out,
        opts.tensorboard && cfg.tensorboard.unwrap_or(true),
    )?;
    let mut recorder = Recorder {
        store: &store,
        opts,
        commit: commit.unwrap_or_default(),
        device_name: &data.device_name,
        started: Instant::now(),
        pending: pending.len(),
    };
    for cohort in &cohorts {
        if crate::interrupt::requested() {
            return Err(interrupted(report.ran, opts));
        }
        let cohort_started = Instant::now();
        let results = train_cohort(cohort, &data, &boards, opts).map_err(|e| match e {
            CohortError::Interrupted => interrupted(report.ran, opts),
        })?;
        recorder.record(results, &mut report, (cohort_started, cohort.len()))?;
    }
    Ok(report)
}

/// The runs of the shard that are not finished yet, and the report's counts so far.
fn pending_runs<'g>(
    cfg: &SweepConfig,
    grid: &'g [GridRun],
    store: &ResultsStore,
    opts: &SweepOptions,
) -> Result<(Vec<&'g GridRun>, SweepReport)> {
    let done = store.finished_keys()?;
    let in_shard: Vec<&GridRun> = grid
        .iter()
        .filter(|r| opts.shard.contains(r.index))
        .collect();
    let mut report = SweepReport {
        total: grid.len(),
        in_shard: in_shard.len(),
        ..Default::default()
    };
    let pending: Vec<&GridRun> = in_shard
        .into_iter()
        .filter(|r| !done.contains(&r.key))
        .collect();
    report.skipped = report.in_shard - pending.len();
    opts.progress.note(&format!(
        "sweep {}: {} runs in the grid, {} in shard {}/{}, {} already done, {} to run",
        cfg.name.as_deref().unwrap_or("(unnamed)"),
        report.total,
        report.in_shard,
        opts.shard.index,
        opts.shard.count,
        report.skipped,
        pending.len()
    ));
    Ok((pending, report))
}

/// The device and the data splits of a shard's runs, all loaded (and every batch size checked)
/// before the first run starts: one device for the whole grid, one split per data set (for
/// MNIST-1D: per generator arguments) and split seed, so that every run of a data set sees the
/// same split.
struct SweepData {
    device: Device,
    device_name: String,
    splits: Vec<(DataId, Splits)>,
}

/// What tells two runs' data apart: the data set, MNIST-1D's arguments, the split seed.
type DataId = (DatasetName, String, u64);

fn data_id(c: &TrainConfig) -> DataId {
    (c.dataset, c.mnist1d.label(), c.split_seed)
}

impl SweepData {
    fn load(grid: &[GridRun], pending: &[&GridRun], opts: &SweepOptions) -> Result<Self> {
        let first = &pending[0].config;
        let (device, device_name) = device::select(first.device)?;
        let mut datasets: Vec<DatasetName> = Vec::new();
        for run in grid {
            if !datasets.contains(&run.config.dataset) {
                datasets.push(run.config.dataset);
            }
        }
        // One IDX folder cannot hold two data sets: without a folder per data set, the runs of
        // the second would silently read the first's images.
        if let (true, Some(dir)) = (datasets.len() > 1, first.data_dir_or_env()) {
            for d in &datasets {
                if !dir.join(d.name()).is_dir() {
                    bail_input!(
                        "the grid has {} datasets, so the data directory {} must hold one folder \
                         per dataset; {} is missing",
                        datasets.len(),
                        dir.display(),
                        dir.join(d.name()).display()
                    );
                }
            }
        }
        let mut data = Self {
            device,
            device_name,
            splits: Vec::new(),
        };
        for run in pending {
            let c = &run.config;
            let id = data_id(c);
            if !data.splits.iter().any(|(k, _)| *k == id) {
                let raw = data::load(c.dataset, &c.mnist1d, c.data_dir_or_env().as_deref())?;
                data.splits
                    .push((id, Splits::new(&raw, c.split_seed, &data.device)?));
            }
        }
        let what = format!("sweep config {}: batch_size", opts.config_file.display());
        for run in pending {
            data::check_batch_size(&run.config, data.of(&run.config), &what)?;
        }
        Ok(data)
    }

    /// The splits of a run's data set.
    fn of(&self, c: &TrainConfig) -> &Splits {
        let id = data_id(c);
        &self
            .splits
            .iter()
            .find(|(k, _)| *k == id)
            .expect("loaded")
            .1
    }
}

/// `manifest.json`: what this shard ran with, where and from what.
fn write_manifest(
    cfg: &SweepConfig,
    data: &SweepData,
    commit: Option<String>,
    opts: &SweepOptions,
) -> Result<()> {
    let data_source = data
        .splits
        .iter()
        .map(|(_, s)| s.source.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let device_name = &data.device_name;
    write_json(
        &opts.out.join("manifest.json"),
        &Manifest {
            config: cfg,
            config_file: opts.config_file.display().to_string(),
            shard: format!("{}/{}", opts.shard.index, opts.shard.count),
            crate_version: env!("CARGO_PKG_VERSION"),
            rustc_version: env!("SMARTMIXED_RUSTC_VERSION"),
            candle_version: env!("SMARTMIXED_CANDLE_VERSION"),
            features: device::features(),
            cpu_model: cpu_model(),
            cpu_caches: cpu_caches(),
            matmul_kernels: device::matmul_kernels(),
            cpu_simd: device::cpu_simd(),
            threads: rayon::current_num_threads(),
            gpu_name: (device_name != "cpu").then(|| device_name.clone()),
            device: device_name.clone(),
            git_dirty: commit.as_deref().is_some_and(|c| c.ends_with("-dirty")),
            git_commit: commit,
            data_source,
            written: timestamp(),
        },
    )
}

/// The error of an interrupted sweep, after saying what it kept.
fn interrupted(finished: usize, opts: &SweepOptions) -> anyhow::Error {
    eprintln!(
        "interrupted: the {finished} runs finished by this invocation are kept in {}; \
         run the same command again to resume",
        opts.out.join(crate::grid::store::RESULTS_FILE).display()
    );
    anyhow::Error::new(Interrupted)
}

/// Why a cohort produced no results to record.
enum CohortError {
    /// Ctrl-C: an interrupted cohort is dropped, not recorded; the next invocation runs it again.
    Interrupted,
}

/// A run's directory emptied, with its config.json.
fn prepare_run(run: &GridRun, dir: &Path, splits: &Splits, device_name: &str) -> Result<()> {
    prepare_run_dir(dir)?;
    RunRecord::new(&run.config, &splits.source, device_name).write(&dir.join("config.json"))
}

/// Trains one cohort and returns each run's outcome. A run whose directory cannot be prepared
/// fails alone; if the cohort as a whole fails (out of memory, a file that cannot be written),
/// each of its runs trains again alone, and only what fails alone fails.
fn train_cohort<'g>(
    cohort: &[&'g GridRun],
    data: &SweepData,
    boards: &BoardLayout,
    opts: &SweepOptions,
) -> std::result::Result<Vec<(&'g GridRun, Result<Summary>)>, CohortError> {
    let splits = data.of(&cohort[0].config);
    let mut results: Vec<(&GridRun, Result<Summary>)> = Vec::new();
    let mut ready: Vec<(&GridRun, PathBuf)> = Vec::new();
    for &run in cohort {
        let dir = opts.out.join("runs").join(&run.key);
        match prepare_run(run, &dir, splits, &data.device_name) {
            Ok(()) => ready.push((run, dir)),
            Err(e) => results.push((run, Err(e))),
        }
    }
    let train = |runs: &[(&GridRun, PathBuf)]| {
        let configs: Vec<&TrainConfig> = runs.iter().map(|(r, _)| &r.config).collect();
        let mut targets: Vec<Option<BoardTarget>> = Vec::new();
        for c in &configs {
            let target = boards.target(c);
            if !boards.enabled {
                board::clear_event_files(&target.dir)?;
            }
            targets.push(boards.enabled.then_some(target));
        }
        let outs: Vec<RunOut> = runs
            .iter()
            .zip(&targets)
            .map(|((_, dir), board)| RunOut {
                dir,
                board: board.as_ref(),
            })
            .collect();
        train::train_stack(&configs, splits, &data.device, &outs, opts.progress)
    };
    let is_interrupt = |e: &anyhow::Error| e.downcast_ref::<Interrupted>().is_some();
    if ready.is_empty() {
        return Ok(results);
    }
    match train(&ready) {
        Ok(summaries) => {
            for ((run, _), summary) in ready.iter().zip(summaries) {
                results.push((run, Ok(summary)));
            }
        }
        Err(e) if is_interrupt(&e) => return Err(CohortError::Interrupted),
        Err(e) if ready.len() > 1 => {
            opts.progress.note(&format!(
                "a cohort of {} failed ({e:#}); training its runs one at a time",
                ready.len()
            ));
            for (run, dir) in &ready {
                let alone = prepare_run(run, dir, splits, &data.device_name)
                    .and_then(|_| train(&[(*run, dir.clone())]))
                    .map(|mut s| s.pop().expect("one summary"));
                if matches!(&alone, Err(e) if is_interrupt(e)) {
                    return Err(CohortError::Interrupted);
                }
                results.push((run, alone));
            }
        }
        Err(e) => {
            for (run, _) in &ready {
                results.push((run, Err(anyhow::anyhow!("{e:#}"))));
            }
        }
    }
    Ok(results)
}

/// Writes finished runs to the store and says how far the sweep is.
struct Recorder<'a> {
    store: &'a ResultsStore,
    opts: &'a SweepOptions,
    commit: String,
    device_name: &'a str,
    started: Instant,
    /// Runs this invocation set out to train.
    pending: usize,
}

impl Recorder<'_> {
    fn record(
        &mut self,
        results: Vec<(&GridRun, Result<Summary>)>,
        report: &mut SweepReport,
        (cohort_started, cohort_len): (Instant, usize),
    ) -> Result<()> {
        for (run, result) in results {
            let row = result_row(run, &result, self.device_name, &self.commit);
            let shares = match &result {
                Ok(summary) => share_rows(run, summary),
                Err(_) => Vec::new(),
            };
            if row.status != "ok" {
                report.failed += 1;
            }
            self.store.record(&row, &shares)?;
            report.ran += 1;
            let done = report.ran;
            let elapsed = self.started.elapsed().as_secs_f64();
            let left = elapsed / done as f64 * (self.pending - done) as f64;
            let shown = match (row.status.as_str(), row.test_acc) {
                ("ok", Some(acc)) => format!("test {:.2}%", 100.0 * acc),
                (status, _) => status.to_string(),
            };
            let shared = match cohort_len {
                1 => String::new(),
                n => format!(" for a cohort of {n}"),
            };
            self.opts.progress.note(&format!(
                "[{done}/{}] {}: {shown} ({:.0}s{shared}); elapsed {}, about {} left",
                self.pending,
                run.label(),
                cohort_started.elapsed().as_secs_f64(),
                minutes(elapsed),
                minutes(left)
            ));
        }
        Ok(())
    }
}

/// A clean directory for a run's files (a killed earlier attempt may have left some).
fn prepare_run_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating run directory {}", dir.display()))
}

fn minutes(seconds: f64) -> String {
    format!(
        "{}m{:02}s",
        (seconds / 60.0) as u64,
        (seconds % 60.0) as u64
    )
}

fn result_row(run: &GridRun, outcome: &Result<Summary>, device: &str, commit: &str) -> ResultRow {
    let c = &run.config;
    let bound = |v: Option<f64>| v.map_or("none".to_string(), |v| v.to_string());
    let summary = outcome.as_ref().ok();
    let status = match outcome {
        Ok(s) if s.status == "ok" => "ok".to_string(),
        Ok(s) => format!("{} (epoch {})", s.status, s.diverged_epoch.unwrap_or(0)),
        Err(e) => format!("failed: {}", e.to_string().lines().next().unwrap_or("")),
    };
    ResultRow {
        key: run.key.clone(),
        dataset: c.dataset.name().to_string(),
        arch: c.arch,
        net: c.net.map(|n| n.to_string()).unwrap_or_default(),
        widths: widths_label(&c.widths),
        depth: c.widths.len(),
        method: c.method.to_string(),
        seed: c.seed,
        preset: kebab(&c.preset),
        epochs: c.epochs,
        phase1_epochs: c.phase1_epochs,
        lr: c.lr,
        batch_size: c.batch_size,
        tau: c.tau,
        clamp: bound(c.clamp),
        grad_clip: bound(c.grad_clip),
        phase2_init: kebab(&c.phase2_init),
        loss: kebab(&c.loss),
        eval_selection: kebab(&c.eval_selection),
        pool: match c.method.reads("pool") {
            true => c.pool.to_string(),
            false => String::new(),
        },
        split_seed: c.split_seed,
        mnist1d: match c.dataset {
            DatasetName::Mnist1d => c.mnist1d.label(),
            _ => String::new(),
        },
        not_applicable: c.method.not_applicable(),
        n_params: summary.map(|s| s.n_params),
        best_epoch: summary.and_then(|s| s.best_epoch),
        val_loss: summary.and_then(|s| s.val_loss),
        val_acc: summary.and_then(|s| s.val_acc),
        test_acc: summary.and_then(|s| s.test_acc),
        phase1_test_acc: summary.and_then(|s| s.phase1_test_acc),
        epoch_seconds: summary.map(|s| s.epoch_seconds),
        phase1_epoch_seconds: summary.and_then(|s| s.phase1_epoch_seconds),
        phase2_epoch_seconds: summary.and_then(|s| s.phase2_epoch_seconds),
        train_seconds: summary.map(|s| s.train_seconds),
        cohort_models: summary.map(|s| s.cohort_models),
        epoch_seconds_per_model: summary.map(|s| s.epoch_seconds / s.cohort_models.max(1) as f64),
        status,
        device: device.to_string(),
        threads: rayon::current_num_threads(),
        git_commit: commit.to_string(),
        timestamp: timestamp(),
    }
}

fn share_rows(run: &GridRun, summary: &Summary) -> Vec<ShareRow> {
    let Some(shares) = &summary.layer_shares else {
        return Vec::new();
    };
    shares
        .iter()
        .enumerate()
        .map(|(l, s)| ShareRow {
            key: run.key.clone(),
            arch: run.config.arch,
            widths: widths_label(&run.config.widths),
            depth: run.config.widths.len(),
            seed: run.config.seed,
            layer: l + 1,
            width: run.config.widths[l],
            shares: {
                let mut by_id = [None; mixed_act::Activation::COUNT];
                for (a, &share) in run.config.pool.0.members().iter().zip(s) {
                    by_id[a.id()] = Some(share);
                }
                by_id
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::net::Shape;

    const BASE: &str = r#"
name = "axes"
dataset = "mnist"
architectures = [1, 3]
methods = ["relu", "elu", "smartmixed"]
seeds = [1, 2]
"#;

    fn parse(extra: &str) -> Result<SweepConfig> {
        let cfg: SweepConfig = toml::from_str(&format!("{BASE}{extra}"))?;
        cfg.axes()?;
        Ok(cfg)
    }

    fn grid(extra: &str) -> Vec<GridRun> {
        expand(&parse(extra).unwrap(), None, None).unwrap()
    }

    /// The default cohort sizes: on a GPU large; on the CPU compute-bound models alone and
    /// small ones together up to the parameter budget.
    #[test]
    fn default_cohort_sizes_follow_the_device_and_the_model() {
        let image = Shape {
            spatial: vec![28, 28],
            channels: 1,
        };
        let signal = Shape {
            spatial: vec![40],
            channels: 1,
        };
        let size = |widths: &[usize], input: &Shape, on_gpu| {
            default_cohort_size(&net::plan(&net::mlp(widths), input).unwrap(), on_gpu)
        };
        assert_eq!(size(&[512, 256, 128, 64], &image, false), 1);
        assert_eq!(size(&[512], &image, false), 1);
        assert_eq!(size(&[64, 32], &image, false), 55);
        assert!(size(&[512, 256, 128, 64], &image, true) >= 21);
        assert!(size(&[16], &image, false) > 200);
        assert_eq!(size(&[256, 128, 64], &image, false), 1);
        assert!(size(&[256, 128, 64], &signal, false) > 1);
        // Convolutions: the work of every output position.
        let conv = |n: NetName, input: &Shape, on_gpu| {
            default_cohort_size(&net::plan(&n.layers(), input).unwrap(), on_gpu)
        };
        assert_eq!(conv(NetName::Mnist1dCnn, &signal, false), 1);
        assert!(conv(NetName::Mnist1dCnn, &signal, true) > 50);
        assert!(conv(NetName::Lenet5, &image, true) > 1);
    }

    #[test]
    fn grid_axes_multiply_runs_but_not_baselines_on_settings_they_do_not_read() {
        // No [grid]: architectures x methods x seeds.
        assert_eq!(grid("").len(), 2 * 3 * 2);
        // tau (4 values) x phase1_epochs (2): SmartMixed 2 archs x 8 x 2 seeds = 32 runs;
        // each baseline once per arch and seed (2 x 2 x 2 = 8).
        let runs = grid("[grid]\ntau = [0.1, 0.3, 1.0, 3.0]\nphase1_epochs = [5, 15]\n");
        let count = |m: &str| {
            runs.iter()
                .filter(|r| r.config.method.to_string() == m)
                .count()
        };
        assert_eq!(
            (count("smartmixed"), count("relu"), count("elu")),
            (32, 4, 4)
        );
        assert_eq!(runs.len(), 40);
        // Every run is distinct and indexed in order.
        let keys: std::collections::HashSet<&str> = runs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys.len(), runs.len());
        assert!(runs.iter().enumerate().all(|(i, r)| r.index == i));
        // The baseline keeps the preset's tau and says which settings it does not read.
        let relu = runs
            .iter()
            .find(|r| r.config.method.to_string() == "relu")
            .unwrap();
        assert_eq!(relu.config.tau, 0.3);
        assert!(relu.axis_values.is_empty());
        assert_eq!(
            relu.config.method.not_applicable(),
            "phase1_epochs tau clamp phase2_init eval_selection pool"
        );
        // The same baseline run as in a grid without axes: equal runs have equal keys.
        let plain = grid("");
        assert!(plain.iter().any(|r| r.key == relu.key));
        let taus: Vec<f64> = runs
            .iter()
            .filter(|r| {
                r.config.method.has_choices() && r.config.seed == 1 && r.config.arch == Some(1)
            })
            .map(|r| r.config.tau)
            .collect();
        assert_eq!(taus, [0.1, 0.1, 0.3, 0.3, 1.0, 1.0, 3.0, 3.0]);
        // An axis every method reads multiplies the baselines too.
        let runs = grid("[grid]\nlr = [3e-4, 1e-3]\nphase2_init = [\"warm\", \"fresh\"]\n");
        assert_eq!(runs.len(), 2 * 2 * (2 + 2 + 2 * 2));
        assert!(runs
            .iter()
            .any(|r| r.config.phase2_init == crate::run::config::Phase2Init::Fresh));
        let label = runs
            .iter()
            .find(|r| r.config.method.has_choices())
            .unwrap()
            .label();
        assert_eq!(label, "arch 1 smartmixed seed 1 lr=0.0003 phase2_init=warm");
    }

    #[test]
    fn bad_grid_tables_are_input_errors_that_name_the_key() {
        let cases = [
            ("[grid]\ntemperature = [0.1]\n", "temperature"),
            ("[grid]\ntau = 0.1\n", "must be a list"),
            ("[grid]\ntau = []\n", "at least one value"),
            ("[grid]\ntau = [0.1, 0.1]\n", "twice (0.1 and 0.1)"),
            ("[grid]\ntau = [1, 1.0]\n", "twice (1 and 1.0)"),
            ("[grid]\nclamp = [\"none\", \"NONE\"]\n", "twice"),
            ("[grid]\ntau = [\"x\"]\n", "'tau' = x"),
            ("[grid]\nseed = [1, 2]\n", "'seeds'"),
            ("[grid]\nmethod = [\"relu\"]\n", "'methods'"),
            ("[grid]\narch = [1]\n", "'architectures'"),
            ("[grid]\nnet = [\"lenet5\"]\n", "'architectures'"),
            (
                "[grid]\ndataset = [\"mnist\"]\n",
                "'dataset' is set at the top",
            ),
            (
                "[overrides]\ntau = 0.5\n[grid]\ntau = [0.1]\n",
                "in both [overrides] and [grid]",
            ),
        ];
        for (extra, needle) in cases {
            let err = parse(extra).unwrap_err();
            assert!(
                err.downcast_ref::<crate::error::InputError>().is_some(),
                "{extra}: {err}"
            );
            assert!(err.to_string().contains(needle), "{extra}: {err}");
        }
        // A value the setting rejects is caught when the grid is expanded.
        let err = expand(&parse("[grid]\ntau = [0.1, -1.0]\n").unwrap(), None, None).unwrap_err();
        assert!(format!("{err:#}").contains("--tau"), "{err:#}");
    }
}
