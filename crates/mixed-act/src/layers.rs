//! Layers a model holds: [`SelectionLayer`] for phase 1, [`FixedLayer`] for phase 2, and
//! [`freeze`], which turns the first into the second.

use candle_core::{bail, DType, Device, Result, Tensor, Var};
use rand::Rng;

use crate::activation::Activation;
use crate::gumbel::{argmax_rows, one_hot_argmax, sample_straight_through, straight_through};
use crate::mixture::{mixture, mixture_grads};
use crate::per_neuron::{per_neuron, per_neuron_grad, per_neuron_with_slope};
use crate::pool::Pool;

/// How a selection layer picks each neuron's function for one forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// A straight-through Gumbel-softmax sample (training; also evaluation in the reference).
    Sample,
    /// The argmax of the logits, deterministic (the project's default for evaluation).
    Argmax,
}

/// Logit given to one random candidate per neuron at initialisation (the rest start at 0).
pub const INITIAL_PREFERENCE: f32 = 0.001;

/// Phase-1 layer: a learnable logit per neuron and pool member, `[N, K]`.
#[derive(Clone, Debug)]
pub struct SelectionLayer {
    logits: Var,
    pool: Pool,
    tau: f64,
    clamp: Option<f64>,
}

impl SelectionLayer {
    /// A layer of `neurons` neurons over the paper's pool, initialised as in the reference: all
    /// logits zero, then one uniformly random candidate per neuron set to
    /// [`INITIAL_PREFERENCE`], drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(
        neurons: usize,
        tau: f64,
        clamp: Option<f64>,
        device: &Device,
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_pool(neurons, Pool::paper(), tau, clamp, device, rng)
    }

    /// [`new`](Self::new) over any pool: `[N, K]` logits, the preferred member drawn uniformly
    /// from the K (for the paper's pool the same draws as [`new`](Self::new)).
    pub fn with_pool<R: Rng + ?Sized>(
        neurons: usize,
        pool: Pool,
        tau: f64,
        clamp: Option<f64>,
        device: &Device,
        rng: &mut R,
    ) -> Result<Self> {
        let k = pool.len();
        let mut init = vec![0f32; neurons * k];
        for n in 0..neurons {
            init[n * k + rng.random_range(0..k)] = INITIAL_PREFERENCE;
        }
        let logits = Tensor::from_vec(init, (neurons, k), device)?;
        Self::from_logits(Var::from_tensor(&logits)?, pool, tau, clamp)
    }

    /// A layer over existing logits `[N, K]` for `pool` (for example loaded from a checkpoint).
    pub fn from_logits(logits: Var, pool: Pool, tau: f64, clamp: Option<f64>) -> Result<Self> {
        match logits.dims() {
            [_, k] if *k == pool.len() => {}
            dims => bail!(
                "selection logits must have shape [neurons, {}] for the pool {pool}, got {dims:?}",
                pool.len()
            ),
        }
        if !(tau.is_finite() && tau > 0.0) {
            bail!("tau must be a positive finite number, got {tau}");
        }
        if let Some(c) = clamp {
            if !(c.is_finite() && c > 0.0) {
                bail!("clamp must be a positive finite number or none, got {c}");
            }
        }
        Ok(Self {
            logits,
            pool,
            tau,
            clamp,
        })
    }

    /// The learnable logits, for the optimizer and checkpoints.
    pub fn logits(&self) -> &Var {
        &self.logits
    }

    pub fn neurons(&self) -> usize {
        self.logits.dims()[0]
    }

    /// The candidates, in the order of the logits' columns.
    pub fn pool(&self) -> Pool {
        self.pool
    }

    pub fn tau(&self) -> f64 {
        self.tau
    }

    pub fn clamp(&self) -> Option<f64> {
        self.clamp
    }

    /// The mixing weights `[N, K]` for one forward pass: one-hot in value; with
    /// [`Selection::Sample`] they carry the softmax gradient to the logits.
    pub fn weights<R: Rng + ?Sized>(&self, selection: Selection, rng: &mut R) -> Result<Tensor> {
        match selection {
            Selection::Sample => sample_straight_through(self.logits.as_tensor(), self.tau, rng),
            Selection::Argmax => one_hot_argmax(&self.logits.as_tensor().detach()),
        }
    }

    /// `x` `[batch, N]` through the hard mixture; `rng` supplies the Gumbel noise when sampling.
    pub fn forward<R: Rng + ?Sized>(
        &self,
        x: &Tensor,
        selection: Selection,
        rng: &mut R,
    ) -> Result<Tensor> {
        let w = self.weights(selection, rng)?.to_dtype(x.dtype())?;
        mixture(x, &w, self.pool, self.clamp)
    }

    /// [`forward`](Self::forward) with [`Selection::Sample`] and the Gumbel noise `[N, K]`
    /// given, so that a model can upload the noise of all its layers at once.
    pub fn forward_with_noise(&self, x: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let w = self.weights_with_noise(noise, x.dtype())?;
        mixture(x, &w, self.pool, self.clamp)
    }

    /// The straight-through mixing weights `[N, K]` in `dtype` for the Gumbel noise `[N, K]`,
    /// tracked to the logits: what [`forward_with_noise`](Self::forward_with_noise) mixes with.
    pub fn weights_with_noise(&self, noise: &Tensor, dtype: DType) -> Result<Tensor> {
        straight_through(self.logits.as_tensor(), noise, self.tau)?.to_dtype(dtype)
    }

    /// The gradients to `x` and to the mixing weights `w` of `mixture(x, w)` with this layer's
    /// clamp, for the upstream gradient `grad_y` (an explicit backward pass; see
    /// [`mixture_grads`]).
    pub fn backward(&self, x: &Tensor, w: &Tensor, grad_y: &Tensor) -> Result<(Tensor, Tensor)> {
        mixture_grads(x, w, self.pool, self.clamp, grad_y)
    }

    /// Each neuron's current choice, the argmax of its logits (ties to the earliest member).
    pub fn choices(&self) -> Result<Vec<Activation>> {
        Ok(argmax_rows(self.logits.as_tensor())?
            .into_iter()
            .map(|k| self.pool.members()[k])
            .collect())
    }

    /// How many neurons currently choose each function, indexed by activation id.
    pub fn counts(&self) -> Result<[usize; Activation::COUNT]> {
        Ok(count_activations(&self.choices()?))
    }
}

