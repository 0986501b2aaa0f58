//! One run: baseline, or SmartMixed's two phases, with Adam, gradient-norm clipping and the
//! best-validation-loss checkpoint. It calls the model, the metrics, the progress display and
//! the run's files; it knows no file formats or terminals itself.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var, D};
use mixed_act::Selection;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;
use crate::run::config::{EvalSelection, LossKind, Method, Phase2Init, TrainConfig};
use crate::run::data::{epoch_order, DeviceSplit, Splits};
use crate::run::files::{shares, write_choices, write_json, EpochLog, EpochRow};
use crate::run::model::{Mlp, Pass};
use crate::run::optim::{Adam, AdamConfig};

/// `summary.json`: the outcome of a run. Accuracies are fractions in [0, 1].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// "ok", or "diverged" (non-finite loss; see `diverged_epoch`).
    pub status: String,
    pub diverged_epoch: Option<usize>,
    pub test_acc: Option<f64>,
    pub val_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub best_epoch: Option<usize>,
    pub phase1_test_acc: Option<f64>,
    pub n_params: usize,
    pub epoch_seconds: f64,
    pub phase1_epoch_seconds: Option<f64>,
    pub phase2_epoch_seconds: Option<f64>,
    pub train_seconds: f64,
    /// SmartMixed: per hidden layer, the share of neurons using each function of the pool, in
    /// pool order (config.json's `pool`; the paper's six when it has none).
    pub layer_shares: Option<Vec<Vec<f64>>>,
}

/// Independent random streams of one run, all derived from its seed, so that (for example)
/// the number of Gumbel draws never shifts the batch order.
struct Streams {
    init: ChaCha8Rng,
    shuffle: ChaCha8Rng,
    gumbel: ChaCha8Rng,
}

impl Streams {
    fn new(seed: u64) -> Self {
        let stream = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(n);
            rng
        };
        Self {
            init: stream(0),
            shuffle: stream(1),
            gumbel: stream(2),
        }
    }
}

/// Mean cross-entropy of a batch: on the logits, or on softmax probabilities (the reference).
pub(crate) fn loss(
    logits: &Tensor,
    labels: &Tensor,
    kind: LossKind,
) -> candle_core::Result<Tensor> {
    match kind {
        LossKind::Logits => candle_nn::loss::cross_entropy(logits, labels),
        LossKind::Probs => {
            candle_nn::loss::cross_entropy(&candle_nn::ops::softmax(logits, D::Minus1)?, labels)
        }
    }
}

/// The factor that brings the joint L2 norm of all gradients to at most `max_norm`, as
/// PyTorch's `clip_grad_norm_` computes it (max_norm / (norm + 1e-6), capped at 1), as a
/// scalar tensor on the device (no host sync); `None` when no variable has a gradient.
pub fn clip_coefficient(grads: &GradStore, vars: &[Var], max_norm: f64) -> Result<Option<Tensor>> {
    let own: Vec<Tensor> = vars
        .iter()
        .filter_map(|v| grads.get(v.as_tensor()).cloned())
        .collect();
    clip_factor(&own, max_norm)
}

/// [`clip_coefficient`] of the gradients `grads` (one model's, in its variable order).
pub(crate) fn clip_factor(grads: &[Tensor], max_norm: f64) -> Result<Option<Tensor>> {
    let squares = grads
        .iter()
        .map(|g| g.sqr()?.sum_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    if squares.is_empty() {
        return Ok(None);
    }
    let norm = Tensor::stack(&squares, 0)?.sum_all()?.sqrt()?;
    let coefficient = (norm + 1e-6)?
        .recip()?
        .affine(max_norm, 0.0)?
        .clamp(0.0, 1.0)?;
    Ok(Some(coefficient))
}

/// Scales all gradients so that their joint L2 norm is at most `max_norm` (see
/// [`clip_coefficient`]). Stays on the device: no host sync.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<()> {
    let Some(coefficient) = clip_coefficient(grads, vars, max_norm)? else {
        return Ok(());
    };
    for var in vars {
        if let Some(grad) = grads.get(var.as_tensor()) {
            let scaled = grad.broadcast_mul(&coefficient)?;
            grads.insert(var.as_tensor(), scaled);
        }
    }
    Ok(())
}

