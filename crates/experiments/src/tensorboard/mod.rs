//! TensorBoard event files, written without TensorFlow: TFRecord framing with masked CRC-32C
//! ([`record`]) around protobuf `Event` messages ([`proto`], prost derive: no protoc). The
//! format is TensorBoard's own (its `RecordWriter` and `event.proto`); `tests/tensorboard.rs`
//! holds this writer to bytes the `tensorboard` package wrote (scripts/tensorboard-reference.py).
//!
//! This module knows the format, not runs: what a run writes is `run::board`'s.

pub mod proto;
pub mod record;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use proto::{
    Event, EventWhat, HParamsData, HParamsPluginData, Layout, PluginData, ProtoValue,
    ProtoValueKind, SessionEndInfo, SessionStartInfo, Summary, SummaryMetadata, SummaryValue,
    SummaryValueKind, TensorProto, TensorShapeDim, TensorShapeProto,
};

/// The version string every event file starts with.
pub const FILE_VERSION: &str = "brain.Event:2";

/// An event file being written: `events.out.tfevents.<seconds>.<label>` in its directory.
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir` (created if missing), its name from `wall_time` and `label`
    /// (TensorBoard reads every `*tfevents*` file of a directory as one run), starting with the
    /// file-version event.
    pub fn create(dir: &Path, wall_time: f64, label: &str) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(file_name(wall_time, label));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = EventWriter {
            file: BufWriter::new(file),
            path,
        };
        writer.write(&Event {
            wall_time,
            step: 0,
            what: Some(EventWhat::FileVersion(FILE_VERSION.to_string())),
        })?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event, framed.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.file
            .write_all(&record::frame(&event.encode_to_vec()))
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// A summary at `step`, as one event.
    pub fn summary(&mut self, step: i64, wall_time: f64, summary: Summary) -> Result<()> {
        self.write(&Event {
            wall_time,
            step,
            what: Some(EventWhat::Summary(summary)),
        })
    }

    /// Scalars `(tag, value)` at `step`, as one event.
    pub fn scalars<T: AsRef<str>>(
        &mut self,
        step: i64,
        wall_time: f64,
        values: &[(T, f32)],
    ) -> Result<()> {
        self.summary(step, wall_time, scalar_summary(values))
    }

    /// Everything written so far, on disk.
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Scalars `(tag, value)` as one summary.
pub fn scalar_summary<T: AsRef<str>>(values: &[(T, f32)]) -> Summary {
    let value = values
        .iter()
        .map(|(tag, v)| SummaryValue {
            tag: tag.as_ref().to_string(),
            metadata: None,
            value: Some(SummaryValueKind::SimpleValue(*v)),
        })
        .collect();
    Summary { value }
}

/// A whole event file's bytes: the file-version event at `wall_time`, then `events`.
pub fn file_bytes(wall_time: f64, events: &[Event]) -> Vec<u8> {
    let version = Event {
        wall_time,
        step: 0,
        what: Some(EventWhat::FileVersion(FILE_VERSION.to_string())),
    };
    std::iter::once(&version)
        .chain(events)
        .flat_map(|e| record::frame(&e.encode_to_vec()))
        .collect()
}

/// The name of an event file (TensorBoard reads every file with `tfevents` in its name as
/// part of its directory's run).
pub fn file_name(wall_time: f64, label: &str) -> String {
    format!("events.out.tfevents.{}.{label}", wall_time as u64)
}

/// Whether `name` is an event file's.
pub fn is_event_file(name: &str) -> bool {
    name.contains("tfevents")
}

/// A hyperparameter's value.
#[derive(Clone, Debug, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl std::fmt::Display for HParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HParam::Number(x) => write!(f, "{x}"),
            HParam::Text(s) => f.write_str(s),
            HParam::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// How a run ended, for the hparams plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    Unknown = 0,
    Success = 1,
    Failure = 2,
    Running = 3,
}

/// The hparams plugin's tags.
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// A summary holding the hparams plugin's `data`, as the plugin writes one: plugin "hparams",
/// data version 0, an empty float tensor as its value.
fn hparams_summary(tag: &str, data: HParamsData) -> Summary {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    };
    Summary {
        value: vec![SummaryValue {
            tag: tag.to_string(),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "hparams".to_string(),
                    content: content.encode_to_vec(),
                }),
            }),
            value: Some(SummaryValueKind::Tensor(TensorProto {
                dtype: 1,
                tensor_shape: Some(TensorShapeProto {
                    dim: vec![TensorShapeDim { size: 0 }],
                }),
                string_val: Vec::new(),
            })),
        }],
    }
}

/// A run's session start: its hyperparameters and the group that its seeds share (the HParams
/// dashboard's rows).
pub fn session_start<T: AsRef<str>>(
    hparams: &[(T, HParam)],
    group_name: &str,
    start_time_secs: f64,
) -> Summary {
    let hparams = hparams
        .iter()
        .map(|(name, value)| {
            let kind = match value {
                HParam::Number(x) => ProtoValueKind::NumberValue(*x),
                HParam::Text(s) => ProtoValueKind::StringValue(s.clone()),
                HParam::Bool(b) => ProtoValueKind::BoolValue(*b),
            };
            (name.as_ref().to_string(), ProtoValue { kind: Some(kind) })
        })
        .collect();
    hparams_summary(
        SESSION_START_TAG,
        HParamsData::SessionStartInfo(SessionStartInfo {
            hparams,
            group_name: group_name.to_string(),
            start_time_secs,
        }),
    )
}

/// A run's session end.
pub fn session_end(status: SessionStatus, end_time_secs: f64) -> Summary {
    hparams_summary(
        SESSION_END_TAG,
        HParamsData::SessionEndInfo(SessionEndInfo {
            status: status as i32,
            end_time_secs,
        }),
    )
}

/// The custom-scalars plugin's tag.
pub const CUSTOM_SCALARS_TAG: &str = "custom_scalars__config__";

/// A custom-scalars layout as the plugin's summary: the serialized layout as a string tensor.
pub fn layout_summary(layout: &Layout) -> Summary {
    Summary {
        value: vec![SummaryValue {
            tag: CUSTOM_SCALARS_TAG.to_string(),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "custom_scalars".to_string(),
                    content: Vec::new(),
                }),
            }),
            value: Some(SummaryValueKind::Tensor(TensorProto {
                dtype: 7,
                tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
                string_val: vec![layout.encode_to_vec()],
            })),
        }],
    }
}

/// Every event of a file, each record's checksums verified.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    record::unframe(&bytes)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .map(|payload| Event::decode(payload).map_err(anyhow::Error::from))
        .collect::<Result<_>>()
        .with_context(|| format!("decoding {}", path.display()))
}
