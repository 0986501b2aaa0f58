//! A run's TensorBoard events: what its files record, as TensorBoard shows it. A run writes them
//! as it trains ([`RunBoard`]: one event per epoch, flushed, so curves grow while it runs);
//! [`export_run`] writes the same events afterwards from a run's files (`smartmixed
//! tensorboard`). Both build every event from the same records (the config, the rows of
//! epochs.csv as written, summary.json), so a run's live file and its export differ only in wall
//! times (tested).
//!
//! Tags, at step = the absolute epoch: `loss/train`, `loss/val`, `accuracy/val`,
//! `time/epoch_seconds`, `phase` (two-phase methods: 1, then 2), `share_layer{l}/{function}`
//! (selection methods: each hidden layer's share of each function of the pool per epoch of the
//! selection, then the kept choices at the last epoch), `accuracy/test_phase1` (at the switch),
//! `accuracy/test` (the kept checkpoint, at the last epoch), `learned_layer{l}/...` (what an
//! adaptive method's layers learned, at the last epoch). And the hparams plugin's session start
//! (the settings the run reads, its group: the run's name without the seed) and session end
//! (success; failure when the loss diverged; unknown when the run stopped before its end). And
//! a custom-scalars layout (TensorBoard's "Custom Scalars" tab): train and validation loss in one
//! chart, the accuracies in one, each hidden layer's shares of every function in one.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use super::summary::Summary;
use crate::run::config::{kebab, TrainConfig};
use crate::run::files::write_atomic;
use crate::run::setting;
use crate::tensorboard::proto::{
    Category, Chart, Event, EventWhat, Layout, MultilineChartContent, SessionLog,
    Summary as TbSummary,
};
use crate::tensorboard::{self, scalar_summary, EventWriter, HParam, SessionStatus};

/// The label that ends the names of the event files runs write.
const FILE_LABEL: &str = "smartmixed";

/// Where a run's events go and the group its seeds share.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardTarget {
    /// The run's log directory (TensorBoard's run: its path under `--logdir`).
    pub dir: PathBuf,
    /// The HParams dashboard's group: runs that differ only in their seed.
    pub group: String,
}

/// How TensorBoard names a run's architecture: the named net, `arch3`, or `widths512-256`.
pub fn arch_name(cfg: &TrainConfig) -> String {
    match (cfg.net, cfg.arch) {
        (Some(net), _) => net.to_string(),
        (None, Some(id)) => format!("arch{id}"),
        (None, None) => {
            let widths: Vec<String> = cfg.widths.iter().map(usize::to_string).collect();
            format!("widths{}", widths.join("-"))
        }
    }
}

/// Where a run of a sweep writes under the sweep's log directory `root`: a readable name,
/// `{arch}/{method}[_{axis}={value}...]/seed{seed}` with the value of each of the sweep's grid
/// `axes` that the run reads (in the settings' report order), and its group, the sweep's name
/// and the run's without the seed (so that groups of two sweeps shown together stay apart).
pub fn sweep_target(root: &Path, sweep: &str, cfg: &TrainConfig, axes: &[String]) -> BoardTarget {
    let mut name = format!("{}/{}", arch_name(cfg), cfg.method.name());
    let named = setting::names().filter(|n| axes.iter().any(|a| a == n) && reads(cfg, n));
    for axis in named {
        if let Some(value) = setting_value(cfg, axis) {
            name.push_str(&format!("_{axis}={value}"));
        }
    }
    BoardTarget {
        dir: root.join(&name).join(format!("seed{}", cfg.seed)),
        group: format!("{sweep}/{name}"),
    }
}