/// One optimizer step on a batch: forward (sampling selection layers), loss, backward,
/// gradient-norm clipping, Adam. Returns the batch loss, still on the device.
pub fn train_step(
    model: &Mlp,
    vars: &[Var],
    optimizer: &mut Adam,
    (x, y): (&Tensor, &Tensor),
    kind: LossKind,
    grad_clip: Option<f64>,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let (batch_loss, mut grads) = loss_and_grads(model, (x, y), kind, rng)?;
    match grad_clip {
        // On the CPU reading the factor costs nothing, and the optimizer applies it in its
        // own pass over the gradients instead of a pass (and a copy of every gradient) here.
        Some(max_norm) if x.device().is_cpu() => {
            let scale = match clip_coefficient(&grads, vars, max_norm)? {
                Some(c) => c.to_scalar::<f32>()?,
                None => 1.0,
            };
            optimizer.step_scaled(&grads, scale)?;
        }
        Some(max_norm) => {
            clip_grad_norm(&mut grads, vars, max_norm)?;
            optimizer.step(&grads)?;
        }
        None => optimizer.step(&grads)?,
    }
    Ok(batch_loss)
}

/// The batch loss and every variable's gradient: autograd through the loss only (from the
/// logits), then the model's explicit backward pass. The same bits as `loss.backward()` on
/// [`Mlp::forward`] (a test holds them equal), with much less work per step.
pub fn loss_and_grads(
    model: &Mlp,
    (x, y): (&Tensor, &Tensor),
    kind: LossKind,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, GradStore)> {
    let (logits, trace) = model.forward_traced(x, rng)?;
    let logits = Var::from_tensor(&logits)?;
    let batch_loss = loss(logits.as_tensor(), y, kind)?;
    let grad_logits = batch_loss
        .backward()?
        .remove(logits.as_tensor())
        .context("the loss does not depend on the logits")?;
    Ok((batch_loss, model.backward(&trace, &grad_logits)?))
}

/// Loss and accuracy over a split, in chunks.
struct Evaluation {
    loss: f64,
    acc: f64,
}

const EVAL_CHUNK: usize = 2048;

fn evaluate(
    model: &Mlp,
    split: &DeviceSplit,
    pass: Pass,
    kind: LossKind,
    rng: &mut ChaCha8Rng,
) -> Result<Evaluation> {
    let n = split.len();
    let (mut loss_sum, mut correct) = (0f64, 0f64);
    for start in (0..n).step_by(EVAL_CHUNK) {
        let len = EVAL_CHUNK.min(n - start);
        let x = split.images.narrow(0, start, len)?;
        let y = split.labels.narrow(0, start, len)?;
        let logits = model.forward(&x, pass, rng)?;
        loss_sum += loss(&logits, &y, kind)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?
            * len as f64;
        correct += logits
            .argmax(D::Minus1)?
            .eq(&y)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    Ok(Evaluation {
        loss: loss_sum / n as f64,
        acc: correct / n as f64,
    })
}

/// The best checkpoint of one phase.
struct PhaseResult {
    best_epoch: usize,
    best_val_loss: f64,
    best_val_acc: f64,
    epoch_seconds: Vec<f64>,
}

enum PhaseOutcome {
    Finished(PhaseResult),
    Diverged {
        epoch: usize,
        epoch_seconds: Vec<f64>,
    },
}

struct Learner<'a> {
    cfg: &'a TrainConfig,
    splits: &'a Splits,
    device: &'a Device,
    progress: Progress,
    log: EpochLog,
    streams: Streams,
    eval_selection: Selection,
}

