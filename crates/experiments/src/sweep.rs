//! A grid of (architecture, method, seed) runs through the same code as `train`, with resume
//! and sharding. Results go to a [`ResultsStore`]; each run's own files to `DIR/runs/<key>/`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bail_input;
use crate::config::{DatasetName, DeviceChoice, Method, Preset, Settings, TrainConfig};
use crate::data::{self, Splits};
use crate::device;
use crate::error::input_error;
use crate::interrupt::Interrupted;
use crate::progress::Progress;
use crate::run_files::{write_json, RunRecord};
use crate::store::{ResultRow, ResultsStore, ShareRow};
use crate::train::{self, Summary};

/// An architecture in a sweep config: a reference id or explicit widths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArchSpec {
    Id(u32),
    Widths(Vec<usize>),
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
        Ok(cfg)
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
}

impl GridRun {
    pub fn label(&self) -> String {
        let arch = match self.config.arch {
            Some(id) => format!("arch {id}"),
            None => format!("widths {}", widths_label(&self.config.widths)),
        };
        format!("{arch} {} seed {}", self.config.method, self.config.seed)
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

/// Every run of the grid, in a fixed order (architectures, then methods, then seeds).
pub fn expand(
    cfg: &SweepConfig,
    data_dir: Option<PathBuf>,
    device: Option<DeviceChoice>,
) -> Result<Vec<GridRun>> {
    let mut runs = Vec::new();
    for arch in &cfg.architectures {
        for &method in &cfg.methods {
            for &seed in &cfg.seeds {
                let mut layer = cfg.overrides.clone();
                layer.preset = None;
                layer.dataset = cfg.dataset.or(layer.dataset);
                layer.data_dir = data_dir.clone().or(cfg.data_dir.clone()).or(layer.data_dir);
                layer.device = device.or(cfg.device).or(layer.device);
                (layer.arch, layer.widths) = match arch {
                    ArchSpec::Id(id) => (Some(*id), None),
                    ArchSpec::Widths(w) => (None, Some(w.clone())),
                };
                layer.method = Some(method);
                layer.seed = Some(seed);
                let config =
                    TrainConfig::resolve(None, Some(cfg.preset.unwrap_or(Preset::Default)), &layer)
                        .with_context(|| format!("grid entry {arch:?} {method} seed {seed}"))?;
                let key = run_key(&config);
                runs.push(GridRun {
                    index: runs.len(),
                    config,
                    key,
                });
            }
        }
    }
    Ok(runs)
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
}

pub fn run_sweep(opts: &SweepOptions) -> Result<SweepReport> {
    let cfg = SweepConfig::from_file(&opts.config_file)?;
    let grid = expand(&cfg, opts.data_dir.clone(), opts.device)?;
    let store = ResultsStore::open(&opts.out)?;
    let done = store.finished_keys()?;
    let todo: Vec<&GridRun> = grid
        .iter()
        .filter(|r| opts.shard.contains(r.index))
        .collect();
    let mut report = SweepReport {
        total: grid.len(),
        in_shard: todo.len(),
        ..Default::default()
    };
    let pending: Vec<&GridRun> = todo
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
    if pending.is_empty() {
        return Ok(report);
    }

    // One data set, split and device for the whole grid: every run sees the same split.
    let first = &pending[0].config;
    let (device, device_name) = device::select(first.device)?;
    let raw = data::load(first.dataset, first.data_dir_or_env().as_deref())?;
    let splits = Splits::new(&raw, first.split_seed, &device)?;
    let what = format!("sweep config {}: batch_size", opts.config_file.display());
    for run in &pending {
        data::check_batch_size(run.config.batch_size, &splits, &what)?;
    }
    let commit = crate::git_commit();
    write_json(
        &opts.out.join("manifest.json"),
        &Manifest {
            config: &cfg,
            config_file: opts.config_file.display().to_string(),
            shard: format!("{}/{}", opts.shard.index, opts.shard.count),
            crate_version: env!("CARGO_PKG_VERSION"),
            rustc_version: env!("SMARTMIXED_RUSTC_VERSION"),
            candle_version: env!("SMARTMIXED_CANDLE_VERSION"),
            features: device::features(),
            cpu_model: cpu_model(),
            threads: rayon::current_num_threads(),
            gpu_name: (device_name != "cpu").then(|| device_name.clone()),
            device: device_name.clone(),
            git_dirty: commit.as_deref().is_some_and(|c| c.ends_with("-dirty")),
            git_commit: commit.clone(),
            data_source: splits.source.clone(),
            written: timestamp(),
        },
    )?;

    let started = Instant::now();
    let interrupted = |finished: usize| {
        eprintln!(
            "interrupted: the {finished} runs finished by this invocation are kept in {}; \
             run the same command again to resume",
            opts.out.join(crate::store::RESULTS_FILE).display()
        );
        anyhow::Error::new(Interrupted)
    };
    for (i, run) in pending.iter().enumerate() {
        if crate::interrupt::requested() {
            return Err(interrupted(report.ran));
        }
        if run.config.split_seed != first.split_seed || run.config.dataset != first.dataset {
            bail_input!(
                "all runs of a sweep must share dataset and split_seed (grid entry {})",
                run.label()
            );
        }
        let run_dir = opts.out.join("runs").join(&run.key);
        let run_started = Instant::now();
        // Anything that goes wrong inside one run becomes that run's status; the sweep goes on.
        let outcome = prepare_run_dir(&run_dir)
            .and_then(|_| {
                RunRecord::new(&run.config, &splits.source, &device_name)
                    .write(&run_dir.join("config.json"))
            })
            .and_then(|_| train::train(&run.config, &splits, &device, &run_dir, opts.progress));
        // An interrupted run is dropped, not recorded: the next invocation runs it again.
        if matches!(&outcome, Err(e) if e.downcast_ref::<Interrupted>().is_some()) {
            return Err(interrupted(report.ran));
        }
        let row = result_row(run, &outcome, &device_name, commit.as_deref().unwrap_or(""));
        let shares = match &outcome {
            Ok(summary) => share_rows(run, summary),
            Err(_) => Vec::new(),
        };
        if row.status != "ok" {
            report.failed += 1;
        }
        store.record(&row, &shares)?;
        report.ran += 1;
        let elapsed = started.elapsed().as_secs_f64();
        let left = elapsed / (i + 1) as f64 * (pending.len() - i - 1) as f64;
        let result = match (row.status.as_str(), row.test_acc) {
            ("ok", Some(acc)) => format!("test {:.2}%", 100.0 * acc),
            (status, _) => status.to_string(),
        };
        opts.progress.note(&format!(
            "[{}/{}] {}: {result} ({:.0}s); elapsed {}, about {} left",
            i + 1,
            pending.len(),
            run.label(),
            run_started.elapsed().as_secs_f64(),
            minutes(elapsed),
            minutes(left)
        ));
    }
    Ok(report)
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
        split_seed: c.split_seed,
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
            relu: s[0],
            sigmoid: s[1],
            tanh: s[2],
            leaky_relu: s[3],
            elu: s[4],
            selu: s[5],
        })
        .collect()
}

/// A settings enum as the kebab-case name it has in files.
fn kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
