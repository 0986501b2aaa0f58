//! Kinds of hidden layer, one file each, behind one trait: [`HiddenLayer`].
//!
//! A layer object is one model's hidden layer. The stacked model (`run::stack`) runs
//! neighbouring models whose layers give the same [`HiddenLayer::group_key`] as one group:
//! the first layer of the group is called with all of the group's layers and the group's slice
//! of the stacked input `x [m, B, N]`.
//!
//! A new kind can start as a page of candle ops: [`HiddenLayer::forward_ops`], tracked to its
//! parameters. The default forward runs it, and the default backward replays it through candle's
//! autograd on a detached input ([`autograd_backward`]). A kind whose cost matters overrides
//! both with fused ops and an explicit backward pass, as [`Fixed`] and [`GumbelSelection`] do.

use std::any::Any;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use mixed_act::Activation;
use rand_chacha::ChaCha8Rng;

mod fixed;
mod learnable;
mod selection;
mod soft_mixture;

pub use fixed::Fixed;
pub use learnable::LearnableUnits;
pub use selection::GumbelSelection;
pub use soft_mixture::SoftMixture;

/// How a forward pass treats layers that sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Training: sample.
    Train,
    /// Evaluation: the caller's choice of sampling or argmax.
    Eval(mixed_act::Selection),
}

impl Pass {
    pub fn samples(self) -> bool {
        matches!(self, Pass::Train | Pass::Eval(mixed_act::Selection::Sample))
    }
}

/// The random streams of a group's models for one forward pass, and which of them draw (an
/// evaluation of some models leaves the others' streams untouched).
pub struct Draws<'a> {
    pub pass: Pass,
    pub rngs: &'a mut [ChaCha8Rng],
    pub include: &'a [bool],
}

impl Draws<'_> {
    /// Whether model `j` of the group draws noise in this pass.
    pub fn samples(&self, j: usize) -> bool {
        self.pass.samples() && self.include[j]
    }
}

/// What a group's forward pass keeps for its backward pass (the kind's own type).
pub type Saved = Option<Box<dyn Any>>;

/// What every kind gets from being `Clone`: a boxed copy and a view as `Any` (to find its
/// concrete type in a group).
pub trait LayerObject {
    fn as_any(&self) -> &dyn Any;
    fn boxed_clone(&self) -> Box<dyn HiddenLayer>;
}

impl<T: HiddenLayer + Clone> LayerObject for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn boxed_clone(&self) -> Box<dyn HiddenLayer> {
        Box::new(self.clone())
    }
}

/// One model's hidden layer of some kind.
pub trait HiddenLayer: LayerObject + Any + std::fmt::Debug {
    /// Neighbouring models whose layers give equal keys run as one group (the same kind and
    /// the settings its op takes once for all of them).
    fn group_key(&self) -> String;

    fn neurons(&self) -> usize;

    /// The learnable parameters, in a fixed order (the optimizer, the clipping norm and the
    /// best checkpoint read them in this order).
    fn params(&self) -> Vec<Var> {
        Vec::new()
    }

    /// What `model.safetensors` holds of the layer: (name, tensor), saved as `hidden.{i}.{name}`.
    fn checkpoint(&self) -> Vec<(&'static str, Tensor)>;

    /// Each neuron's function, for kinds that pick one per neuron (`choices.csv`, shares).
    fn choices(&self) -> Result<Option<Vec<Activation>>> {
        Ok(None)
    }

    /// What the layer learned, for `summary.json` (kinds with parameters of their own).
    fn learned(&self) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }

    /// What the layer becomes when its phase ends and another follows (a selection becomes its
    /// argmax; by default the layer stays as it is).
    fn end_phase(&self) -> Result<Box<dyn HiddenLayer>> {
        Ok(self.boxed_clone())
    }

    /// The group's forward pass as plain candle ops, tracked to the layers' parameters:
    /// `x [m, B, N]` for the `m` layers of `group` (`self` is the first).
    fn forward_ops(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        draws: &mut Draws,
    ) -> Result<Tensor>;