/// A run alone (`train --out DIR`) writes into its own directory; its group names its
/// architecture, method and a hash of every setting but the seed (runs made apart that differ
/// only in their seed share it).
pub fn own_target(dir: &Path, cfg: &TrainConfig) -> BoardTarget {
    use sha2::{Digest, Sha256};
    let mut identity = serde_json::to_value(cfg).unwrap_or_default();
    for (key, value) in [
        ("seed", serde_json::json!(0)),
        ("data_dir", serde_json::Value::Null),
        ("device", serde_json::json!("auto")),
    ] {
        identity[key] = value;
    }
    let hash: String = Sha256::digest(identity.to_string().as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    BoardTarget {
        dir: dir.to_path_buf(),
        group: format!("{}/{}/{hash}", arch_name(cfg), cfg.method.name()),
    }
}

/// Whether a run of `cfg` reads the setting `name`.
fn reads(cfg: &TrainConfig, name: &str) -> bool {
    setting::read_on(name, cfg.dataset.name()) && cfg.method.reads(name)
}

/// A declared setting's value, as the HParams dashboard shows it (`None` for a name that is
/// not one; a test holds every declared setting to a value).
fn setting_value(cfg: &TrainConfig, name: &str) -> Option<HParam> {
    use HParam::{Number, Text};
    let bound = |v: Option<f64>| Text(v.map_or("none".to_string(), |v| v.to_string()));
    Some(match name {
        "dataset" => Text(cfg.dataset.name().to_string()),
        "mnist1d" => Text(cfg.mnist1d.label()),
        "preset" => Text(kebab(&cfg.preset)),
        "epochs" => Number(cfg.epochs as f64),
        "phase1_epochs" => Number(cfg.phase1_epochs as f64),
        "lr" => Number(cfg.lr),
        "batch_size" => Number(cfg.batch_size as f64),
        "tau" => Number(cfg.tau),
        "clamp" => bound(cfg.clamp),
        "grad_clip" => bound(cfg.grad_clip),
        "phase2_init" => Text(kebab(&cfg.phase2_init)),
        "loss" => Text(kebab(&cfg.loss)),
        "eval_selection" => Text(kebab(&cfg.eval_selection)),
        "pool" => Text(cfg.pool.to_string()),
        "split_seed" => Number(cfg.split_seed as f64),
        _ => return None,
    })
}

/// The hyperparameters of a run: method, architecture, depth, seed, and every setting it reads.
pub fn hparams(cfg: &TrainConfig) -> Vec<(String, HParam)> {
    let mut out = vec![
        ("method".into(), HParam::Text(cfg.method.name().into())),
        ("arch".into(), HParam::Text(arch_name(cfg))),
        ("depth".into(), HParam::Number(cfg.widths.len() as f64)),
        ("seed".into(), HParam::Number(cfg.seed as f64)),
    ];
    for name in setting::names().filter(|n| reads(cfg, n)) {
        if let Some(value) = setting_value(cfg, name) {
            out.push((name.to_string(), value));
        }
    }
    out
}

/// Scalars of one step.
type Scalars = (i64, Vec<(String, f32)>);

/// An epochs.csv row's scalars, from its `header` and the fields as written.
pub fn epoch_scalars(header: &[String], record: &[String]) -> Result<Scalars> {
    if header.len() != record.len() {
        bail!(
            "an epochs.csv row has {} fields, its header {}",
            record.len(),
            header.len()
        );
    }
    let mut step = None;
    let mut values = Vec::new();
    for (column, field) in header.iter().zip(record) {
        if field.is_empty() {
            continue;
        }
        let tag = match column.as_str() {
            "epoch" => {
                step = Some(field.parse().with_context(|| format!("epoch '{field}'"))?);
                continue;
            }
            // A baseline's one phase is not a number: no phase curve.
            "phase" if field.parse::<f32>().is_err() => continue,
            "phase" => "phase".to_string(),
            "train_loss" => "loss/train".to_string(),
            "val_loss" => "loss/val".to_string(),
            "val_acc" => "accuracy/val".to_string(),
            "seconds" => "time/epoch_seconds".to_string(),
            share => match share_tag(share) {
                Some(tag) => tag,
                None => bail!("epochs.csv has an unknown column '{share}'"),
            },
        };
        let value: f32 = field
            .parse()
            .with_context(|| format!("epochs.csv column {column}: '{field}'"))?;
        values.push((tag, value));
    }
    Ok((step.context("an epochs.csv row without its epoch")?, values))
}

/// `share_l2_elu` as `share_layer2/elu`.
fn share_tag(column: &str) -> Option<String> {
    let (layer, function) = column.strip_prefix("share_l")?.split_once('_')?;
    layer.parse::<usize>().ok()?;
    Some(format!("share_layer{layer}/{function}"))
}

/// The scalars of a run's end: the phase-1 test accuracy at the switch, then at the last epoch
/// the test accuracy, the kept choices' shares and what adaptive layers learned.
pub fn end_scalars(
    cfg: &TrainConfig,
    summary: &Summary,
    header: &[String],
    last_epoch: i64,
) -> Vec<Scalars> {
    let mut out = Vec::new();
    if let Some(acc) = summary.phase1_test_acc {
        out.push((
            cfg.phase1_epochs as i64,
            vec![("accuracy/test_phase1".to_string(), acc as f32)],
        ));
    }
    let mut last = Vec::new();
    if let Some(acc) = summary.test_acc {
        last.push(("accuracy/test".to_string(), acc as f32));
    }
    if let Some(layers) = &summary.layer_shares {
        // The pool's functions in the order of epochs.csv's share columns.
        let share_tags: Vec<String> = header.iter().filter_map(|c| share_tag(c)).collect();
        let per_layer = share_tags.len() / layers.len().max(1);
        for (l, shares) in layers.iter().enumerate() {
            let tags = share_tags.iter().skip(l * per_layer).take(per_layer);
            last.extend(tags.zip(shares).map(|(t, &v)| (t.clone(), v as f32)));
        }
    }
    for (l, learned) in summary.learned.iter().flatten().enumerate() {
        flatten(&format!("learned_layer{}", l + 1), learned, &mut last);
    }
    if !last.is_empty() {
        out.push((last_epoch, last));
    }
    out
}

/// Every number in `value`, tagged by its path under `prefix`.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, f32)>) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x as f32));
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}/{i}"), item, out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                flatten(&format!("{prefix}/{key}"), item, out);
            }
        }
        _ => {}
    }
}

