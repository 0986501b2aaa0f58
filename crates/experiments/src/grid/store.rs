//! A sweep's results on disk: `results.csv` (one row per finished run), `layer_shares.csv`
//! (SmartMixed's function shares per layer) and `manifest.json`.
//!
//! `layer_shares.csv` has one column per function that some run's pool holds, in id order (so
//! a sweep over the paper's pool has the six columns it always had); a run's cell is empty for a
//! function outside its pool, and 0 for one it holds but no neuron chose.
//!
//! Every update takes an exclusive lock on `DIR/.lock`, reads the current file, adds the new
//! rows and replaces the file by rename. A reader or a process killed at any moment sees the
//! old file or the new one, never a torn row, and shards writing one directory cannot lose each
//! other's rows. A run already present (another process finished it first) is not added twice.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mixed_act::Activation;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::run::files::write_atomic;
use crate::run::method::Method;

/// One row of `results.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultRow {
    pub key: String,
    pub dataset: String,
    /// Architecture id, empty for explicit widths and named nets.
    pub arch: Option<u32>,
    /// The named net with convolutions, empty for MLPs (and in rows from before the column).
    #[serde(default)]
    pub net: String,
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
    /// SmartMixed's pool (empty in rows written before pools: the paper's six).
    #[serde(default)]
    pub pool: String,
    pub split_seed: u64,
    /// MNIST-1D's generator arguments as `Mnist1dArgs::label` writes them (`published`, or
    /// those that differ); empty for other data sets and in rows from before the column.
    #[serde(default)]
    pub mnist1d: String,
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
    /// How many runs trained together in this run's cohort (the `*epoch_seconds` columns are
    /// the cohort's wall time per epoch; absent in rows from before cohorts: 1).
    #[serde(default)]
    pub cohort_models: Option<usize>,
    /// One model's share of the cohort's epoch: epoch_seconds / cohort_models.
    #[serde(default)]
    pub epoch_seconds_per_model: Option<f64>,
    /// `ok`, `diverged (epoch N)` or `failed: <first line of the error>`.
    pub status: String,
    pub device: String,
    pub threads: usize,
    pub git_commit: String,
    pub timestamp: String,
}

/// One row of `layer_shares.csv`: a SmartMixed run's share of each function in one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareRow {
    pub key: String,
    pub arch: Option<u32>,
    pub widths: String,
    pub depth: usize,
    pub seed: u64,
    pub layer: usize,
    pub width: usize,
    /// By activation id: the share of the layer's neurons choosing it, `None` when the run's
    /// pool does not hold it.
    pub shares: [Option<f64>; Activation::COUNT],
}

