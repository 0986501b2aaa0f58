//! THE training loop ([`train_cohort`]; one run is a cohort of one): baseline, or SmartMixed's
//! two phases, with Adam, gradient-norm clipping and the best-validation-loss checkpoint, for
//! one model or many trained together. It calls the model, the metrics, the progress display and
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
use crate::run::cohort::{cohort_step, Cohort};
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
    /// How many models trained together in this run's cohort (the epoch times are the
    /// cohort's wall time; divided by this, one model's share). Left out when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cohort_models: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
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

/// Each included model's loss and accuracy over `split` (every model sees the same images;
/// `None` for the others), as a model evaluated alone gets them.
fn evaluate(
    cohort: &Cohort,
    split: &DeviceSplit,
    pass: Pass,
    kind: LossKind,
    rngs: &mut [ChaCha8Rng],
    include: &[bool],
) -> Result<Vec<Option<Evaluation>>> {
    let (n, models) = (split.len(), cohort.len());
    let (mut loss_sums, mut correct) = (vec![0f64; models], vec![0f64; models]);
    for start in (0..n).step_by(EVAL_CHUNK) {
        let len = EVAL_CHUNK.min(n - start);
        let x = split.images.narrow(0, start, len)?;
        let x = x
            .unsqueeze(0)?
            .broadcast_as((models, len, x.dim(1)?))?
            .contiguous()?;
        let y = split.labels.narrow(0, start, len)?;
        let logits = cohort.forward(&x, pass, rngs, include)?;
        for m in (0..models).filter(|&m| include[m]) {
            let logits = logits.get(m)?;
            loss_sums[m] += loss(&logits, &y, kind)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?
                * len as f64;
            correct[m] += logits
                .argmax(D::Minus1)?
                .eq(&y)?
                .to_dtype(DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok((0..models)
        .map(|m| {
            include[m].then(|| Evaluation {
                loss: loss_sums[m] / n as f64,
                acc: correct[m] / n as f64,
            })
        })
        .collect())
}

/// The best checkpoint of one phase.
struct PhaseResult {
    best_epoch: usize,
    best_val_loss: f64,
    best_val_acc: f64,
    epoch_seconds: Vec<f64>,
}

/// One model of a cohort: its settings, streams and files, and where it stands.
struct Member<'a> {
    cfg: &'a TrainConfig,
    out: &'a Path,
    shuffle: ChaCha8Rng,
    log: EpochLog,
    n_params: usize,
    /// `baseline`, `1` or `2`.
    phase: &'static str,
    /// The last epoch of the current phase.
    phase_last: usize,
    best: Option<(PhaseResult, Vec<Tensor>)>,
    phase_seconds: Vec<f64>,
    phase1: Option<(PhaseResult, f64)>,
    /// Set when the model has finished (or diverged); it then runs along without updates.
    summary: Option<Summary>,
    /// Prefix of its progress notes in a cohort of more than one.
    name: String,
}

impl Member<'_> {
    fn active(&self) -> bool {
        self.summary.is_none()
    }

    fn best_result(&mut self) -> Result<(PhaseResult, Vec<Tensor>)> {
        self.best.take().context("a phase has at least one epoch")
    }
}

/// What must agree between the models of a cohort (they share batches, epochs and evaluation
/// passes); each model may differ in method, seed, learning rate, gradient clipping and
/// SmartMixed's own settings (tau, clamp, pool, selection length, phase-2 init).
pub fn cohort_mismatch(a: &TrainConfig, b: &TrainConfig) -> Option<&'static str> {
    let checks: [(&'static str, bool); 8] = [
        ("dataset", a.dataset == b.dataset),
        ("split_seed", a.split_seed == b.split_seed),
        ("data_dir", a.data_dir == b.data_dir),
        ("widths", a.widths == b.widths),
        ("epochs", a.epochs == b.epochs),
        ("batch_size", a.batch_size == b.batch_size),
        ("loss", a.loss == b.loss),
        ("eval_selection", a.eval_selection == b.eval_selection),
    ];
    checks
        .into_iter()
        .find(|(_, same)| !same)
        .map(|(name, _)| name)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The network a run of `cfg` starts from (its seed's init stream, as [`train`] draws it).
pub fn seeded_initial_model(cfg: &TrainConfig, device: &Device) -> Result<Mlp> {
    initial_model(cfg, &mut Streams::new(cfg.seed).init, device)
}

/// The run's network before training. The linear layers are drawn first, from the seed's
/// init stream, whatever the method: runs with one seed start from the same linear weights
/// (what the paired comparison of `compare` relies on; tested).
fn initial_model(cfg: &TrainConfig, init: &mut ChaCha8Rng, device: &Device) -> Result<Mlp> {
    Ok(match cfg.method {
        Method::Baseline(a) => Mlp::baseline(&cfg.widths, a, init, device)?,
        Method::SmartMixed => {
            Mlp::selection(&cfg.widths, cfg.pool.0, cfg.tau, cfg.clamp, init, device)?
        }
    })
}

/// Trains one model as `cfg` says and writes epochs.csv, choices.csv (SmartMixed),
/// model.safetensors and summary.json into `out` (config.json is the caller's): a cohort of one.
pub fn train(
    cfg: &TrainConfig,
    splits: &Splits,
    device: &Device,
    out: &Path,
    progress: Progress,
) -> Result<Summary> {
    let mut summaries = train_cohort(&[cfg], splits, device, &[out], progress)?;
    Ok(summaries.pop().expect("one summary per model"))
}

/// THE training loop: trains the models of `cfgs` (one or many, see [`cohort_mismatch`] for
/// what they must share) together as one stacked model (`run::cohort`), each writing its files
/// into its `outs` entry exactly as it would alone: its own batch order, Gumbel stream, phases
/// (SmartMixed switches to phase 2 after its selection epochs, with a fresh optimizer), clipping,
/// divergence (a diverged model stops updating; the others go on) and best checkpoint. The
/// epochs' `seconds` are the cohort's wall time; `summary.json` says how many models shared it.
pub fn train_cohort(
    cfgs: &[&TrainConfig],
    splits: &Splits,
    device: &Device,
    outs: &[&Path],
    progress: Progress,
) -> Result<Vec<Summary>> {
    let started = Instant::now();
    let first = *cfgs.first().context("a cohort needs at least one model")?;
    anyhow::ensure!(cfgs.len() == outs.len(), "one output directory per model");
    for cfg in cfgs {
        if let Some(setting) = cohort_mismatch(first, cfg) {
            anyhow::bail!("the models of a cohort must share {setting}");
        }
    }
    let size = cfgs.len();
    let (mut members, mut models, mut gumbel) = (Vec::new(), Vec::new(), Vec::new());
    for (&cfg, &out) in cfgs.iter().zip(outs) {
        let mut streams = Streams::new(cfg.seed);
        let model = initial_model(cfg, &mut streams.init, device)?;
        let (phase, phase_last) = match cfg.method {
            Method::Baseline(_) => ("baseline", cfg.epochs),
            Method::SmartMixed => ("1", cfg.phase1_epochs),
        };
        members.push(Member {
            cfg,
            out,
            shuffle: streams.shuffle,
            log: EpochLog::create(&out.join("epochs.csv"), cfg.widths.len(), cfg.pool.0)?,
            n_params: model.n_params(),
            phase,
            phase_last,
            best: None,
            phase_seconds: Vec::new(),
            phase1: None,
            summary: None,
            name: if size > 1 {
                format!("{} seed {}: ", cfg.method, cfg.seed)
            } else {
                String::new()
            },
        });
        gumbel.push(streams.gumbel);
        models.push(model);
    }
    let mut cohort = Cohort::stack(models)?;
    let vars = cohort.vars();
    let mut optimizer = Adam::with_owners(vars.clone(), AdamConfig::with_lr(first.lr))?;
    for (i, cfg) in cfgs.iter().enumerate() {
        optimizer.set_lr(i, cfg.lr);
    }
    let grad_clips: Vec<Option<f64>> = cfgs.iter().map(|c| c.grad_clip).collect();
    let eval = Pass::Eval(match first.eval_selection {
        EvalSelection::Argmax => Selection::Argmax,
        EvalSelection::Sample => Selection::Sample,
    });
    let train = &splits.train;
    let batch_size = first.batch_size;
    let batches = train.len().div_ceil(batch_size);
    for epoch in 1..=first.epochs {
        if members.iter().all(|m| !m.active()) {
            break;
        }
        let epoch_started = Instant::now();
        let label = match (size, members[0].phase) {
            (1, "baseline") => format!("epoch {epoch}/{}", first.epochs),
            (1, p) => format!("epoch {epoch}/{} [phase {p}]", first.epochs),
            (n, _) => format!("epoch {epoch}/{} [cohort of {n}]", first.epochs),
        };
        let bar = progress.epoch(label, batches);
        let orders = members
            .iter_mut()
            .map(|m| epoch_order(train.len(), &mut m.shuffle, device))
            .collect::<Result<Vec<_>>>()?;
        let active: Vec<bool> = members.iter().map(Member::active).collect();
        let mut loss_sums = vec![Tensor::zeros((), DType::F32, device)?; size];
        for b in 0..batches {
            let start = b * batch_size;
            let len = batch_size.min(train.len() - start);
            let (mut xs, mut ys) = (Vec::with_capacity(size), Vec::with_capacity(size));
            for order in &orders {
                let index = order.narrow(0, start, len)?;
                xs.push(train.images.index_select(&index, 0)?);
                ys.push(train.labels.index_select(&index, 0)?);
            }
            let (x, y) = (Tensor::stack(&xs, 0)?, Tensor::stack(&ys, 0)?);
            if crate::interrupt::requested() {
                return Err(crate::interrupt::Interrupted.into());
            }
            let losses = cohort_step(
                &cohort,
                &vars,
                &mut optimizer,
                (&x, &y),
                first.loss,
                &grad_clips,
                &mut gumbel,
                &active,
            )?;
            for (sum, batch_loss) in loss_sums.iter_mut().zip(losses) {
                *sum = (&*sum + batch_loss.detach())?;
            }
            if size == 1 && progress == Progress::Bar && (b % 25 == 24 || b + 1 == batches) {
                let running = loss_sums[0].to_scalar::<f32>()? as f64 / (b + 1) as f64;
                bar.batch(b + 1, Some(running));
            } else if progress == Progress::Bar && (b % 25 == 24 || b + 1 == batches) {
                bar.batch(b + 1, None);
            }
        }
        let vals = evaluate(&cohort, &splits.val, eval, first.loss, &mut gumbel, &active)?;
        let seconds = epoch_started.elapsed().as_secs_f64();
        let mut finished_line = Vec::new();
        // Models whose phase ends with this epoch (after their best checkpoint is restored).
        let mut phase_ends = Vec::new();
        for (i, member) in members.iter_mut().enumerate() {
            let Some(val) = &vals[i] else { continue };
            let train_loss = loss_sums[i].to_scalar::<f32>()? as f64 / batches as f64;
            member.phase_seconds.push(seconds);
            let shares = (member.phase == "1")
                .then(|| {
                    Ok::<_, anyhow::Error>(shares(&cohort.model(i).choices()?, member.cfg.pool.0))
                })
                .transpose()?;
            member.log.append(&EpochRow {
                epoch,
                phase: member.phase,
                train_loss,
                val_loss: val.loss,
                val_acc: val.acc,
                seconds,
                shares,
            })?;
            finished_line.push(format!(
                "{}train_loss {train_loss:.4} val_loss {:.4} val_acc {:.2}%",
                member.name,
                val.loss,
                100.0 * val.acc
            ));
            if !(train_loss.is_finite() && val.loss.is_finite()) {
                let summary = diverged_summary(member, epoch, started, size);
                write_json(&member.out.join("summary.json"), &summary)?;
                member.summary = Some(summary);
                continue;
            }
            if member
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
                member.best = Some((result, cohort.snapshot(i)?));
            }
            if epoch == member.phase_last {
                phase_ends.push(i);
            }
        }
        if size == 1 {
            bar.finish(&format!("{} {seconds:.1}s", finished_line.join("; ")));
        } else {
            let accs: Vec<f64> = vals.iter().flatten().map(|v| v.acc).collect();
            let mean_acc = 100.0 * accs.iter().sum::<f64>() / accs.len().max(1) as f64;
            bar.finish(&format!(
                "{} models training, val_acc {mean_acc:.2}% on average, {seconds:.1}s",
                accs.len()
            ));
        }
        if phase_ends.is_empty() {
            continue;
        }
        let mut ending = vec![false; size];
        let mut results = Vec::new();
        for &i in &phase_ends {
            let (mut result, snapshot) = members[i].best_result()?;
            cohort.restore(i, &snapshot)?;
            result.epoch_seconds = std::mem::take(&mut members[i].phase_seconds);
            results.push((i, result));
            ending[i] = true;
        }
        // The test split for every model whose phase ended, its own Gumbel stream for each.
        let tests = evaluate(
            &cohort,
            &splits.test,
            eval,
            first.loss,
            &mut gumbel,
            &ending,
        )?;
        for (i, result) in results {
            let test = tests[i].as_ref().expect("evaluated above");
            let member = &mut members[i];
            if member.phase == "1" {
                progress.note(&format!(
                    "{}phase 1 done: best epoch {}, val_acc {:.2}%, test_acc {:.2}%; freezing",
                    member.name,
                    result.best_epoch,
                    100.0 * result.best_val_acc,
                    100.0 * test.acc
                ));
                member.phase1 = Some((result, test.acc));
                let cfg = member.cfg;
                match cfg.phase2_init {
                    Phase2Init::Warm => cohort.freeze(i, None)?,
                    Phase2Init::Fresh => {
                        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
                        rng.set_stream(3);
                        cohort.freeze(i, Some((&mut rng, device)))?
                    }
                }
                // Phase 2 starts with a fresh optimizer, as a run alone does.
                optimizer.reset_model(i)?;
                member.phase = "2";
                member.phase_last = cfg.epochs;
            } else {
                let summary = final_summary(member, &cohort, i, result, test.acc, started, size)?;
                member.summary = Some(summary);
            }
        }
    }
    Ok(members
        .into_iter()
        .map(|m| m.summary.expect("every model finishes or diverges"))
        .collect())
}

/// The files of a model that finished its last phase: the checkpoint, its choices, its summary.
fn final_summary(
    member: &Member,
    cohort: &Cohort,
    i: usize,
    result: PhaseResult,
    test_acc: f64,
    started: Instant,
    size: usize,
) -> Result<Summary> {
    let (cfg, out) = (member.cfg, member.out);
    let final_model = cohort.unstack(i)?;
    final_model.save(&out.join("model.safetensors"))?;
    let choices = final_model.choices()?;
    let is_smartmixed = cfg.is_smartmixed();
    if is_smartmixed {
        write_choices(&out.join("choices.csv"), &choices)?;
    }
    let phase1 = member.phase1.as_ref();
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
        n_params: member.n_params,
        epoch_seconds: mean(&all_seconds),
        phase1_epoch_seconds: phase1.map(|(p, _)| mean(&p.epoch_seconds)),
        phase2_epoch_seconds: phase1.map(|_| mean(&result.epoch_seconds)),
        train_seconds: started.elapsed().as_secs_f64(),
        layer_shares: is_smartmixed.then(|| shares(&choices, cfg.pool.0)),
        cohort_models: size,
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// The summary of a model whose loss stopped being finite in `epoch`.
fn diverged_summary(member: &Member, epoch: usize, started: Instant, size: usize) -> Summary {
    let this_phase = &member.phase_seconds;
    let (all, p1, p2): (Vec<f64>, Option<f64>, Option<f64>) = match (member.phase, &member.phase1) {
        ("1", _) => (this_phase.clone(), Some(mean(this_phase)), None),
        ("2", Some((p1, _))) => (
            p1.epoch_seconds.iter().chain(this_phase).copied().collect(),
            Some(mean(&p1.epoch_seconds)),
            Some(mean(this_phase)),
        ),
        _ => (this_phase.clone(), None, None),
    };
    Summary {
        status: "diverged".into(),
        diverged_epoch: Some(epoch),
        test_acc: None,
        val_acc: None,
        val_loss: None,
        best_epoch: None,
        phase1_test_acc: None,
        n_params: member.n_params,
        epoch_seconds: mean(&all),
        phase1_epoch_seconds: p1,
        phase2_epoch_seconds: p2,
        train_seconds: started.elapsed().as_secs_f64(),
        layer_shares: None,
        cohort_models: size,
    }
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

    /// The loop as it was written for one model (before cohorts): per phase a fresh Adam over
    /// the phase's variables, `train_step` per batch, the best validation loss's snapshot
    /// restored at the phase's end, SmartMixed frozen (warm or fresh) between its phases. A
    /// plain reference for [`train_cohort`]: returns (epoch rows, final val loss, test acc,
    /// phase-1 test acc, the final model's variables).
    #[allow(clippy::type_complexity)]
    fn reference_loop(
        cfg: &TrainConfig,
        splits: &Splits,
    ) -> (Vec<(f64, f64, f64)>, f64, f64, Option<f64>, Vec<Tensor>) {
        let dev = Device::Cpu;
        let mut streams = Streams::new(cfg.seed);
        let eval_pass = Pass::Eval(match cfg.eval_selection {
            EvalSelection::Argmax => Selection::Argmax,
            EvalSelection::Sample => Selection::Sample,
        });
        let eval = |model: &Mlp, split: &DeviceSplit, rng: &mut ChaCha8Rng| -> (f64, f64) {
            let logits = model.forward(&split.images, eval_pass, rng).unwrap();
            let l = loss(&logits, &split.labels, cfg.loss).unwrap();
            let l = l.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
            let correct = logits.argmax(D::Minus1).unwrap().eq(&split.labels).unwrap();
            let correct = correct.to_dtype(DType::F64).unwrap().sum_all().unwrap();
            let n = split.len() as f64;
            (l * n / n, correct.to_scalar::<f64>().unwrap() / n)
        };
        let mut rows = Vec::new();
        let mut model = initial_model(cfg, &mut streams.init, &dev).unwrap();
        let phases: Vec<(usize, usize)> = match cfg.method {
            Method::Baseline(_) => vec![(1, cfg.epochs)],
            Method::SmartMixed => vec![(1, cfg.phase1_epochs), (cfg.phase1_epochs + 1, cfg.epochs)],
        };
        let mut phase1_test = None;
        let mut best_val = f64::INFINITY;
        for (p, &(first, last)) in phases.iter().enumerate() {
            if p == 1 {
                phase1_test = Some(eval(&model, &splits.test, &mut streams.gumbel).1);
                model = match cfg.phase2_init {
                    Phase2Init::Warm => model.freeze(None).unwrap(),
                    Phase2Init::Fresh => {
                        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
                        rng.set_stream(3);
                        model.freeze(Some((&mut rng, &dev))).unwrap()
                    }
                };
            }
            let vars = model.vars();
            let mut adam = Adam::new(vars.clone(), AdamConfig::with_lr(cfg.lr)).unwrap();
            let mut best: Option<(f64, Vec<Tensor>)> = None;
            let train = &splits.train;
            let batches = train.len().div_ceil(cfg.batch_size);
            for _ in first..=last {
                let order = epoch_order(train.len(), &mut streams.shuffle, &dev).unwrap();
                let mut sum = Tensor::zeros((), DType::F32, &dev).unwrap();
                for b in 0..batches {
                    let start = b * cfg.batch_size;
                    let len = cfg.batch_size.min(train.len() - start);
                    let index = order.narrow(0, start, len).unwrap();
                    let x = train.images.index_select(&index, 0).unwrap();
                    let y = train.labels.index_select(&index, 0).unwrap();
                    let l = train_step(
                        &model,
                        &vars,
                        &mut adam,
                        (&x, &y),
                        cfg.loss,
                        cfg.grad_clip,
                        &mut streams.gumbel,
                    )
                    .unwrap();
                    sum = (sum + l.detach()).unwrap();
                }
                let train_loss = sum.to_scalar::<f32>().unwrap() as f64 / batches as f64;
                let (val_loss, val_acc) = eval(&model, &splits.val, &mut streams.gumbel);
                rows.push((train_loss, val_loss, val_acc));
                if best.as_ref().is_none_or(|(b, _)| val_loss < *b) {
                    best = Some((val_loss, model.snapshot().unwrap()));
                }
            }
            let (val, snapshot) = best.unwrap();
            model.restore(&snapshot).unwrap();
            best_val = val;
        }
        let test = eval(&model, &splits.test, &mut streams.gumbel).1;
        let vars = model
            .vars()
            .iter()
            .map(|v| v.as_tensor().copy().unwrap())
            .collect();
        (rows, best_val, test, phase1_test, vars)
    }

    /// [`train_cohort`] against [`reference_loop`], model by model, for a cohort whose models
    /// change phase at different epochs (a baseline, SmartMixed with 1 and 2 selection epochs,
    /// warm and fresh, one with the reference's sampled evaluation and probability loss alone):
    /// every epoch row, the best validation loss, the test accuracies and the final weights.
    #[test]
    fn the_cohort_loop_follows_the_single_model_loop() {
        let dev = Device::Cpu;
        let raw = crate::run::data::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist-mini"),
        )
        .unwrap();
        let splits = Splits::new(&raw, 42, &dev).unwrap();
        let config = |method: &str,
                      seed: u64,
                      p1: usize,
                      extra: &dyn Fn(&mut crate::run::config::Settings)| {
            let mut flags = crate::run::config::Settings {
                widths: Some(vec![24, 12]),
                method: Some(method.parse().unwrap()),
                seed: Some(seed),
                epochs: Some(4),
                phase1_epochs: Some(p1),
                batch_size: Some(128),
                ..Default::default()
            };
            extra(&mut flags);
            TrainConfig::resolve(None, None, &flags).unwrap()
        };
        let cohort = [
            config("relu", 1, 1, &|_| {}),
            config("smartmixed", 1, 1, &|_| {}),
            config("smartmixed", 2, 2, &|s| {
                s.phase2_init = Some(Phase2Init::Fresh)
            }),
        ];
        let reference_preset = config("smartmixed", 3, 2, &|s| {
            s.loss = Some(LossKind::Probs);
            s.eval_selection = Some(EvalSelection::Sample);
        });
        let dir = std::env::temp_dir().join(format!("smartmixed-loop-{}", std::process::id()));
        for group in [cohort.iter().collect::<Vec<_>>(), vec![&reference_preset]] {
            let outs: Vec<std::path::PathBuf> = (0..group.len())
                .map(|i| {
                    let d = dir.join(format!("{}-{i}", group.len()));
                    std::fs::create_dir_all(&d).unwrap();
                    d
                })
                .collect();
            let out_refs: Vec<&Path> = outs.iter().map(|p| p.as_path()).collect();
            let summaries =
                train_cohort(&group, &splits, &dev, &out_refs, Progress::Quiet).unwrap();
            for (i, cfg) in group.iter().enumerate() {
                let (rows, val, test, phase1_test, vars) = reference_loop(cfg, &splits);
                let s = &summaries[i];
                assert_eq!(s.val_loss, Some(val), "model {i} best val loss");
                assert_eq!(s.test_acc, Some(test), "model {i} test acc");
                assert_eq!(s.phase1_test_acc, phase1_test, "model {i} phase-1 test acc");
                let logged: Vec<(f64, f64, f64)> =
                    csv::Reader::from_path(outs[i].join("epochs.csv"))
                        .unwrap()
                        .records()
                        .map(|r| {
                            let r = r.unwrap();
                            let f = |c: usize| r[c].parse::<f64>().unwrap();
                            (f(2), f(3), f(4))
                        })
                        .collect();
                let rounded: Vec<(f64, f64, f64)> = rows
                    .iter()
                    .map(|&(a, b, c)| {
                        let r = |v: f64| format!("{v:.6}").parse::<f64>().unwrap();
                        (r(a), r(b), r(c))
                    })
                    .collect();
                assert_eq!(logged, rounded, "model {i} epochs");
                let saved = candle_core::safetensors::load(outs[i].join("model.safetensors"), &dev)
                    .unwrap();
                for (l, pair) in vars.chunks(2).take(3).enumerate() {
                    for (what, t) in ["weight", "bias"].iter().zip(pair) {
                        let a: Vec<f32> = saved[&format!("linear.{l}.{what}")]
                            .flatten_all()
                            .unwrap()
                            .to_vec1()
                            .unwrap();
                        let b: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                        assert!(
                            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                            "model {i} linear.{l}.{what}"
                        );
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
