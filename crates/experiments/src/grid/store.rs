//! A sweep's results on disk: `results.csv` (one row per finished run), `layer_shares.csv`
//! (SmartMixed's function shares per layer) and `manifest.json`.
//!
//! Every update takes an exclusive lock on `DIR/.lock`, reads the current file, adds the new
//! rows and replaces the file by rename. A reader or a process killed at any moment sees the
//! old file or the new one, never a torn row, and shards writing one directory cannot lose each
//! other's rows. A run already present (another process finished it first) is not added twice.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::run::files::write_atomic;

/// One row of `results.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultRow {
    pub key: String,
    pub dataset: String,
    /// Architecture id, empty for explicit widths.
    pub arch: Option<u32>,
    /// Hidden widths joined by '-', e.g. 512-256-128-64.
    pub widths: String,
    pub depth: usize,
    pub method: String,
    pub seed: u64,
    pub preset: String,
    pub epochs: usize,
    pub phase1_epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub tau: f64,
    pub clamp: String,
    pub grad_clip: String,
    pub phase2_init: String,
    pub loss: String,
    pub eval_selection: String,
    pub split_seed: u64,
    /// The settings above that this run's method does not read (a baseline's: the
    /// SmartMixed-only ones): the row stands for every value of them. Space-separated.
    #[serde(default)]
    pub not_applicable: String,
    pub n_params: Option<usize>,
    pub best_epoch: Option<usize>,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub test_acc: Option<f64>,
    pub phase1_test_acc: Option<f64>,
    pub epoch_seconds: Option<f64>,
    pub phase1_epoch_seconds: Option<f64>,
    pub phase2_epoch_seconds: Option<f64>,
    pub train_seconds: Option<f64>,
    /// `ok`, `diverged (epoch N)` or `failed: <first line of the error>`.
    pub status: String,
    pub device: String,
    pub threads: usize,
    pub git_commit: String,
    pub timestamp: String,
}

/// One row of `layer_shares.csv`: a SmartMixed run's share of each function in one layer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShareRow {
    pub key: String,
    pub arch: Option<u32>,
    pub widths: String,
    pub depth: usize,
    pub seed: u64,
    pub layer: usize,
    pub width: usize,
    pub relu: f64,
    pub sigmoid: f64,
    pub tanh: f64,
    pub leaky_relu: f64,
    pub elu: f64,
    pub selu: f64,
}

pub const RESULTS_FILE: &str = "results.csv";
pub const SHARES_FILE: &str = "layer_shares.csv";

pub struct ResultsStore {
    dir: PathBuf,
}

impl ResultsStore {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating sweep directory {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Holds the directory's lock until dropped.
    fn lock(&self) -> Result<File> {
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    }

    /// The rows of `results.csv` (empty when it does not exist yet).
    pub fn results(&self) -> Result<Vec<ResultRow>> {
        let mut rows: Vec<ResultRow> = read_rows(&self.dir.join(RESULTS_FILE))?;
        // Rows written before the column existed: a baseline never read those settings then
        // either, so the column is filled in, not guessed.
        for row in rows.iter_mut().filter(|r| r.not_applicable.is_empty()) {
            if let Ok(method) = row.method.parse() {
                row.not_applicable = crate::grid::sweep::not_applicable(method);
            }
        }
        Ok(rows)
    }

    pub fn shares(&self) -> Result<Vec<ShareRow>> {
        read_rows(&self.dir.join(SHARES_FILE))
    }

    /// Keys of the runs that already have a row.
    pub fn finished_keys(&self) -> Result<HashSet<String>> {
        Ok(self.results()?.into_iter().map(|r| r.key).collect())
    }

    /// Adds a run's row and its share rows; returns false when the run was already recorded.
    pub fn record(&self, row: &ResultRow, shares: &[ShareRow]) -> Result<bool> {
        let _lock = self.lock()?;
        let mut rows = self.results()?;
        if rows.iter().any(|r| r.key == row.key) {
            return Ok(false);
        }
        // Shares first: a share row without its result row is dropped and rewritten on rerun.
        let mut share_rows: Vec<ShareRow> = self
            .shares()?
            .into_iter()
            .filter(|s| s.key != row.key)
            .collect();
        share_rows.extend_from_slice(shares);
        write_rows(&self.dir.join(SHARES_FILE), &share_rows)?;
        rows.push(row.clone());
        write_rows(&self.dir.join(RESULTS_FILE), &rows)?;
        Ok(true)
    }
}

fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.with_context(|| format!("{}: row {} is not a valid record", path.display(), i + 2))
        })
        .collect()
}

fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer.into_inner().context("encoding CSV")?;
    // An empty list still needs its header for readers; csv only writes it with the first row.
    if rows.is_empty() {
        return Ok(());
    }
    write_atomic(path, &bytes)
}