/// The custom-scalars layout of a run whose epochs.csv has `header`: losses, accuracies, and one
/// chart of shares per hidden layer. Every run of a sweep writes its own and the plugin merges
/// them, in the order of the runs' names; a category that first appears in a later run loses
/// charts in that merge (TensorBoard 2.21), so every run has both categories, baselines too
/// (their share charts stay empty).
pub fn layout(header: &[String]) -> Layout {
    let chart = |title: &str, tags: &[&str]| Chart {
        title: title.to_string(),
        multiline: Some(MultilineChartContent {
            tag: tags.iter().map(|t| t.to_string()).collect(),
        }),
    };
    let mut category = vec![Category {
        title: "loss and accuracy".into(),
        chart: vec![
            chart("loss: train, validation", &["^loss/train$", "^loss/val$"]),
            chart(
                "accuracy: validation, test",
                &[
                    "^accuracy/val$",
                    "^accuracy/test$",
                    "^accuracy/test_phase1$",
                ],
            ),
        ],
        closed: false,
    }];
    let mut layers: Vec<&str> = header
        .iter()
        .filter_map(|c| c.strip_prefix("share_l")?.split_once('_').map(|(l, _)| l))
        .collect();
    layers.dedup();
    category.push(Category {
        title: "functions chosen per layer".into(),
        chart: layers
            .iter()
            .map(|l| {
                chart(
                    &format!("layer {l}: share of units per function"),
                    &[&format!("^share_layer{l}/")],
                )
            })
            .collect(),
        closed: false,
    });
    Layout {
        version: 0,
        category,
    }
}

/// The first events of a run: a session-log START (a reader that holds an earlier attempt of
/// this run drops it), its session start and its layout.
fn start_events(
    cfg: &TrainConfig,
    target: &BoardTarget,
    header: &[String],
    wall: f64,
) -> [Event; 3] {
    [
        Event {
            wall_time: wall,
            step: 0,
            what: Some(EventWhat::SessionLog(SessionLog { status: 1 })),
        },
        summary_event(
            0,
            wall,
            tensorboard::session_start(&hparams(cfg), &target.group, wall),
        ),
        summary_event(0, wall, tensorboard::layout_summary(&layout(header))),
    ]
}

/// How a run ended, for the hparams plugin: `None` is a run that stopped before its end.
fn status(summary: Option<&Summary>) -> SessionStatus {
    match summary.map(|s| s.status.as_str()) {
        Some("ok") => SessionStatus::Success,
        Some(_) => SessionStatus::Failure,
        None => SessionStatus::Unknown,
    }
}

