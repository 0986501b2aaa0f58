//! One model of a training stack: its settings, schedule, epoch log and where it stands (its
//! phase, its best checkpoint so far, whether it diverged or finished).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::evaluate::Evaluation;
use super::summary::{mean, Summary};
use crate::run::config::TrainConfig;
use crate::run::files::{shares, write_choices, write_json, EpochLog, EpochRow};
use crate::run::method::Phase;
use crate::run::stack::Stack;
use crate::run::train::board::{BoardTarget, RunBoard};

/// Says that a run's TensorBoard events stop (the run goes on).
fn board_failed(dir: &Path, e: &anyhow::Error) {
    eprintln!(
        "warning: TensorBoard events of the run in {}: {e:#}; the run goes on without them",
        dir.display()
    );
}

/// The best epoch of one phase.
pub struct PhaseResult {
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub best_val_acc: f64,
    pub epoch_seconds: Vec<f64>,
}

/// What an epoch meant for a model.
#[derive(Debug, PartialEq, Eq)]
pub enum EpochOutcome {
    Continues,
    /// The loss stopped being finite: the model stops (its summary is written).
    Diverged,
    /// The epoch was its phase's last.
    PhaseEnds,
}

pub struct Member<'a> {
    pub cfg: &'a TrainConfig,
    pub out: &'a Path,
    pub shuffle: ChaCha8Rng,
    log: EpochLog,
    /// Its TensorBoard events, when it writes them.
    board: Option<RunBoard>,
    n_params: usize,
    schedule: Vec<Phase>,
    /// Index of the current phase in `schedule`.
    phase: usize,
    best: Option<(PhaseResult, Vec<Tensor>)>,
    phase_seconds: Vec<f64>,
    /// The first phase of a two-phase method, with its test accuracy.
    phase1: Option<(PhaseResult, f64)>,
    /// Set when the model has finished (or diverged); it then runs along without updates.
    pub summary: Option<Summary>,
    /// Prefix of its progress notes in a stack of more than one.
    pub name: String,
}

