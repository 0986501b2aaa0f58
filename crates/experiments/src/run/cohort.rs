//! A cohort: M models of the same widths trained as one stacked model (issue 13). Each linear
//! layer's weights are one tensor `[M, out, in]`, so a layer is one batched matrix product for
//! all models, and each hidden layer is one fused op per run of neighbouring models of the same
//! kind (fixed functions, or a selection over one pool), with a leading model dimension.
//!
//! Each model keeps what it has alone: its own batch (x is `[M, B, 784]`), its own Gumbel stream,
//! its own loss, gradient-norm clipping factor and Adam update. On the CPU a model in a cohort
//! gets exactly the bits of the same model trained alone by [`crate::run::train::train_step`]
//! (tested below): the batched products run the same gemm per model (tested in `model.rs`), the
//! fused ops give each model its single-model bits (tested in mixed-act), and the rest (bias
//! sums, transposes, clipping norms, Adam) runs per model slice with the single model's code.
//!
//! The epoch loop over a cohort (per-model phases, divergence, checkpoints and files) is
//! [`crate::run::train::train_cohort`]; a single run is a cohort of one.

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use mixed_act::gumbel::gumbel_noise;
use mixed_act::{
    mixture, mixture_grads, per_neuron, per_neuron_grad, per_neuron_with_slope, Pool, Selection,
};
use rand_chacha::ChaCha8Rng;

use crate::run::config::LossKind;
use crate::run::cpu_ops;
use crate::run::model::{Hidden, Mlp, Pass};
use crate::run::optim::{Adam, Owner};
use crate::run::train::{clip_factor, loss};

/// One linear layer of every model: `y[m] = x[m] W[m]^T + b[m]`.
struct StackedLinear {
    /// `[M, out, in]`.
    weight: Var,
    /// `[M, out]`.
    bias: Var,
}

impl StackedLinear {
    /// The forward pass of all models, untracked (the cohort runs its own backward pass).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let weight = self.weight.as_tensor().detach();
        let bias = self.bias.as_tensor().detach().unsqueeze(1)?;
        Ok(x.matmul(&weight.t()?)?.broadcast_add(&bias)?)
    }

    /// [`Linear`](crate::run::model::Linear)'s backward pass for every model: the same ops per
    /// model slice (bias sums and weight transposes per model; the products batched).
    fn backward(
        &self,
        x: &Tensor,
        grad_y: &Tensor,
        need_input: bool,
        grads: &mut GradStore,
    ) -> Result<Option<Tensor>> {
        grads.insert(self.bias.as_tensor(), cpu_ops::column_sums_stack(grad_y)?);
        let grad_weight_t = x.t()?.matmul(grad_y)?;
        grads.insert(
            self.weight.as_tensor(),
            cpu_ops::transposed_stack(&grad_weight_t)?,
        );
        need_input
            .then(|| grad_y.matmul(&self.weight.as_tensor().detach()))
            .transpose()
            .map_err(Into::into)
    }
}

/// Neighbouring models whose hidden layer is of one kind, run as one op.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Fixed,
    Selection { pool: Pool, clamp: Option<f64> },
}

fn kind(h: &Hidden) -> Kind {
    match h {
        Hidden::Fixed(_) => Kind::Fixed,
        Hidden::Selection(s) => Kind::Selection {
            pool: s.pool(),
            clamp: s.clamp(),
        },
    }
}

/// `[start, end)` ranges of models with the same kind of hidden layer `layer`.
fn runs(models: &[Mlp], layer: usize) -> Vec<(std::ops::Range<usize>, Kind)> {
    let mut runs: Vec<(std::ops::Range<usize>, Kind)> = Vec::new();
    for (m, model) in models.iter().enumerate() {
        let k = kind(&model.hidden[layer]);
        match runs.last_mut() {
            Some((range, last)) if *last == k => range.end = m + 1,
            _ => runs.push((m..m + 1, k)),
        }
    }
    runs
}

/// What the stacked forward pass keeps for the backward pass, per layer.
struct Trace {
    inputs: Vec<Tensor>,
    pre_activations: Vec<Tensor>,
    /// Per hidden layer and run: the mixing weights of each model of a selection run (tracked
    /// to its logits), or the slopes of a fixed run (when the device and dtype keep them).
    runs: Vec<Vec<RunTrace>>,
}

