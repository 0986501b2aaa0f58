//! One optimizer step of a stack: forward, each model's loss, the explicit backward pass, each
//! model's gradient-norm clipping factor, Adam.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var, D};
use rand_chacha::ChaCha8Rng;

use crate::run::config::LossKind;
use crate::run::hidden::Pass;
use crate::run::optim::{clip_factor, Adam, Owner};
use crate::run::stack::Stack;

/// Mean cross-entropy of a batch: on the logits, or on softmax probabilities (the reference).
pub fn loss(logits: &Tensor, labels: &Tensor, kind: LossKind) -> candle_core::Result<Tensor> {
    match kind {
        LossKind::Logits => candle_nn::loss::cross_entropy(logits, labels),
        LossKind::Probs => {
            candle_nn::loss::cross_entropy(&candle_nn::ops::softmax(logits, D::Minus1)?, labels)
        }
    }
}

/// Each model's batch loss from its logits `[M, B, 10]` (labels `[M, B]`) and the gradient
/// `[M, B, 10]` of each loss to its model's logits, model by model: the bits of a model trained
/// alone (the CPU path).
fn losses_one_by_one(logits: &Tensor, y: &Tensor, kind: LossKind) -> Result<(Vec<Tensor>, Tensor)> {
    let models = logits.dim(0)?;
    let mut losses = Vec::with_capacity(models);
    let mut grads = Vec::with_capacity(models);
    for m in 0..models {
        let logits_m = Var::from_tensor(&logits.get(m)?)?;
        let batch_loss = loss(logits_m.as_tensor(), &y.get(m)?, kind)?;
        let g = batch_loss
            .backward()?
            .remove(logits_m.as_tensor())
            .context("the loss does not depend on the logits")?;
        losses.push(batch_loss);
        grads.push(g);
    }
    Ok((losses, Tensor::stack(&grads, 0)?))
}

/// [`losses_one_by_one`] as one set of ops for all models (GPUs: a handful of launches per
/// step instead of a loss graph per model). The same math; the sums may round differently.
pub(crate) fn losses_at_once(
    logits: &Tensor,
    y: &Tensor,
    kind: LossKind,
) -> Result<(Vec<Tensor>, Tensor)> {
    let (models, batch, _) = logits.dims3()?;
    let var = Var::from_tensor(logits)?;
    let inputs = match kind {
        LossKind::Logits => var.as_tensor().clone(),
        LossKind::Probs => candle_nn::ops::softmax(var.as_tensor(), D::Minus1)?,
    };
    let log_p = candle_nn::ops::log_softmax(&inputs, D::Minus1)?;
    let picked = log_p.gather(&y.to_dtype(candle_core::DType::U32)?.unsqueeze(2)?, 2)?;
    let losses = (picked.squeeze(2)?.sum(1)? / -(batch as f64))?;
    let grad = losses
        .sum_all()?
        .backward()?
        .remove(var.as_tensor())
        .context("the loss does not depend on the logits")?;
    let losses = (0..models)
        .map(|m| losses.get(m))
        .collect::<candle_core::Result<_>>()?;
    Ok((losses, grad))
}

/// The models' own gradients by (place in each model's parameter list, shape): (model, gradient).
type ByPlace = BTreeMap<(usize, Vec<usize>), Vec<(u32, Tensor)>>;