impl<'a> Member<'a> {
    pub fn new(
        cfg: &'a TrainConfig,
        (out, board): (&'a Path, Option<&BoardTarget>),
        shuffle: ChaCha8Rng,
        n_params: usize,
        name: String,
    ) -> Result<Self> {
        let log = EpochLog::create(&out.join("epochs.csv"), cfg.widths.len(), cfg.pool.0)?;
        let board = board.and_then(|target| {
            let started = RunBoard::start(target, cfg, log.header());
            started.inspect_err(|e| board_failed(&target.dir, e)).ok()
        });
        Ok(Self {
            cfg,
            out,
            shuffle,
            log,
            board,
            n_params,
            schedule: cfg
                .method
                .schedule(cfg.epochs, cfg.phase1_epochs, cfg.phase2_init),
            phase: 0,
            best: None,
            phase_seconds: Vec::new(),
            phase1: None,
            summary: None,
            name,
        })
    }

    pub fn active(&self) -> bool {
        self.summary.is_none()
    }

    pub fn phase(&self) -> &Phase {
        &self.schedule[self.phase]
    }

    /// How many phases its method's schedule has.
    pub fn phases(&self) -> usize {
        self.schedule.len()
    }

    /// Logs model `m`'s epoch and keeps its best checkpoint so far (taken from `stack`).
    pub fn record_epoch(
        &mut self,
        stack: &Stack,
        m: usize,
        epoch: usize,
        (train_loss, val): (f64, &Evaluation),
        (seconds, started, size): (f64, Instant, usize),
    ) -> Result<EpochOutcome> {
        self.phase_seconds.push(seconds);
        let shares = match self.phase().logs_shares {
            true => stack.choices(m)?.map(|c| shares(&c, self.cfg.pool.0)),
            false => None,
        };
        let record = self.log.append(&EpochRow {
            epoch,
            phase: self.phase().name,
            train_loss,
            val_loss: val.loss,
            val_acc: val.acc,
            seconds,
            shares,
        })?;
        if let Some(Err(e)) = self.board.as_mut().map(|b| b.epoch(&record)) {
            self.drop_board(&e);
        }
        if !(train_loss.is_finite() && val.loss.is_finite()) {
            let summary = self.diverged_summary(epoch, started, size);
            self.conclude(summary)?;
            return Ok(EpochOutcome::Diverged);
        }
        if self
            .best
            .as_ref()
            .is_none_or(|(b, _)| val.loss < b.best_val_loss)
        {
            let result = PhaseResult {
                best_epoch: epoch,
                best_val_loss: val.loss,
                best_val_acc: val.acc,
                epoch_seconds: Vec::new(),
            };
            self.best = Some((result, stack.snapshot(m)?));
        }
        Ok(if epoch == self.phase().last_epoch {
            EpochOutcome::PhaseEnds
        } else {
            EpochOutcome::Continues
        })
    }

    /// Puts the phase's best checkpoint back into the stack and returns the phase's result.
    pub fn restore_best(&mut self, stack: &Stack, m: usize) -> Result<PhaseResult> {
        let (mut result, snapshot) = self.best.take().context("a phase has at least one epoch")?;
        stack.restore(m, &snapshot)?;
        result.epoch_seconds = std::mem::take(&mut self.phase_seconds);
        Ok(result)
    }

    /// Moves on to the next phase, keeping the one that ended and its test accuracy.
    pub fn next_phase(&mut self, ended: PhaseResult, test_acc: f64) {
        self.phase1 = Some((ended, test_acc));
        self.phase += 1;
    }

    /// The files of a model that finished its last phase: the checkpoint, its choices, its
    /// summary.
    pub fn finish(
        &mut self,
        stack: &Stack,
        m: usize,
        result: PhaseResult,
        test_acc: f64,
        (started, size): (Instant, usize),
    ) -> Result<()> {
        let (cfg, out) = (self.cfg, self.out);
        stack.save(m, &out.join("model.safetensors"))?;
        let choices = match stack.choices(m)? {
            Some(choices) if cfg.method.has_choices() => Some(choices),
            _ => None,
        };
        if let Some(choices) = &choices {
            write_choices(&out.join("choices.csv"), choices)?;
        }
        let phase1 = self.phase1.as_ref();
        let mut all_seconds = phase1
            .map(|(p, _)| p.epoch_seconds.clone())
            .unwrap_or_default();
        all_seconds.extend(&result.epoch_seconds);
        let summary = Summary {
            status: "ok".into(),
            diverged_epoch: None,
            test_acc: Some(test_acc),
            val_acc: Some(result.best_val_acc),
            val_loss: Some(result.best_val_loss),
            best_epoch: Some(result.best_epoch),
            phase1_test_acc: phase1.map(|(_, acc)| *acc),
            n_params: self.n_params,
            epoch_seconds: mean(&all_seconds),
            phase1_epoch_seconds: phase1.map(|(p, _)| mean(&p.epoch_seconds)),
            phase2_epoch_seconds: phase1.map(|_| mean(&result.epoch_seconds)),
            train_seconds: started.elapsed().as_secs_f64(),
            layer_shares: choices.map(|c| shares(&c, cfg.pool.0)),
            learned: stack.learned(m)?,
            cohort_models: size,
        };
        self.conclude(summary)
    }

    /// Writes the run's outcome (summary.json, the end of its events) and stops it.
    fn conclude(&mut self, summary: Summary) -> Result<()> {
        write_json(&self.out.join("summary.json"), &summary)?;
        if let Some(Err(e)) = self.board.as_mut().map(|b| b.end(self.cfg, &summary)) {
            self.drop_board(&e);
        }
        self.summary = Some(summary);
        Ok(())
    }

    /// A run whose events cannot be written goes on without them: logging never changes a
    /// result or fails a run.
    fn drop_board(&mut self, e: &anyhow::Error) {
        board_failed(self.out, e);
        self.board = None;
    }

    /// The summary of a model whose loss stopped being finite in `epoch`.
    fn diverged_summary(&self, epoch: usize, started: Instant, size: usize) -> Summary {
        let this_phase = &self.phase_seconds;
        let (all, p1, p2): (Vec<f64>, Option<f64>, Option<f64>) = match &self.phase1 {
            Some((p1, _)) => (
                p1.epoch_seconds.iter().chain(this_phase).copied().collect(),
                Some(mean(&p1.epoch_seconds)),
                Some(mean(this_phase)),
            ),
            None if self.schedule.len() > 1 => (this_phase.clone(), Some(mean(this_phase)), None),
            None => (this_phase.clone(), None, None),
        };
        Summary {
            status: "diverged".into(),
            diverged_epoch: Some(epoch),
            test_acc: None,
            val_acc: None,
            val_loss: None,
            best_epoch: None,
            phase1_test_acc: None,
            n_params: self.n_params,
            epoch_seconds: mean(&all),
            phase1_epoch_seconds: p1,
            phase2_epoch_seconds: p2,
            train_seconds: started.elapsed().as_secs_f64(),
            layer_shares: None,
            learned: None,
            cohort_models: size,
        }
    }
}