/// The columns of `layer_shares.csv` before the functions.
const SHARE_FIXED_COLUMNS: [&str; 7] = ["key", "arch", "widths", "depth", "seed", "layer", "width"];

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
        for row in rows.iter_mut() {
            let Some(method) = Method::from_name(&row.method) else {
                continue;
            };
            if row.not_applicable.is_empty() {
                row.not_applicable = method.not_applicable();
            } else if !method.reads("pool") && !row.not_applicable.split(' ').any(|s| s == "pool") {
                // Written before pools existed; baselines never read one.
                row.not_applicable.push_str(" pool");
            }
            if row.pool.is_empty() && method.reads("pool") {
                row.pool = mixed_act::Pool::paper().to_string();
            }
        }
        Ok(rows)
    }

    pub fn shares(&self) -> Result<Vec<ShareRow>> {
        read_share_rows(&self.dir.join(SHARES_FILE))
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
        write_share_rows(&self.dir.join(SHARES_FILE), &share_rows)?;
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

/// `layer_shares.csv`: the fixed columns, then one per function some row's pool holds.
fn read_share_rows(path: &Path) -> Result<Vec<ShareRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let fixed: Vec<&str> = header.iter().take(SHARE_FIXED_COLUMNS.len()).collect();
    if fixed != SHARE_FIXED_COLUMNS {
        bail!(
            "{}: the header must start with {}",
            path.display(),
            SHARE_FIXED_COLUMNS.join(",")
        );
    }
    let functions = header
        .iter()
        .skip(SHARE_FIXED_COLUMNS.len())
        .map(|name| {
            name.parse::<Activation>()
                .with_context(|| format!("{}: column '{name}'", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let bad = || format!("{}: row {} is not a valid record", path.display(), i + 2);
        let record = record.with_context(bad)?;
        let field = |c: usize| record.get(c).unwrap_or("");
        let number = |c: usize| -> Result<u64> { field(c).parse().with_context(bad) };
        let mut shares = [None; Activation::COUNT];
        for (j, a) in functions.iter().enumerate() {
            let cell = field(SHARE_FIXED_COLUMNS.len() + j);
            if !cell.is_empty() {
                shares[a.id()] = Some(cell.parse().with_context(bad)?);
            }
        }
        rows.push(ShareRow {
            key: field(0).to_string(),
            arch: match field(1) {
                "" => None,
                id => Some(id.parse().with_context(bad)?),
            },
            widths: field(2).to_string(),
            depth: number(3)? as usize,
            seed: number(4)?,
            layer: number(5)? as usize,
            width: number(6)? as usize,
            shares,
        });
    }
    Ok(rows)
}

fn write_share_rows(path: &Path, rows: &[ShareRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let held: BTreeSet<Activation> = rows
        .iter()
        .flat_map(|r| {
            Activation::ALL
                .into_iter()
                .filter(|a| r.shares[a.id()].is_some())
        })
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = SHARE_FIXED_COLUMNS.map(String::from).to_vec();
    header.extend(held.iter().map(|a| a.name().to_string()));
    writer.write_record(&header)?;
    for r in rows {
        let mut record = vec![
            r.key.clone(),
            r.arch.map_or(String::new(), |a| a.to_string()),
            r.widths.clone(),
            r.depth.to_string(),
            r.seed.to_string(),
            r.layer.to_string(),
            r.width.to_string(),
        ];
        // ryu's shortest round-trip form, as csv's serde writer prints f64: files from before
        // pools come out byte for byte.
        let mut buffer = ryu::Buffer::new();
        record.extend(
            held.iter()
                .map(|a| r.shares[a.id()].map_or(String::new(), |v| buffer.format(v).to_string())),
        );
        writer.write_record(&record)?;
    }
    let bytes = writer.into_inner().context("encoding CSV")?;
    write_atomic(path, &bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Rewriting a committed layer_shares.csv (the paper's pool) gives its bytes back.
    #[test]
    fn committed_share_files_round_trip_byte_for_byte() {
        let results = crate::crate_dir().join("../../results");
        let tmp = std::env::temp_dir().join(format!("smartmixed-shares-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        for sweep in ["quick", "standard", "ablation"] {
            let path = results.join(sweep).join(SHARES_FILE);
            let rows = read_share_rows(&path).unwrap();
            assert!(!rows.is_empty(), "{sweep}");
            let copy = tmp.join(format!("{sweep}.csv"));
            write_share_rows(&copy, &rows).unwrap();
            assert_eq!(
                std::fs::read(&copy).unwrap(),
                std::fs::read(&path).unwrap(),
                "{sweep}"
            );
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    /// Runs over different pools share one file: a column per function some pool holds, empty
    /// cells for functions outside a run's pool, 0 for held but unchosen ones.
    #[test]
    fn share_rows_of_different_pools_share_one_file() {
        let row = |key: &str, shares: &[(Activation, f64)]| {
            let mut by_id = [None; Activation::COUNT];
            for &(a, v) in shares {
                by_id[a.id()] = Some(v);
            }
            ShareRow {
                key: key.into(),
                arch: None,
                widths: "8".into(),
                depth: 1,
                seed: 1,
                layer: 1,
                width: 8,
                shares: by_id,
            }
        };
        let rows = vec![
            row("a", &[(Activation::Relu, 0.75), (Activation::Gelu, 0.25)]),
            row("b", &[(Activation::Tanh, 1.0), (Activation::Relu, 0.0)]),
        ];
        let tmp = std::env::temp_dir().join(format!("smartmixed-pools-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let path = tmp.join(SHARES_FILE);
        write_share_rows(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "key,arch,widths,depth,seed,layer,width,relu,tanh,gelu\n\
             a,,8,1,1,1,8,0.75,,0.25\n\
             b,,8,1,1,1,8,0.0,1.0,\n"
        );
        assert_eq!(read_share_rows(&path).unwrap(), rows);
        std::fs::write(&path, "key,arch,widths,depth,seed,layer,width,swish\n").unwrap();
        let err = read_share_rows(&path).unwrap_err();
        assert!(format!("{err:#}").contains("swish"), "{err:#}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
