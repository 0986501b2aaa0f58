//! The files one run leaves in its output directory. Whole files are written to a temporary
//! name and renamed, so a reader never sees half a file; `epochs.csv` is appended and flushed
//! one row per finished epoch, so an interrupted run keeps every finished epoch.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mixed_act::{Activation, Pool};
use serde::Serialize;

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().ok();
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// One row of `epochs.csv`.
pub struct EpochRow {
    pub epoch: usize,
    /// "baseline", "1" or "2".
    pub phase: &'static str,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub seconds: f64,
    /// Phase 1: per hidden layer, the share of neurons choosing each function of the pool.
    pub shares: Option<Vec<Vec<f64>>>,
}

/// `epochs.csv`: epoch, phase, train_loss, val_loss, val_acc, seconds, then one share column
/// per hidden layer and function of the pool (`share_l1_relu`, ...), filled in phase 1.
pub struct EpochLog {
    writer: csv::Writer<File>,
    header: Vec<String>,
    share_columns: usize,
    path: PathBuf,
}

impl EpochLog {
    pub fn create(path: &Path, layers: usize, pool: Pool) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = csv::Writer::from_writer(file);
        let mut header: Vec<String> = [
            "epoch",
            "phase",
            "train_loss",
            "val_loss",
            "val_acc",
            "seconds",
        ]
        .map(String::from)
        .to_vec();
        for l in 1..=layers {
            header.extend(pool.members().iter().map(|a| format!("share_l{l}_{a}")));
        }
        writer.write_record(&header)?;
        writer.flush()?;
        Ok(Self {
            writer,
            header,
            share_columns: layers * pool.len(),
            path: path.to_path_buf(),
        })
    }

    /// The file's columns.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Appends `row` (flushed) and returns its fields as written.
    pub fn append(&mut self, row: &EpochRow) -> Result<Vec<String>> {
        let mut record = vec![
            row.epoch.to_string(),
            row.phase.to_string(),
            format!("{:.6}", row.train_loss),
            format!("{:.6}", row.val_loss),
            format!("{:.6}", row.val_acc),
            format!("{:.3}", row.seconds),
        ];
        match &row.shares {
            Some(shares) => record.extend(
                shares
                    .iter()
                    .flat_map(|s| s.iter().map(|v| format!("{v:.6}"))),
            ),
            None => record.extend(std::iter::repeat_n(String::new(), self.share_columns)),
        }
        self.writer.write_record(&record)?;
        self.writer
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(record)
    }
}

/// `choices.csv`: layer, neuron, activation (layers and neurons counted from 1 and 0).
pub fn write_choices(path: &Path, choices: &[Vec<Activation>]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["layer", "neuron", "activation"])?;
    for (l, layer) in choices.iter().enumerate() {
        for (n, a) in layer.iter().enumerate() {
            writer.write_record([(l + 1).to_string(), n.to_string(), a.name().to_string()])?;
        }
    }
    write_atomic(path, &writer.into_inner().context("encoding choices.csv")?)
}

/// Per layer, the share of neurons using each function of the pool, in pool order.
pub fn shares(choices: &[Vec<Activation>], pool: Pool) -> Vec<Vec<f64>> {
    choices
        .iter()
        .map(|layer| {
            let counts = mixed_act::count_activations(layer);
            let n = layer.len().max(1) as f64;
            pool.members()
                .iter()
                .map(|a| counts[a.id()] as f64 / n)
                .collect()
        })
        .collect()
}

/// `config.json`: every resolved setting, and where and with what the run was made.
#[derive(Serialize)]
pub struct RunRecord<'a> {
    #[serde(flatten)]
    pub config: &'a crate::run::config::TrainConfig,
    pub data_source: &'a str,
    pub device_used: &'a str,
    pub threads: usize,
    pub version: &'static str,
    pub git_commit: Option<String>,
    /// The matrix-product kernel family and the CPU's SIMD sets: bits depend on both.
    pub matmul_kernels: &'static str,
    pub cpu_simd: String,
}

impl<'a> RunRecord<'a> {
    pub fn new(
        config: &'a crate::run::config::TrainConfig,
        data_source: &'a str,
        device_used: &'a str,
    ) -> Self {
        Self {
            config,
            data_source,
            device_used,
            threads: rayon::current_num_threads(),
            version: env!("CARGO_PKG_VERSION"),
            git_commit: crate::git_commit(),
            matmul_kernels: crate::device::matmul_kernels(),
            cpu_simd: crate::device::cpu_simd(),
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }
}