/// Phase-2 layer: each neuron applies its own fixed function (no clamps).
#[derive(Clone, Debug)]
pub struct FixedLayer {
    activations: Vec<Activation>,
    /// The ids as a u32 tensor on the model's device, uploaded once.
    ids: Tensor,
}

impl FixedLayer {
    pub fn new(activations: Vec<Activation>, device: &Device) -> Result<Self> {
        let ids: Vec<u32> = activations.iter().map(|a| a.id() as u32).collect();
        let ids = Tensor::new(ids, device)?;
        Ok(Self { activations, ids })
    }

    /// `x` `[batch, N]` through each neuron's function.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        per_neuron(x, &self.ids)
    }

    /// [`forward`](Self::forward) and each element's derivative where that saves work: with
    /// mixed functions, whose backward pass would evaluate them again, and where the device and
    /// dtype allow (see [`per_neuron_with_slope`]). The backward pass is then
    /// `grad_y * slope`. With a single function (a baseline) the derivative is as cheap to
    /// recompute as to store, and the slope is `None`.
    pub fn forward_with_slope(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let functions = self.counts().iter().filter(|&&n| n > 0).count();
        if functions > 1 {
            per_neuron_with_slope(x, &self.ids)
        } else {
            Ok((self.forward(x)?, None))
        }
    }

    /// The gradient to the input `x` for the upstream gradient `grad_y` (an explicit backward
    /// pass; the same bits as autograd through [`forward`](Self::forward)).
    pub fn backward(&self, x: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
        per_neuron_grad(x, &self.ids, grad_y)
    }

    pub fn activations(&self) -> &[Activation] {
        &self.activations
    }

    /// The ids as a tensor `[N]` (u32), for checkpoints.
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    pub fn neurons(&self) -> usize {
        self.activations.len()
    }

    /// How many neurons use each function, indexed by activation id.
    pub fn counts(&self) -> [usize; Activation::COUNT] {
        count_activations(&self.activations)
    }
}

/// Ends phase 1 for one layer: every neuron keeps the argmax of its logits.
pub fn freeze(layer: &SelectionLayer) -> Result<FixedLayer> {
    FixedLayer::new(layer.choices()?, layer.logits.device())
}

/// Number of neurons per function, indexed by activation id.
pub fn count_activations(activations: &[Activation]) -> [usize; Activation::COUNT] {
    let mut counts = [0; Activation::COUNT];
    for a in activations {
        counts[a.id()] += 1;
    }
    counts
}
