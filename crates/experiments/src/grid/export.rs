//! `smartmixed tensorboard DIR...`: TensorBoard event files for results that exist, from their
//! files (no retraining), so that committed sweeps open in TensorBoard on a fresh clone. A
//! sweep's runs go under its `tensorboard/` with the names and groups its runs write live
//! ([`BoardLayout`]); a run alone (`train --out DIR`) gets its file in its own directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::bail_input;
use crate::grid::store::{ResultsStore, RESULTS_FILE};
use crate::grid::sweep::{sweep_name, BoardLayout, TENSORBOARD_DIR};
use crate::run::config::TrainConfig;
use crate::run::setting;
use crate::run::train::board::{self, BoardTarget};

/// What an export wrote.
#[derive(Debug, Default, PartialEq)]
pub struct Exported {
    /// Runs written.
    pub runs: usize,
    /// Rows of results.csv without a run directory to read (left out).
    pub missing: Vec<String>,
    /// The log directories to give `tensorboard --logdir`.
    pub log_dirs: Vec<PathBuf>,
}

/// Writes the event files of the sweep or run in `dir`.
pub fn export(dir: &Path) -> Result<Exported> {
    if dir.join(RESULTS_FILE).is_file() {
        export_sweep(dir)
    } else if dir.join("config.json").is_file() && dir.join("epochs.csv").is_file() {
        let cfg = read_config(dir)?;
        board::export_run(dir, &board::own_target(dir, &cfg), None)?;
        Ok(Exported {
            runs: 1,
            missing: Vec::new(),
            log_dirs: vec![dir.to_path_buf()],
        })
    } else {
        bail_input!(
            "{}: neither a sweep's output ({RESULTS_FILE}) nor a run's (config.json and \
             epochs.csv)",
            dir.display()
        )
    }
}

fn read_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = run_dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every recorded run of the sweep in `dir`, into a fresh `tensorboard/`: written into
/// `tensorboard.partial/` first and renamed over the old one (possibly under names of an
/// earlier grid) only when every run is written, so a failed export leaves the old one whole.
fn export_sweep(dir: &Path) -> Result<Exported> {
    let rows = ResultsStore::open(dir)?.results()?;
    // The last row of each key (a run recorded twice keeps its last outcome).
    let mut by_key = BTreeMap::new();
    for row in &rows {
        by_key.insert(row.key.clone(), row);
    }
    let mut runs: Vec<(PathBuf, TrainConfig, Option<SystemTime>)> = Vec::new();
    let mut exported = Exported::default();
    for (key, row) in by_key {
        let run_dir = dir.join("runs").join(&key);
        if !run_dir.join("epochs.csv").is_file() {
            exported.missing.push(key);
            continue;
        }
        let ended = humantime::parse_rfc3339(&row.timestamp).ok();
        runs.push((run_dir.clone(), read_config(&run_dir)?, ended));
    }
    let configs: Vec<&TrainConfig> = runs.iter().map(|(_, c, _)| c).collect();
    let (name, axes) = sweep_manifest(dir, &configs)?;
    let root = dir.join(TENSORBOARD_DIR);
    let partial = dir.join(format!("{TENSORBOARD_DIR}.partial"));
    let layout = BoardLayout {
        root: partial.clone(),
        sweep: sweep_name(name.as_deref(), dir),
        axes,
        enabled: true,
    };
    let mut targets: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    let mut planned: Vec<(&Path, BoardTarget, Option<SystemTime>)> = Vec::new();
    for (run_dir, cfg, ended) in &runs {
        let target = layout.target(cfg);
        if let Some(other) = targets.insert(target.dir.clone(), run_dir) {
            anyhow::bail!(
                "{} and {} would share the TensorBoard run {}: their settings differ in \
                 something that is not a grid axis of {}",
                other.display(),
                run_dir.display(),
                target.dir.display(),
                dir.join("manifest.json").display()
            );
        }
        planned.push((run_dir, target, *ended));
    }
    // What an earlier export that failed left.
    if partial.is_dir() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    for (run_dir, target, ended) in &planned {
        board::export_run(run_dir, target, *ended)?;
        exported.runs += 1;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    if root.is_dir() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    std::fs::rename(&partial, &root)
        .with_context(|| format!("renaming {} to {}", partial.display(), root.display()))?;
    exported.log_dirs.push(root);
    Ok(exported)
}

/// The name and grid axes of the sweep in `dir`, from its manifest (what its runs were named by
/// while training): the config's `name` and `[grid]` keys; without a manifest, no name and the
/// settings whose values differ between its runs.
fn sweep_manifest(dir: &Path, configs: &[&TrainConfig]) -> Result<(Option<String>, Vec<String>)> {
    let manifest = dir.join("manifest.json");
    if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", manifest.display()))?;
        let grid = value["config"]["grid"].as_object();
        let name = value["config"]["name"].as_str().map(str::to_string);
        return Ok((
            name,
            grid.map_or_else(Vec::new, |g| g.keys().cloned().collect()),
        ));
    }
    let values = |c: &TrainConfig| serde_json::to_value(c).unwrap_or_default();
    let all: Vec<serde_json::Value> = configs.iter().map(|c| values(c)).collect();
    let varying = setting::names()
        .filter(|name| all.iter().any(|v| v.get(name) != all[0].get(name)))
        .map(str::to_string)
        .collect();
    Ok((None, varying))
}
