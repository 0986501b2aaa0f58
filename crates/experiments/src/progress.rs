//! What a run shows while it trains: an indicatif bar per epoch on a terminal, one plain line
//! per epoch otherwise, nothing with `--quiet`. The learner calls it; it knows nothing of files.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Bar,
    Plain,
    Quiet,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines when it is not, nothing when quiet.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Plain
        }
    }

    pub fn epoch(&self, label: String, batches: usize) -> EpochProgress {
        let bar = (*self == Progress::Bar).then(|| {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        EpochProgress {
            mode: *self,
            label,
            bar,
        }
    }

    /// A line of its own (phase changes, final results), unless quiet.
    pub fn note(&self, line: &str) {
        if *self != Progress::Quiet {
            eprintln!("{line}");
        }
    }
}

pub struct EpochProgress {
    mode: Progress,
    label: String,
    bar: Option<ProgressBar>,
}

impl EpochProgress {
    pub fn batch(&self, done: usize, running_loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            if let Some(loss) = running_loss {
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
    }

    pub fn finish(self, summary: &str) {
        match (self.mode, self.bar) {
            (_, Some(bar)) => bar.finish_with_message(summary.to_string()),
            (Progress::Plain, None) => eprintln!("{} {summary}", self.label),
            _ => {}
        }
    }
}