/// Every model's gradient-clipping factor as one tensor `[M]` on the device, in a handful of
/// reductions whatever the number of models (GPUs; the CPU path reads [`clip_factor`] per model,
/// the same formula): the stacked parameters' squared norms per model slice at once, the
/// models' own parameters stacked by their place in each model's list (models of one kind hold
/// the same shapes there), then `max / (norm + 1e-6)` capped at 1 (1 without a bound).
pub(crate) fn clip_factors_at_once(
    params: &[(Var, Owner)],
    grads: &GradStore,
    bounds: &[Option<f64>],
    models: usize,
) -> Result<Tensor> {
    let device = params.first().context("no parameters")?.0.device().clone();
    let mut squares = Tensor::zeros(models, DType::F32, &device)?;
    let mut own: ByPlace = BTreeMap::new();
    let mut place = vec![0usize; models];
    for (var, owner) in params {
        let grad = grads.get(var.as_tensor());
        match (owner, grad) {
            (Owner::Stacked, Some(g)) => {
                squares = (squares + g.sqr()?.flatten_from(1)?.sum(1)?)?;
            }
            (Owner::Model(m), grad) => {
                if let Some(g) = grad {
                    let key = (place[*m], g.dims().to_vec());
                    own.entry(key).or_default().push((*m as u32, g.clone()));
                }
                place[*m] += 1;
            }
            (Owner::Stacked, None) => {}
        }
    }
    for list in own.into_values() {
        let (index, grads): (Vec<u32>, Vec<Tensor>) = list.into_iter().unzip();
        let sums = Tensor::stack(&grads, 0)?.sqr()?.flatten_from(1)?.sum(1)?;
        squares = squares.index_add(&Tensor::new(index, &device)?, &sums, 0)?;
    }
    let bounds: Vec<f32> = bounds
        .iter()
        .map(|b| b.map_or(f32::INFINITY, |b| b as f32))
        .collect();
    let bounds = Tensor::new(bounds, &device)?;
    Ok((bounds / (squares.sqrt()? + 1e-6)?)?.clamp(0f32, 1f32)?)
}

/// Model `m`'s gradients in its own variable order: its slices of the stacked parameters'
/// gradients and its own parameters' gradients.
fn model_gradients(params: &[(Var, Owner)], grads: &GradStore, m: usize) -> Result<Vec<Tensor>> {
    Ok(params
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
}

/// Each model's gradient-clipping factor on the host ([`clip_factor`] of its own gradients; 1
/// without a bound), `None` for models whose `active` entry is false: what the CPU path's
/// fused Adam update takes.
pub fn clip_scales(
    params: &[(Var, Owner)],
    grads: &GradStore,
    bounds: &[Option<f64>],
    active: &[bool],
) -> Result<Vec<Option<f32>>> {
    (0..active.len())
        .map(|m| -> Result<Option<f32>> {
            if !active[m] {
                return Ok(None);
            }
            let factor = match bounds[m] {
                Some(max_norm) => clip_factor(&model_gradients(params, grads, m)?, max_norm)?,
                None => None,
            };
            Ok(Some(match factor {
                Some(c) => c.to_scalar::<f32>()?,
                None => 1.0,
            }))
        })
        .collect()
}

/// What a step needs besides the batch: the stack's parameters (from [`Stack::params`]) with
/// their optimizer, and per model its loss kind, clipping bound and random stream.
pub struct Learner<'a> {
    pub params: &'a [(Var, Owner)],
    pub optimizer: &'a mut Adam,
    pub loss: LossKind,
    pub grad_clips: &'a [Option<f64>],
}

