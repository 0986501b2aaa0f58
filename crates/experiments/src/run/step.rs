//! One optimizer step of a stack: forward, each model's loss, the explicit backward pass, each
//! model's gradient-norm clipping factor, Adam.

use anyhow::{Context, Result};
use candle_core::{Tensor, Var, D};
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
    // Each model's loss from its own logits.
    let mut losses = Vec::with_capacity(models);
    let mut grad_logits = Vec::with_capacity(models);
    for m in 0..models {
        let logits_m = Var::from_tensor(&logits.get(m)?)?;
        let batch_loss = loss(logits_m.as_tensor(), &y.get(m)?, learner.loss)?;
        let g = batch_loss
            .backward()?
            .remove(logits_m.as_tensor())
            .context("the loss does not depend on the logits")?;
        losses.push(batch_loss);
        grad_logits.push(g);
    }
    let grads = stack.backward(&trace, &Tensor::stack(&grad_logits, 0)?)?;
    let own_grads = |m: usize| -> Result<Vec<Tensor>> {
        Ok(learner
            .params
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
        match learner.grad_clips[m] {
            Some(max_norm) if active[m] => clip_factor(&own_grads(m)?, max_norm),
            _ => Ok(None),
        }
    };
    // On the CPU the factors are read to the host (free there; the fused update takes them),
    // elsewhere they stay on the device, so that no step waits for the GPU.
    if x.device().is_cpu() {
        let scales = (0..models)
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
        learner.optimizer.step_models(&grads, &scales)?;
    } else {
        let one = Tensor::ones((), candle_core::DType::F32, x.device())?;
        let factors = (0..models)
            .map(|m| Ok(factor(m)?.unwrap_or_else(|| one.clone())))
            .collect::<Result<Vec<Tensor>>>()?;
        learner
            .optimizer
            .step_models_on_device(&grads, &Tensor::stack(&factors, 0)?, active)?;
    }
    Ok(losses)
}