    /// The group's forward pass for the stacked model, untracked, with what the backward pass
    /// needs. By default [`forward_ops`](Self::forward_ops), detached.
    fn forward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        draws: &mut Draws,
    ) -> Result<(Tensor, Saved)> {
        Ok((self.forward_ops(group, x, draws)?.detach(), None))
    }

    /// From the gradient `grad_y` of the group's output to that of its input `x`, storing each
    /// parameter's gradient in `grads`. By default [`autograd_backward`], which suits kinds that
    /// draw nothing in training.
    fn backward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        _saved: &Saved,
        grad_y: &Tensor,
        grads: &mut GradStore,
    ) -> Result<Tensor> {
        autograd_backward(self, group, x, grad_y, grads)
    }
}

impl Clone for Box<dyn HiddenLayer> {
    fn clone(&self) -> Self {
        self.boxed_clone()
    }
}

/// The backward pass of any kind through candle's autograd: [`HiddenLayer::forward_ops`]
/// replayed in training mode on a detached copy of `x`, from the scalar `sum(y * grad_y)`
/// (whose gradient in `y` is exactly `grad_y`).
pub fn autograd_backward<L: HiddenLayer + ?Sized>(
    layer: &L,
    group: &[&dyn HiddenLayer],
    x: &Tensor,
    grad_y: &Tensor,
    grads: &mut GradStore,
) -> Result<Tensor> {
    let input = Var::from_tensor(&x.detach())?;
    let mut no_streams: Vec<ChaCha8Rng> = Vec::new();
    let mut draws = Draws {
        pass: Pass::Eval(mixed_act::Selection::Argmax),
        rngs: &mut no_streams,
        include: &[],
    };
    let y = layer.forward_ops(group, input.as_tensor(), &mut draws)?;
    let mut store = (y * grad_y)?.sum_all()?.backward()?;
    for p in group.iter().flat_map(|l| l.params()) {
        if let Some(g) = store.remove(p.as_tensor()) {
            grads.insert(p.as_tensor(), g);
        }
    }
    store
        .remove(input.as_tensor())
        .context("a hidden layer's output does not depend on its input")
}

/// Mean, quartiles and range of `values` (each quartile the nearest-rank value of the sorted
/// list), for summaries of learned parameters.
pub fn spread(values: &[f64]) -> serde_json::Value {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return serde_json::Value::Null;
    }
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({
        "mean": sorted.iter().sum::<f64>() / sorted.len() as f64,
        "min": at(0.0),
        "q1": at(0.25),
        "median": at(0.5),
        "q3": at(0.75),
        "max": at(1.0),
    })
}

/// The forward pass of a layer that mixes the pool with weights `w [m, N, K]` tracked to its
/// models' logits (the Gumbel selection, the soft mixtures): the fused mixture on detached
/// weights, the weights kept for [`mixture_backward`].
pub fn mixture_forward(
    x: &Tensor,
    w: Tensor,
    pool: mixed_act::Pool,
    clamp: Option<f64>,
) -> Result<(Tensor, Saved)> {
    let y = mixed_act::mixture(x, &w.detach(), pool, clamp)?;
    Ok((y, Some(Box::new(w))))
}

/// The backward pass after [`mixture_forward`]: the fused mixture gradients, then candle's
/// autograd from the weights through the (tiny) softmax to each model's `logits`, from the
/// scalar `sum(w * G)`, whose gradient in `w` is exactly `G`.
pub fn mixture_backward(
    logits: &[&Var],
    (x, saved): (&Tensor, &Saved),
    (pool, clamp): (mixed_act::Pool, Option<f64>),
    grad_y: &Tensor,
    grads: &mut GradStore,
) -> Result<Tensor> {
    let w = saved
        .as_ref()
        .and_then(|s| s.downcast_ref::<Tensor>())
        .context("a mixing layer's backward pass without its weights")?;
    let (grad_x, grad_w) = mixed_act::mixture_grads(x, &w.detach(), pool, clamp, grad_y)?;
    let logit_grads = (w * grad_w)?.sum_all()?.backward()?;
    for logits in logits {
        if let Some(g) = logit_grads.get(logits.as_tensor()) {
            grads.insert(logits.as_tensor(), g.clone());
        }
    }
    Ok(grad_x)
}

/// The group's layers as the concrete kind `T` (every layer of a group has the first one's kind).
pub fn layers_of<'a, T: HiddenLayer>(group: &[&'a dyn HiddenLayer]) -> Result<Vec<&'a T>> {
    group
        .iter()
        .map(|l| {
            l.as_any()
                .downcast_ref::<T>()
                .context("a group of hidden layers of different kinds")
        })
        .collect()
}