fn summary_event(step: i64, wall_time: f64, summary: TbSummary) -> Event {
    Event {
        wall_time,
        step,
        what: Some(EventWhat::Summary(summary)),
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Removes the event files runs wrote in `dir` (an earlier attempt's; other writers' files are
/// left alone): a run restarted from scratch never shows its old curves beside its new ones.
/// Also for a run that writes none (`--no-tensorboard`).
pub fn clear_event_files(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if tensorboard::is_event_file(&name) && name.ends_with(&format!(".{FILE_LABEL}")) {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A run's event file while it trains. Dropped before [`RunBoard::end`] (an interrupted or
/// failed run), it ends the session with the status unknown.
pub struct RunBoard {
    writer: EventWriter,
    header: Vec<String>,
    last_epoch: i64,
    ended: bool,
}

impl RunBoard {
    /// A fresh event file in the target's directory (any earlier one removed) with the run's
    /// session start; `header` is its epochs.csv header.
    pub fn start(target: &BoardTarget, cfg: &TrainConfig, header: &[String]) -> Result<Self> {
        clear_event_files(&target.dir)?;
        let started = now();
        let mut writer = EventWriter::create(&target.dir, started, FILE_LABEL)?;
        for event in start_events(cfg, target, header, started) {
            writer.write(&event)?;
        }
        writer.flush()?;
        Ok(Self {
            writer,
            header: header.to_vec(),
            last_epoch: 0,
            ended: false,
        })
    }

    /// An epoch's scalars, from its epochs.csv fields as written.
    pub fn epoch(&mut self, record: &[String]) -> Result<()> {
        let (step, values) = epoch_scalars(&self.header, record)?;
        self.last_epoch = step;
        self.writer
            .summary(step, now(), scalar_summary(&values))
            .and_then(|_| self.writer.flush())
    }

    /// The run's end: its final scalars and the session end.
    pub fn end(&mut self, cfg: &TrainConfig, summary: &Summary) -> Result<()> {
        let wall = now();
        for (step, values) in end_scalars(cfg, summary, &self.header, self.last_epoch) {
            self.writer.summary(step, wall, scalar_summary(&values))?;
        }
        let end = tensorboard::session_end(status(Some(summary)), wall);
        self.writer.summary(self.last_epoch, wall, end)?;
        self.ended = true;
        self.writer.flush()
    }
}

impl Drop for RunBoard {
    fn drop(&mut self) {
        if !self.ended {
            let wall = now();
            let end = tensorboard::session_end(SessionStatus::Unknown, wall);
            // Best effort: a run that is being dropped has no one to report to.
            let _ = self.writer.summary(self.last_epoch, wall, end);
            let _ = self.writer.flush();
        }
    }
}

/// Writes the event file of the finished (or stopped) run in `run_dir` into the target's
/// directory, from its config.json, epochs.csv and summary.json (absent for a run that stopped
/// before its end), replacing any event file there. Wall times: the run ends at `ended`
/// (default: summary.json's modification time) and its epochs follow its recorded seconds.
pub fn export_run(run_dir: &Path, target: &BoardTarget, ended: Option<SystemTime>) -> Result<()> {
    let read = |name: &str| {
        let path = run_dir.join(name);
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let cfg: TrainConfig = serde_json::from_str(&read("config.json")?)
        .with_context(|| format!("parsing {}", run_dir.join("config.json").display()))?;
    let epochs_path = run_dir.join("epochs.csv");
    let mut epochs = csv::Reader::from_path(&epochs_path)
        .with_context(|| format!("reading {}", epochs_path.display()))?;
    let header: Vec<String> = epochs
        .headers()
        .with_context(|| format!("reading {}", epochs_path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in epochs.records() {
        let record = record.with_context(|| format!("reading {}", epochs_path.display()))?;
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        rows.push(
            epoch_scalars(&header, &fields)
                .with_context(|| format!("reading {}", epochs_path.display()))?,
        );
    }
    let summary_path = run_dir.join("summary.json");
    let summary: Option<Summary> = match summary_path.is_file() {
        true => Some(
            serde_json::from_str(&read("summary.json")?)
                .with_context(|| format!("parsing {}", summary_path.display()))?,
        ),
        false => None,
    };
    let seconds: Vec<f64> = rows
        .iter()
        .map(|(_, v)| {
            v.iter()
                .find(|(t, _)| t == "time/epoch_seconds")
                .map_or(0.0, |(_, s)| f64::from(*s))
        })
        .collect();
    let ended = ended
        .or_else(|| fs::metadata(&summary_path).and_then(|m| m.modified()).ok())
        .or_else(|| fs::metadata(&epochs_path).and_then(|m| m.modified()).ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    let took = summary
        .as_ref()
        .map_or(seconds.iter().sum(), |s| s.train_seconds);
    let started = ended - took;
    let mut events = start_events(&cfg, target, &header, started).to_vec();
    let mut wall = started;
    let mut last_epoch = 0;
    for ((step, values), s) in rows.iter().zip(&seconds) {
        wall += s;
        last_epoch = *step;
        events.push(summary_event(*step, wall, scalar_summary(values)));
    }
    if let Some(summary) = &summary {
        for (step, values) in end_scalars(&cfg, summary, &header, last_epoch) {
            events.push(summary_event(step, ended, scalar_summary(&values)));
        }
    }
    let end = tensorboard::session_end(status(summary.as_ref()), ended);
    events.push(summary_event(last_epoch, ended, end));
    write_event_file(&target.dir, started, &events)
}

/// Replaces the event files of `dir` with one holding `events`, written whole under another
/// name first (TensorBoard never reads half of it).
fn write_event_file(dir: &Path, started: f64, events: &[Event]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(".events.partial");
    write_atomic(&partial, &tensorboard::file_bytes(started, events))?;
    clear_event_files(dir)?;
    let path = dir.join(tensorboard::file_name(started, FILE_LABEL));
    fs::rename(&partial, &path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::config::Settings;

    fn config(method: &str) -> TrainConfig {
        let flags = Settings {
            widths: Some(vec![8, 4]),
            method: Some(method.parse().unwrap()),
            ..Default::default()
        };
        TrainConfig::resolve(None, None, &flags).unwrap()
    }

    /// Every declared setting has a value for the dashboard (a new setting must get one).
    #[test]
    fn every_setting_has_a_dashboard_value() {
        let cfg = config("smartmixed");
        for name in setting::names() {
            assert!(setting_value(&cfg, name).is_some(), "{name}");
        }
        assert!(setting_value(&cfg, "nonsense").is_none());
    }

    /// A baseline's hyperparameters leave out the selection settings it does not read; its
    /// name leaves out an axis it does not read, so its seeds share one group.
    #[test]
    fn hparams_and_names_follow_what_a_run_reads() {
        let names = |cfg: &TrainConfig| -> Vec<String> {
            hparams(cfg).into_iter().map(|(n, _)| n).collect()
        };
        let relu = config("relu");
        let smart = config("smartmixed");
        assert!(!names(&relu).contains(&"tau".to_string()));
        assert!(names(&smart).contains(&"tau".to_string()));
        assert!(!names(&smart).contains(&"mnist1d".to_string()));
        let axes = ["tau".to_string(), "lr".to_string()];
        let root = Path::new("tb");
        assert_eq!(
            sweep_target(root, "quick", &relu, &axes),
            BoardTarget {
                dir: root.join("widths8-4/relu_lr=0.001/seed42"),
                group: "quick/widths8-4/relu_lr=0.001".into()
            }
        );
        assert_eq!(
            sweep_target(root, "quick", &smart, &axes).group,
            "quick/widths8-4/smartmixed_lr=0.001_tau=0.3"
        );
        // A run alone: seeds share a group, another setting does not.
        let group = |flags: Settings| {
            let cfg = TrainConfig::resolve(None, None, &flags).unwrap();
            own_target(root, &cfg).group
        };
        let base = || Settings {
            widths: Some(vec![8, 4]),
            ..Default::default()
        };
        let seeded = group(Settings {
            seed: Some(7),
            ..base()
        });
        assert_eq!(seeded, group(base()));
        assert!(seeded.starts_with("widths8-4/smartmixed/"), "{seeded}");
        assert_ne!(
            seeded,
            group(Settings {
                lr: Some(0.01),
                ..base()
            })
        );
    }

    #[test]
    fn epoch_rows_become_tagged_scalars() {
        let header: Vec<String> = ["epoch", "phase", "train_loss", "val_loss", "val_acc"]
            .into_iter()
            .chain(["seconds", "share_l1_relu", "share_l2_elu"])
            .map(String::from)
            .collect();
        let row =
            |fields: &[&str]| -> Vec<String> { fields.iter().map(|s| s.to_string()).collect() };
        let (step, values) = epoch_scalars(
            &header,
            &row(&["3", "1", "0.5", "0.25", "0.75", "1.5", "0.5", "1"]),
        )
        .unwrap();
        assert_eq!(step, 3);
        let tags: Vec<&str> = values.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tags,
            [
                "phase",
                "loss/train",
                "loss/val",
                "accuracy/val",
                "time/epoch_seconds",
                "share_layer1/relu",
                "share_layer2/elu"
            ]
        );
        let (_, baseline) = epoch_scalars(
            &header,
            &row(&["1", "baseline", "NaN", "inf", "0.1", "2", "", ""]),
        )
        .unwrap();
        assert_eq!(baseline.len(), 4);
        assert!(baseline[0].1.is_nan() && baseline[1].1.is_infinite());
        assert!(epoch_scalars(&header, &row(&["1", "1"])).is_err());
        let mut odd = header.clone();
        odd[7] = "surprise".into();
        assert!(epoch_scalars(&odd, &row(&["1", "1", "0", "0", "0", "0", "0", "0"])).is_err());
    }
}