/// One optimizer step of every model on its own batch: x `[M, B, 784]`, labels `[M, B]`.
/// Each model's loss and gradients are its own; each is clipped by its own norm. A model whose
/// `active` entry is false (it diverged or finished) runs along but is not updated. Returns
/// the models' batch losses (on the device).
pub fn step(
    stack: &Stack,
    learner: &mut Learner,
    (x, y): (&Tensor, &Tensor),
    rngs: &mut [ChaCha8Rng],
    active: &[bool],
) -> Result<Vec<Tensor>> {
    let models = stack.len();
    let (logits, trace) = stack.forward(x, Pass::Train, rngs, &vec![true; models])?;
    let (losses, grad_logits) = match x.device().is_cpu() {
        true => losses_one_by_one(&logits, y, learner.loss)?,
        false => losses_at_once(&logits, y, learner.loss)?,
    };
    let grads = stack.backward(&trace, &grad_logits)?;
    // On the CPU the factors are read to the host (free there; the fused update takes them),
    // elsewhere they stay on the device, so that no step waits for the GPU.
    if x.device().is_cpu() {
        let scales = clip_scales(learner.params, &grads, learner.grad_clips, active)?;
        learner.optimizer.step_models(&grads, &scales)?;
    } else {
        let factors = clip_factors_at_once(learner.params, &grads, learner.grad_clips, models)?;
        learner
            .optimizer
            .step_models_on_device(&grads, &factors, active)?;
    }
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::config::{Settings, TrainConfig};
    use crate::run::stack::Stack;
    use crate::run::train::{initial_network, Streams};
    use rand::{Rng, SeedableRng};

    /// The GPU path's clipping factors for all models at once equal the per-model factors to
    /// rounding, for a stack of mixed kinds (stacked weights, logits, slopes, PAU coefficients),
    /// with a model without a bound.
    #[test]
    fn clip_factors_at_once_match_the_per_model_factors() {
        let dev = candle_core::Device::Cpu;
        let methods = [
            "relu",
            "smartmixed",
            "prelu",
            "prelu",
            "pau_neuron",
            "smartmixed",
        ];
        let networks = methods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let flags = Settings {
                    widths: Some(vec![12, 6]),
                    method: Some(m.parse().unwrap()),
                    ..Default::default()
                };
                let cfg = TrainConfig::resolve(None, None, &flags).unwrap();
                initial_network(&cfg, &mut Streams::new(i as u64).init, &dev).unwrap()
            })
            .collect();
        let stack = Stack::new(networks).unwrap();
        let m = stack.len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f32> = (0..m * 8 * 784).map(|_| rng.random()).collect();
        let y: Vec<u32> = (0..m * 8).map(|_| rng.random_range(0..10)).collect();
        let x = Tensor::from_vec(x, (m, 8, 784), &dev).unwrap();
        let y = Tensor::from_vec(y, (m, 8), &dev).unwrap();
        let mut rngs: Vec<_> = (0..m as u64)
            .map(rand_chacha::ChaCha8Rng::seed_from_u64)
            .collect();
        let (logits, trace) = stack
            .forward(&x, Pass::Train, &mut rngs, &vec![true; m])
            .unwrap();
        let (_, g) = losses_one_by_one(&logits, &y, LossKind::Logits).unwrap();
        let grads = stack.backward(&trace, &g).unwrap();
        let params = stack.params();
        let mut bounds = vec![Some(0.05); m];
        bounds[2] = None;
        let at_once = clip_factors_at_once(&params, &grads, &bounds, m).unwrap();
        let at_once: Vec<f32> = at_once.to_vec1().unwrap();
        for (j, bound) in bounds.iter().enumerate() {
            let own = model_gradients(&params, &grads, j).unwrap();
            let want = match bound {
                Some(b) => clip_factor(&own, *b)
                    .unwrap()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
                None => 1.0,
            };
            assert!(want < 1.0 || bound.is_none(), "model {j}: the bound clips");
            assert!(
                (at_once[j] - want).abs() <= 1e-6 * want.max(1e-3),
                "model {j}: {} vs {want}",
                at_once[j]
            );
        }
    }

    /// The GPU path's losses and logit gradients for all models at once equal the per-model
    /// path's to rounding, for both loss kinds.
    #[test]
    fn losses_at_once_match_losses_one_by_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let dev = candle_core::Device::Cpu;
        let (m, b) = (3, 17);
        let x: Vec<f32> = (0..m * b * 10)
            .map(|_| rng.random_range(-3.0..3.0))
            .collect();
        let y: Vec<u32> = (0..m * b).map(|_| rng.random_range(0..10)).collect();
        let logits = Tensor::from_vec(x, (m, b, 10), &dev).unwrap();
        let y = Tensor::from_vec(y, (m, b), &dev).unwrap();
        for kind in [LossKind::Logits, LossKind::Probs] {
            let (l1, g1) = losses_one_by_one(&logits, &y, kind).unwrap();
            let (l2, g2) = losses_at_once(&logits, &y, kind).unwrap();
            for (a, b) in l1.iter().zip(&l2) {
                let (a, b) = (a.to_scalar::<f32>().unwrap(), b.to_scalar::<f32>().unwrap());
                assert!((a - b).abs() < 1e-5, "{kind:?}: {a} vs {b}");
            }
            let diff = (g1 - g2).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                diff.to_scalar::<f32>().unwrap() < 1e-6,
                "{kind:?}: gradients"
            );
        }
    }
}