enum RunTrace {
    Fixed { ids: Tensor, slope: Option<Tensor> },
    Selection { mixing: Vec<Tensor> },
}

/// M models trained together. The hidden layers stay each model's own (their logits are each
/// model's variables); the linear layers are stacked.
pub struct Cohort {
    /// The models' hidden layers and anything else of theirs; their linear layers are not used
    /// while they are in the cohort (see [`Cohort::unstack`]).
    models: Vec<Mlp>,
    linears: Vec<StackedLinear>,
}

impl Cohort {
    /// Stacks models of the same widths (their linear weights are copied into the stacks).
    pub fn stack(models: Vec<Mlp>) -> Result<Self> {
        let first = models
            .first()
            .context("a cohort needs at least one model")?;
        let widths = first.widths();
        anyhow::ensure!(
            models.iter().all(|m| m.widths() == widths),
            "a cohort's models must have the same widths"
        );
        let linears = (0..first.linears.len())
            .map(|i| {
                let stack = |f: &dyn Fn(&Mlp) -> Tensor| -> Result<Var> {
                    let parts: Vec<Tensor> = models.iter().map(f).collect();
                    Ok(Var::from_tensor(&Tensor::stack(&parts, 0)?)?)
                };
                Ok(StackedLinear {
                    weight: stack(&|m| m.linears[i].weight.as_tensor().clone())?,
                    bias: stack(&|m| m.linears[i].bias.as_tensor().clone())?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { models, linears })
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Model `m` on its own, with its current weights (copied out of the stacks).
    pub fn unstack(&self, m: usize) -> Result<Mlp> {
        let mut model = self.models[m].clone();
        for (single, stacked) in model.linears.iter_mut().zip(&self.linears) {
            single.weight = Var::from_tensor(&stacked.weight.as_tensor().get(m)?.copy()?)?;
            single.bias = Var::from_tensor(&stacked.bias.as_tensor().get(m)?.copy()?)?;
        }
        Ok(model)
    }

    /// Model `m`'s hidden layers and other parts (its linear layers live in the stacks).
    pub fn model(&self, m: usize) -> &Mlp {
        &self.models[m]
    }

    /// Copies of model `m`'s variables (its linear slices, then its selection logits), for
    /// keeping its best checkpoint.
    pub fn snapshot(&self, m: usize) -> Result<Vec<Tensor>> {
        let mut copies = Vec::new();
        for l in &self.linears {
            copies.push(l.weight.as_tensor().get(m)?.copy()?);
            copies.push(l.bias.as_tensor().get(m)?.copy()?);
        }
        for h in &self.models[m].hidden {
            if let Hidden::Selection(s) = h {
                copies.push(s.logits().as_tensor().copy()?);
            }
        }
        Ok(copies)
    }

    /// Puts a [`Cohort::snapshot`] of model `m` back.
    pub fn restore(&self, m: usize, snapshot: &[Tensor]) -> Result<()> {
        let mut values = snapshot.iter();
        let mut next = || values.next().context("a snapshot of another model");
        for l in &self.linears {
            l.weight
                .as_tensor()
                .slice_set(&next()?.unsqueeze(0)?, 0, m)?;
            l.bias.as_tensor().slice_set(&next()?.unsqueeze(0)?, 0, m)?;
        }
        for h in &self.models[m].hidden {
            if let Hidden::Selection(s) = h {
                s.logits().set(next()?)?;
            }
        }
        Ok(())
    }

    /// Ends model `m`'s selection phase as [`Mlp::freeze`] does: its selection layers keep
    /// their argmax; its linear layers stay (`None`) or are drawn afresh from `fresh`.
    pub fn freeze(
        &mut self,
        m: usize,
        fresh: Option<(&mut ChaCha8Rng, &candle_core::Device)>,
    ) -> Result<()> {
        let redraw = fresh.is_some();
        let frozen = self.models[m].freeze(fresh)?;
        if redraw {
            for (stacked, l) in self.linears.iter().zip(&frozen.linears) {
                stacked
                    .weight
                    .as_tensor()
                    .slice_set(&l.weight.as_tensor().unsqueeze(0)?, 0, m)?;
                stacked
                    .bias
                    .as_tensor()
                    .slice_set(&l.bias.as_tensor().unsqueeze(0)?, 0, m)?;
            }
        }
        self.models[m].hidden = frozen.hidden;
        Ok(())
    }

    /// Every trainable variable with its owner, in each model's own order (its linear layers,
    /// then its selection logits): what the clipping norms and Adam read.
    pub fn vars(&self) -> Vec<(Var, Owner)> {
        let mut vars: Vec<(Var, Owner)> = self
            .linears
            .iter()
            .flat_map(|l| {
                [
                    (l.weight.clone(), Owner::Stacked),
                    (l.bias.clone(), Owner::Stacked),
                ]
            })
            .collect();
        for (m, model) in self.models.iter().enumerate() {
            for h in &model.hidden {
                if let Hidden::Selection(s) = h {
                    vars.push((s.logits().clone(), Owner::Model(m)));
                }
            }
        }
        vars
    }

    /// Logits `[M, B, 10]` for x `[M, B, 784]` (each model its own batch) in a training pass,
    /// sampling every selection layer with its model's Gumbel stream, and the trace for
    /// [`Cohort::backward`].
    fn forward_traced(&self, x: &Tensor, rngs: &mut [ChaCha8Rng]) -> Result<(Tensor, Trace)> {
        self.run(x, Pass::Train, rngs, &vec![true; self.len()])
    }

    /// Logits `[M, B, 10]` of an evaluation pass (selection layers by argmax, or sampled as the
    /// pass says), as [`Mlp::forward`] gives each model. Only the models in `include` draw
    /// Gumbel noise (the others' logits are to be ignored: they keep their streams untouched).
    pub fn forward(
        &self,
        x: &Tensor,
        pass: Pass,
        rngs: &mut [ChaCha8Rng],
        include: &[bool],
    ) -> Result<Tensor> {
        Ok(self.run(x, pass, rngs, include)?.0)
    }

    fn run(
        &self,
        x: &Tensor,
        pass: Pass,
        rngs: &mut [ChaCha8Rng],
        include: &[bool],
    ) -> Result<(Tensor, Trace)> {
        let sampling = matches!(pass, Pass::Train | Pass::Eval(Selection::Sample));
        // Each model draws the noise of all its selection layers at once, in layer order, as a
        // model trained alone does.
        let noise: Vec<Option<Vec<f32>>> = self
            .models
            .iter()
            .zip(rngs.iter_mut())
            .zip(include)
            .map(|((model, rng), &included)| {
                if !(sampling && included) {
                    return None;
                }
                let n: usize = model
                    .hidden
                    .iter()
                    .map(|h| match h {
                        Hidden::Selection(s) => s.neurons() * s.pool().len(),
                        Hidden::Fixed(_) => 0,
                    })
                    .sum();
                (n > 0).then(|| gumbel_noise(rng, n))
            })
            .collect();
        let mut offsets = vec![0usize; self.len()];
        let mut trace = Trace {
            inputs: Vec::new(),
            pre_activations: Vec::new(),
            runs: Vec::new(),
        };
        let mut h = x.clone();
        for (i, linear) in self.linears.iter().enumerate() {
            trace.inputs.push(h.clone());
            h = linear.forward(&h)?;
            if i + 1 == self.linears.len() {
                break;
            }
            trace.pre_activations.push(h.clone());
            let mut outputs = Vec::new();
            let mut layer_runs = Vec::new();
            for (range, kind) in runs(&self.models, i) {
                let x_run = h.narrow(0, range.start, range.len())?;
                match kind {
                    Kind::Fixed => {
                        let ids: Vec<Tensor> = range
                            .clone()
                            .map(|m| match &self.models[m].hidden[i] {
                                Hidden::Fixed(f) => f.ids().clone(),
                                Hidden::Selection(_) => unreachable!("a fixed run"),
                            })
                            .collect();
                        let ids = Tensor::stack(&ids, 0)?;
                        if pass == Pass::Train {
                            let (y, slope) = per_neuron_with_slope(&x_run, &ids)?;
                            outputs.push(y);
                            layer_runs.push(RunTrace::Fixed { ids, slope });
                        } else {
                            outputs.push(per_neuron(&x_run, &ids)?);
                        }
                    }
                    Kind::Selection { pool, clamp } => {
                        let mut mixing = Vec::new();
                        for m in range.clone() {
                            let Hidden::Selection(s) = &self.models[m].hidden[i] else {
                                unreachable!("a selection run")
                            };
                            if noise[m].is_none() {
                                mixing.push(
                                    s.weights(Selection::Argmax, &mut rngs[m])?
                                        .to_dtype(h.dtype())?,
                                );
                                continue;
                            }
                            let len = s.neurons() * pool.len();
                            let values = noise[m].as_ref().expect("checked above");
                            let layer_noise = Tensor::from_slice(
                                &values[offsets[m]..offsets[m] + len],
                                (s.neurons(), pool.len()),
                                x.device(),
                            )?
                            .to_dtype(s.logits().dtype())?;
                            offsets[m] += len;
                            mixing.push(s.weights_with_noise(&layer_noise, h.dtype())?);
                        }
                        let detached: Vec<Tensor> = mixing.iter().map(|w| w.detach()).collect();
                        let w = Tensor::stack(&detached, 0)?;
                        outputs.push(mixture(&x_run, &w, pool, clamp)?);
                        layer_runs.push(RunTrace::Selection { mixing });
                    }
                }
            }
            h = if outputs.len() == 1 {
                outputs.pop().expect("one run")
            } else {
                Tensor::cat(&outputs, 0)?
            };
            trace.runs.push(layer_runs);
        }
        Ok((h, trace))
    }

    /// Every variable's gradient for the gradient `[M, B, 10]` of the models' losses to their
    /// logits: [`Mlp::backward`] for every model at once.
    fn backward(&self, trace: &Trace, grad_logits: &Tensor) -> Result<GradStore> {
        let mut grads = GradStore::default();
        let mut mixing_grads: Vec<(Tensor, Tensor)> = Vec::new();
        let mut grad = grad_logits.clone();
        for (i, linear) in self.linears.iter().enumerate().rev() {
            let Some(grad_input) = linear.backward(&trace.inputs[i], &grad, i > 0, &mut grads)?
            else {
                break;
            };
            let pre_activation = &trace.pre_activations[i - 1];
            let mut parts = Vec::new();
            for ((range, kind), run) in runs(&self.models, i - 1).iter().zip(&trace.runs[i - 1]) {
                let x_run = pre_activation.narrow(0, range.start, range.len())?;
                let g_run = grad_input.narrow(0, range.start, range.len())?;
                parts.push(match (kind, run) {
                    (Kind::Fixed, RunTrace::Fixed { slope: Some(s), .. }) => g_run.mul(s)?,
                    (Kind::Fixed, RunTrace::Fixed { ids, slope: None }) => {
                        per_neuron_grad(&x_run, ids, &g_run)?
                    }
                    (Kind::Selection { pool, clamp }, RunTrace::Selection { mixing }) => {
                        let detached: Vec<Tensor> = mixing.iter().map(|w| w.detach()).collect();
                        let w = Tensor::stack(&detached, 0)?;
                        let (grad_x, grad_w) = mixture_grads(&x_run, &w, *pool, *clamp, &g_run)?;
                        for (j, w) in mixing.iter().enumerate() {
                            mixing_grads.push((w.clone(), grad_w.get(j)?));
                        }
                        grad_x
                    }
                    _ => anyhow::bail!("backward: the trace does not match layer {i}"),
                });
            }
            grad = if parts.len() == 1 {
                parts.pop().expect("one run")
            } else {
                Tensor::cat(&parts, 0)?
            };
        }
        if !mixing_grads.is_empty() {
            // As Mlp::backward: sum(w * G) has gradient exactly G in w; autograd takes it from
            // each model's mixing weights to its logits.
            let seeds = mixing_grads
                .iter()
                .map(|(w, g)| (w * g)?.sum_all())
                .collect::<candle_core::Result<Vec<_>>>()?;
            let logit_grads = Tensor::stack(&seeds, 0)?.sum_all()?.backward()?;
            for model in &self.models {
                for h in &model.hidden {
                    if let Hidden::Selection(s) = h {
                        let logits = s.logits().as_tensor();
                        if let Some(g) = logit_grads.get(logits) {
                            grads.insert(logits, g.clone());
                        }
                    }
                }
            }
        }
        Ok(grads)
    }
}

/// One optimizer step of every model of the cohort on its own batch: x `[M, B, 784]`, labels
/// `[M, B]`, `rngs` each model's Gumbel stream, `grad_clips` each model's clipping bound. Each
/// model's loss and gradients are its own; each is clipped by its own norm; `optimizer` holds
/// [`Cohort::vars`] (with each model's learning rate). Returns the models'
/// batch losses (on the device). A model whose `active` entry is false (it diverged) runs
/// along but is not updated. The same bits per model as [`crate::run::train::train_step`] on
/// the model alone (CPU; tested).
#[allow(clippy::too_many_arguments)]
pub fn cohort_step(
    cohort: &Cohort,
    vars: &[(Var, Owner)],
    optimizer: &mut Adam,
    (x, y): (&Tensor, &Tensor),
    kind: LossKind,
    grad_clips: &[Option<f64>],
    rngs: &mut [ChaCha8Rng],
    active: &[bool],
) -> Result<Vec<Tensor>> {
    anyhow::ensure!(
        rngs.len() == cohort.len() && x.dim(0)? == cohort.len(),
        "cohort_step: {} models, {} Gumbel streams, x {:?}",
        cohort.len(),
        rngs.len(),
        x.dims()
    );
    let (logits, trace) = cohort.forward_traced(x, rngs)?;
    // Each model's loss from its own logits, as train_step computes it.
    let mut losses = Vec::with_capacity(cohort.len());
    let mut grad_logits = Vec::with_capacity(cohort.len());
    for m in 0..cohort.len() {
        let logits_m = Var::from_tensor(&logits.get(m)?)?;
        let batch_loss = loss(logits_m.as_tensor(), &y.get(m)?, kind)?;
        let g = batch_loss
            .backward()?
            .remove(logits_m.as_tensor())
            .context("the loss does not depend on the logits")?;
        losses.push(batch_loss);
        grad_logits.push(g);
    }
    let grads = cohort.backward(&trace, &Tensor::stack(&grad_logits, 0)?)?;
    // Each model's clipping factor from its own gradients, in its own variable order. On the
    // CPU read to the host (free there; the fused update takes it), elsewhere kept on the
    // device, so that no step waits for the GPU.
    let own_grads = |m: usize| -> Result<Vec<Tensor>> {
        Ok(vars
            .iter()
            .filter_map(|(v, owner)| {
                let g = grads.get(v.as_tensor())?;
                match owner {
                    Owner::Stacked => Some(g.get(m)),
                    Owner::Model(o) if *o == m => Some(Ok(g.clone())),
                    Owner::Model(_) => None,
                }
            })
            .collect::<candle_core::Result<_>>()?)
    };
    let factor = |m: usize| -> Result<Option<Tensor>> {
        match grad_clips[m] {
            Some(max_norm) if active[m] => clip_factor(&own_grads(m)?, max_norm),
            _ => Ok(None),
        }
    };
    if x.device().is_cpu() {
        let scales = (0..cohort.len())
            .map(|m| -> Result<Option<f32>> {
                if !active[m] {
                    return Ok(None);
                }
                Ok(Some(match factor(m)? {
                    Some(c) => c.to_scalar::<f32>()?,
                    None => 1.0,
                }))
            })
            .collect::<Result<Vec<Option<f32>>>>()?;
        optimizer.step_models(&grads, &scales)?;
    } else {
        let one = Tensor::ones((), candle_core::DType::F32, x.device())?;
        let factors = (0..cohort.len())
            .map(|m| Ok(factor(m)?.unwrap_or_else(|| one.clone())))
            .collect::<Result<Vec<Tensor>>>()?;
        optimizer.step_models_on_device(&grads, &Tensor::stack(&factors, 0)?, active)?;
    }
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::config::{Settings, TrainConfig};
    use crate::run::optim::AdamConfig;
    use crate::run::train::{seeded_initial_model, train_step};
    use candle_core::{Device, IndexOp};
    use rand::{Rng, SeedableRng};

    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A cohort of {relu seed 1, SmartMixed seed 1, ELU seed 2, SmartMixed seed 2 with a small
    /// pool and no clamp, a SmartMixed model in phase 2 (frozen)} trained 4 steps, each model
    /// on its own batches, gives every model exactly the parameters and losses of the same
    /// model trained alone with `train_step`, with and without gradient clipping.
    #[test]
    fn a_cohort_step_gives_each_model_its_single_model_bits() {
        let dev = Device::Cpu;
        let config = |method: &str, seed: u64, extra: &dyn Fn(&mut Settings)| {
            let mut flags = Settings {
                widths: Some(vec![24, 12]),
                method: Some(method.parse().unwrap()),
                seed: Some(seed),
                ..Default::default()
            };
            extra(&mut flags);
            TrainConfig::resolve(None, None, &flags).unwrap()
        };
        let no = |_: &mut Settings| {};
        let configs = [
            config("relu", 1, &no),
            config("smartmixed", 1, &no),
            config("elu", 2, &no),
            config("smartmixed", 2, &|s| {
                s.pool = Some("relu,elu,gelu".parse().unwrap());
                s.clamp = Some(crate::run::config::ClampSetting(None));
            }),
            config("smartmixed", 3, &no),
        ];
        for grad_clip in [Some(1.0), None] {
            let models: Vec<Mlp> = configs
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let model = seeded_initial_model(c, &dev).unwrap();
                    // The last one has finished its selection: a frozen phase-2 model.
                    if i == configs.len() - 1 {
                        model.freeze(None).unwrap()
                    } else {
                        model
                    }
                })
                .collect();
            let singles: Vec<Mlp> = models.iter().map(deep_copy).collect();
            let cohort = Cohort::stack(models).unwrap();
            let vars = cohort.vars();
            let mut adam = Adam::with_owners(vars.clone(), AdamConfig::with_lr(3e-3)).unwrap();
            let gumbel = |seed: u64| rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut rngs: Vec<ChaCha8Rng> = (0..cohort.len() as u64).map(gumbel).collect();
            let mut data = rand_chacha::ChaCha8Rng::seed_from_u64(9);
            let (batch, m) = (16, cohort.len());
            let steps: Vec<(Tensor, Tensor)> = (0..4)
                .map(|_| {
                    let x: Vec<f32> = (0..m * batch * 784).map(|_| data.random()).collect();
                    let y: Vec<u32> = (0..m * batch).map(|_| data.random_range(0..10)).collect();
                    (
                        Tensor::from_vec(x, (m, batch, 784), &dev).unwrap(),
                        Tensor::from_vec(y, (m, batch), &dev).unwrap(),
                    )
                })
                .collect();
            let mut cohort_losses = Vec::new();
            for (x, y) in &steps {
                let losses = cohort_step(
                    &cohort,
                    &vars,
                    &mut adam,
                    (x, y),
                    LossKind::Logits,
                    &[grad_clip; 5],
                    &mut rngs,
                    &[true; 5],
                )
                .unwrap();
                cohort_losses.push(losses);
            }
            for (i, single) in singles.iter().enumerate() {
                let single_vars = single.vars();
                let mut adam = Adam::new(single_vars.clone(), AdamConfig::with_lr(3e-3)).unwrap();
                let mut rng = gumbel(i as u64);
                for (s, (x, y)) in steps.iter().enumerate() {
                    let loss = train_step(
                        single,
                        &single_vars,
                        &mut adam,
                        (&x.i(i).unwrap(), &y.i(i).unwrap()),
                        LossKind::Logits,
                        grad_clip,
                        &mut rng,
                    )
                    .unwrap();
                    assert_eq!(
                        bits(&loss),
                        bits(&cohort_losses[s][i]),
                        "model {i} step {s} loss, clip {grad_clip:?}"
                    );
                }
                let from_cohort = cohort.unstack(i).unwrap();
                for (v, (a, b)) in single.vars().iter().zip(from_cohort.vars()).enumerate() {
                    let (a, b) = (bits(a.as_tensor()), bits(b.as_tensor()));
                    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
                    assert!(
                        a.len() == b.len() && differ == 0,
                        "model {i} variable {v}: {differ} of {} values differ, clip {grad_clip:?}",
                        a.len()
                    );
                }
            }
        }
    }

    fn deep_copy(model: &Mlp) -> Mlp {
        let mut copy = model.clone();
        for l in &mut copy.linears {
            l.weight = Var::from_tensor(&l.weight.as_tensor().copy().unwrap()).unwrap();
            l.bias = Var::from_tensor(&l.bias.as_tensor().copy().unwrap()).unwrap();
        }
        for h in &mut copy.hidden {
            if let Hidden::Selection(s) = h {
                let logits = Var::from_tensor(&s.logits().as_tensor().copy().unwrap()).unwrap();
                *s = mixed_act::SelectionLayer::from_logits(logits, s.pool(), s.tau(), s.clamp())
                    .unwrap();
            }
        }
        copy
    }
}