impl Learner<'_> {
    /// Trains `model` for epochs `first..=last` (numbered over the whole run) with a fresh
    /// optimizer, keeps the best-validation-loss weights in the model at the end.
    fn run_phase(
        &mut self,
        model: &Mlp,
        first: usize,
        last: usize,
        phase: &'static str,
    ) -> Result<PhaseOutcome> {
        let vars = model.vars();
        let mut optimizer = Adam::new(vars.clone(), AdamConfig::with_lr(self.cfg.lr))?;
        let train = &self.splits.train;
        let batches = train.len().div_ceil(self.cfg.batch_size);
        let mut best: Option<(PhaseResult, Vec<Tensor>)> = None;
        let mut epoch_seconds = Vec::new();
        let is_phase1 = phase == "1";
        for epoch in first..=last {
            let started = Instant::now();
            let label = match phase {
                "baseline" => format!("epoch {epoch}/{}", self.cfg.epochs),
                p => format!("epoch {epoch}/{} [phase {p}]", self.cfg.epochs),
            };
            let bar = self.progress.epoch(label, batches);
            let order = epoch_order(train.len(), &mut self.streams.shuffle, self.device)?;
            let mut loss_sum = Tensor::zeros((), DType::F32, self.device)?;
            for b in 0..batches {
                let start = b * self.cfg.batch_size;
                let index = order.narrow(0, start, self.cfg.batch_size.min(train.len() - start))?;
                let x = train.images.index_select(&index, 0)?;
                let y = train.labels.index_select(&index, 0)?;
                if crate::interrupt::requested() {
                    return Err(crate::interrupt::Interrupted.into());
                }
                let batch_loss = train_step(
                    model,
                    &vars,
                    &mut optimizer,
                    (&x, &y),
                    self.cfg.loss,
                    self.cfg.grad_clip,
                    &mut self.streams.gumbel,
                )?;
                loss_sum = (loss_sum + batch_loss.detach())?;
                if self.progress == Progress::Bar && (b % 25 == 24 || b + 1 == batches) {
                    let running = loss_sum.to_scalar::<f32>()? as f64 / (b + 1) as f64;
                    bar.batch(b + 1, Some(running));
                }
            }
            let train_loss = loss_sum.to_scalar::<f32>()? as f64 / batches as f64;
            let val = evaluate(
                model,
                &self.splits.val,
                Pass::Eval(self.eval_selection),
                self.cfg.loss,
                &mut self.streams.gumbel,
            )?;
            let seconds = started.elapsed().as_secs_f64();
            epoch_seconds.push(seconds);
            let shares = if is_phase1 {
                Some(shares(&model.choices()?, self.cfg.pool.0))
            } else {
                None
            };
            self.log.append(&EpochRow {
                epoch,
                phase,
                train_loss,
                val_loss: val.loss,
                val_acc: val.acc,
                seconds,
                shares,
            })?;
            bar.finish(&format!(
                "train_loss {train_loss:.4} val_loss {:.4} val_acc {:.2}% {seconds:.1}s",
                val.loss,
                100.0 * val.acc
            ));
            if !(train_loss.is_finite() && val.loss.is_finite()) {
                return Ok(PhaseOutcome::Diverged {
                    epoch,
                    epoch_seconds,
                });
            }
            if best
                .as_ref()
                .is_none_or(|(b, _)| val.loss < b.best_val_loss)
            {
                let result = PhaseResult {
                    best_epoch: epoch,
                    best_val_loss: val.loss,
                    best_val_acc: val.acc,
                    epoch_seconds: Vec::new(),
                };
                best = Some((result, model.snapshot()?));
            }
        }
        let (mut result, snapshot) = best.context("a phase has at least one epoch")?;
        model.restore(&snapshot)?;
        result.epoch_seconds = epoch_seconds;
        Ok(PhaseOutcome::Finished(result))
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The run's network before training. The linear layers are drawn first, from the seed's
/// init stream, whatever the method: runs with one seed start from the same linear weights
/// (what the paired comparison of `compare` relies on; tested).
/// The network a run of `cfg` starts from (its seed's init stream, as [`train`] draws it).
pub fn seeded_initial_model(cfg: &TrainConfig, device: &Device) -> Result<Mlp> {
    initial_model(cfg, &mut Streams::new(cfg.seed).init, device)
}

fn initial_model(cfg: &TrainConfig, init: &mut ChaCha8Rng, device: &Device) -> Result<Mlp> {
    Ok(match cfg.method {
        Method::Baseline(a) => Mlp::baseline(&cfg.widths, a, init, device)?,
        Method::SmartMixed => {
            Mlp::selection(&cfg.widths, cfg.pool.0, cfg.tau, cfg.clamp, init, device)?
        }
    })
}

/// Trains one model as `cfg` says and writes epochs.csv, choices.csv (SmartMixed),
/// model.safetensors and summary.json into `out` (config.json is the caller's).
pub fn train(
    cfg: &TrainConfig,
    splits: &Splits,
    device: &Device,
    out: &Path,
    progress: Progress,
) -> Result<Summary> {
    let started = Instant::now();
    let mut streams = Streams::new(cfg.seed);
    let model = initial_model(cfg, &mut streams.init, device)?;
    let n_params = model.n_params();
    let eval_selection = match cfg.eval_selection {
        EvalSelection::Argmax => Selection::Argmax,
        EvalSelection::Sample => Selection::Sample,
    };
    let log = EpochLog::create(&out.join("epochs.csv"), cfg.widths.len(), cfg.pool.0)?;
    let mut learner = Learner {
        cfg,
        splits,
        device,
        progress,
        log,
        streams,
        eval_selection,
    };
    let diverged = |epoch: usize, seconds: &[f64], p1: Option<f64>, p2: Option<f64>| Summary {
        status: "diverged".into(),
        diverged_epoch: Some(epoch),
        test_acc: None,
        val_acc: None,
        val_loss: None,
        best_epoch: None,
        phase1_test_acc: None,
        n_params,
        epoch_seconds: mean(seconds),
        phase1_epoch_seconds: p1,
        phase2_epoch_seconds: p2,
        train_seconds: started.elapsed().as_secs_f64(),
        layer_shares: None,
    };

    let (final_model, result, phase1) = match cfg.method {
        Method::Baseline(_) => match learner.run_phase(&model, 1, cfg.epochs, "baseline")? {
            PhaseOutcome::Finished(r) => (model, r, None),
            PhaseOutcome::Diverged {
                epoch,
                epoch_seconds,
            } => {
                let summary = diverged(epoch, &epoch_seconds, None, None);
                write_json(&out.join("summary.json"), &summary)?;
                return Ok(summary);
            }
        },
        Method::SmartMixed => {
            let p1 = match learner.run_phase(&model, 1, cfg.phase1_epochs, "1")? {
                PhaseOutcome::Finished(r) => r,
                PhaseOutcome::Diverged {
                    epoch,
                    epoch_seconds,
                } => {
                    let summary = diverged(epoch, &epoch_seconds, Some(mean(&epoch_seconds)), None);
                    write_json(&out.join("summary.json"), &summary)?;
                    return Ok(summary);
                }
            };
            let phase1_test = evaluate(
                &model,
                &splits.test,
                Pass::Eval(eval_selection),
                cfg.loss,
                &mut learner.streams.gumbel,
            )?;
            progress.note(&format!(
                "phase 1 done: best epoch {}, val_acc {:.2}%, test_acc {:.2}%; freezing",
                p1.best_epoch,
                100.0 * p1.best_val_acc,
                100.0 * phase1_test.acc
            ));
            let fresh = match cfg.phase2_init {
                Phase2Init::Warm => None,
                Phase2Init::Fresh => {
                    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
                    rng.set_stream(3);
                    Some(rng)
                }
            };
            let phase2_model = match fresh {
                None => model.freeze(None)?,
                Some(mut rng) => model.freeze(Some((&mut rng, device)))?,
            };
            match learner.run_phase(&phase2_model, cfg.phase1_epochs + 1, cfg.epochs, "2")? {
                PhaseOutcome::Finished(r) => (phase2_model, r, Some((p1, phase1_test.acc))),
                PhaseOutcome::Diverged {
                    epoch,
                    epoch_seconds,
                } => {
                    let all: Vec<f64> = p1
                        .epoch_seconds
                        .iter()
                        .chain(&epoch_seconds)
                        .copied()
                        .collect();
                    let summary = diverged(
                        epoch,
                        &all,
                        Some(mean(&p1.epoch_seconds)),
                        Some(mean(&epoch_seconds)),
                    );
                    write_json(&out.join("summary.json"), &summary)?;
                    return Ok(summary);
                }
            }
        }
    };

    let test = evaluate(
        &final_model,
        &splits.test,
        Pass::Eval(eval_selection),
        cfg.loss,
        &mut learner.streams.gumbel,
    )?;
    final_model.save(&out.join("model.safetensors"))?;
    let choices = final_model.choices()?;
    let is_smartmixed = cfg.is_smartmixed();
    if is_smartmixed {
        write_choices(&out.join("choices.csv"), &choices)?;
    }
    let mut all_seconds = phase1
        .as_ref()
        .map(|(p, _)| p.epoch_seconds.clone())
        .unwrap_or_default();
    all_seconds.extend(&result.epoch_seconds);
    let summary = Summary {
        status: "ok".into(),
        diverged_epoch: None,
        test_acc: Some(test.acc),
        val_acc: Some(result.best_val_acc),
        val_loss: Some(result.best_val_loss),
        best_epoch: Some(result.best_epoch),
        phase1_test_acc: phase1.as_ref().map(|(_, acc)| *acc),
        n_params,
        epoch_seconds: mean(&all_seconds),
        phase1_epoch_seconds: phase1.as_ref().map(|(p, _)| mean(&p.epoch_seconds)),
        phase2_epoch_seconds: phase1.as_ref().map(|_| mean(&result.epoch_seconds)),
        train_seconds: started.elapsed().as_secs_f64(),
        layer_shares: is_smartmixed.then(|| shares(&choices, cfg.pool.0)),
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The explicit backward pass gives exactly autograd's loss and gradients, for a ReLU
    /// baseline, a phase-2 network with mixed functions and phase 1 (with and without clamps),
    /// under both loss kinds.
    #[test]
    fn explicit_backward_equals_autograd_bit_for_bit() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let widths = [96, 40];
        let batch = 128;
        let x: Vec<f32> = (0..batch * crate::run::data::IMAGE_PIXELS)
            .map(|_| rng.random())
            .collect();
        let x = Tensor::from_vec(x, (batch, crate::run::data::IMAGE_PIXELS), &dev).unwrap();
        let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
        let y = Tensor::new(y, &dev).unwrap();
        let relu = Mlp::baseline(&widths, mixed_act::Activation::Relu, &mut rng, &dev).unwrap();
        let paper = mixed_act::Pool::paper();
        let clamped = Mlp::selection(&widths, paper, 0.3, Some(10.0), &mut rng, &dev).unwrap();
        let unclamped = Mlp::selection(&widths, paper, 0.5, None, &mut rng, &dev).unwrap();
        let mixed = clamped.freeze(None).unwrap();
        for (name, model) in [
            ("relu", &relu),
            ("phase 2", &mixed),
            ("phase 1", &clamped),
            ("phase 1 unclamped", &unclamped),
        ] {
            for kind in [LossKind::Logits, LossKind::Probs] {
                let mut draws = ChaCha8Rng::seed_from_u64(11);
                let logits = model.forward(&x, Pass::Train, &mut draws).unwrap();
                let expected_loss = loss(&logits, &y, kind).unwrap();
                let expected = expected_loss.backward().unwrap();
                let mut draws = ChaCha8Rng::seed_from_u64(11);
                let (got_loss, got) = loss_and_grads(model, (&x, &y), kind, &mut draws).unwrap();
                let bits = |t: &Tensor| -> Vec<u32> {
                    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    v.iter().map(|f| f.to_bits()).collect()
                };
                assert_eq!(
                    bits(&got_loss),
                    bits(&expected_loss),
                    "{name} {kind:?} loss"
                );
                for (i, var) in model.vars().iter().enumerate() {
                    let want = expected.get(var.as_tensor()).expect("autograd gradient");
                    let have = got.get(var.as_tensor()).expect("explicit gradient");
                    assert_eq!(have.dims(), want.dims(), "{name} {kind:?} var {i} shape");
                    // +0 and -0 differ in bits only where autograd added -0 to zeros.
                    let (have, want) = (bits(have), bits(want));
                    let same = have
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a == b || (a | b) == 0x8000_0000);
                    assert!(same, "{name} {kind:?}: gradient of var {i} differs");
                }
            }
        }
    }

    #[test]
    fn clipping_scales_the_joint_norm_like_pytorch() {
        let dev = Device::Cpu;
        let a = Var::new(&[1f32, 2.0], &dev).unwrap();
        let b = Var::new(&[[0f32, 0.0]], &dev).unwrap();
        let loss = ((a.as_tensor() * 3.0).unwrap().sum_all().unwrap()
            + (b.as_tensor() * 4.0).unwrap().sum_all().unwrap())
        .unwrap();
        let vars = vec![a.clone(), b.clone()];
        // Gradients (3, 3) and (4, 4): joint norm sqrt(50).
        let mut grads = loss.backward().unwrap();
        clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
        let coef = 1.0 / (50f64.sqrt() + 1e-6);
        let ga = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let gb = grads.get(b.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(
            (ga[0] as f64 - 3.0 * coef).abs() < 1e-6 && (gb[0][1] as f64 - 4.0 * coef).abs() < 1e-6
        );
        // Below the limit, nothing changes.
        let mut grads = loss.backward().unwrap();
        clip_grad_norm(&mut grads, &vars, 100.0).unwrap();
        assert_eq!(
            grads.get(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            vec![3.0, 3.0]
        );
    }

    /// Runs with one seed start from the same linear weights, bit for bit, whatever their
    /// method and SmartMixed settings; another seed starts elsewhere.
    #[test]
    fn one_seed_gives_every_method_the_same_initial_linear_weights() {
        let dev = Device::Cpu;
        let config = |method: &str, seed: u64, tau: f64, clamp: Option<f64>| {
            let flags = crate::run::config::Settings {
                widths: Some(vec![24, 12]),
                method: Some(method.parse().unwrap()),
                seed: Some(seed),
                tau: Some(tau),
                clamp: Some(crate::run::config::ClampSetting(clamp)),
                ..Default::default()
            };
            TrainConfig::resolve(None, None, &flags).unwrap()
        };
        let weights = |cfg: &TrainConfig| -> Vec<Vec<u32>> {
            let model = initial_model(cfg, &mut Streams::new(cfg.seed).init, &dev).unwrap();
            model
                .linears
                .iter()
                .flat_map(|l| [l.weight.as_tensor().clone(), l.bias.as_tensor().clone()])
                .map(|t| {
                    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                    v.iter().map(|x| x.to_bits()).collect()
                })
                .collect()
        };
        let relu = weights(&config("relu", 5, 0.3, Some(10.0)));
        for other in [
            config("elu", 5, 0.3, Some(10.0)),
            config("smartmixed", 5, 0.3, Some(10.0)),
            config("smartmixed", 5, 3.0, None),
        ] {
            assert_eq!(weights(&other), relu, "{} tau {}", other.method, other.tau);
        }
        assert_ne!(weights(&config("relu", 6, 0.3, Some(10.0))), relu);
    }
}
