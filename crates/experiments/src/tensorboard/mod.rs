//! TensorBoard event files, written without TensorFlow: TFRecord framing with masked CRC-32C
//! ([`record`]) around protobuf `Event` messages ([`proto`], prost derive: no protoc). The
//! format is TensorBoard's own (its `RecordWriter` and `event.proto`); `tests/tensorboard.rs`
//! holds this writer to bytes the `tensorboard` package wrote (scripts/tensorboard-reference.py).
//!
//! This is the writer and its reader; runs and the export command use it (issue 33).

pub mod proto;
pub mod record;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use proto::{Event, EventWhat, Summary, SummaryValue, SummaryValueKind};

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
        let path = dir.join(format!("events.out.tfevents.{}.{label}", wall_time as u64));
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

    /// Scalars `(tag, value)` at `step`, as one event.
    pub fn scalars(&mut self, step: i64, wall_time: f64, values: &[(&str, f32)]) -> Result<()> {
        let value = values
            .iter()
            .map(|&(tag, v)| SummaryValue {
                tag: tag.to_string(),
                metadata: None,
                value: Some(SummaryValueKind::SimpleValue(v)),
            })
            .collect();
        self.write(&Event {
            wall_time,
            step,
            what: Some(EventWhat::Summary(Summary { value })),
        })
    }

    /// Everything written so far, on disk.
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
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
