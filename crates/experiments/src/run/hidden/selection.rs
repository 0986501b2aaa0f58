//! SmartMixed's selection phase: per neuron, logits over a pool; each training pass uses one
//! function per neuron, a hard straight-through Gumbel sample; when the phase ends each neuron
//! keeps its argmax ([`Fixed`]). Forward and backward are mixed-act's fused mixture ops; the
//! small softmax from the logits to the mixing weights goes through candle's autograd.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use mixed_act::gumbel::{gumbel_noise, straight_through};
use mixed_act::{freeze, mixture, Activation, SelectionLayer};
use rand_chacha::ChaCha8Rng;

use super::{layers_of, mixture_backward, mixture_forward, Draws, Fixed, HiddenLayer, Saved};
use crate::run::method::LayerSettings;

#[derive(Clone, Debug)]
pub struct GumbelSelection(pub SelectionLayer);

impl GumbelSelection {
    /// Initialised as the reference does (see [`SelectionLayer::with_pool`]), from `rng`.
    pub fn new(
        width: usize,
        s: &LayerSettings,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self(SelectionLayer::with_pool(
            width, s.pool, s.tau, s.clamp, device, rng,
        )?))
    }

    /// The group's mixing weights `[m, N, K]` in `x`'s dtype, tracked to each model's logits.
    /// When every model samples (training), one noise tensor and one straight-through op for
    /// the group; otherwise model by model, the others taking their argmax.
    fn mixing_weights(group: &[&dyn HiddenLayer], x: &Tensor, draws: &mut Draws) -> Result<Tensor> {
        let layers = layers_of::<GumbelSelection>(group)?;
        let first = &layers[0].0;
        let (n, k) = (first.neurons(), first.pool().len());
        let noise_of = |rng: &mut ChaCha8Rng| gumbel_noise(rng, n * k);
        if (0..layers.len()).all(|j| draws.samples(j)) {
            let noise: Vec<f32> = draws.rngs.iter_mut().flat_map(noise_of).collect();
            let logits: Vec<Tensor> = layers
                .iter()
                .map(|l| l.0.logits().as_tensor().clone())
                .collect();
            let logits = Tensor::stack(&logits, 0)?;
            let noise =
                Tensor::from_vec(noise, logits.shape(), x.device())?.to_dtype(logits.dtype())?;
            return Ok(straight_through(&logits, &noise, first.tau())?.to_dtype(x.dtype())?);
        }
        let mut weights = Vec::with_capacity(layers.len());
        for (j, layer) in layers.iter().enumerate() {
            let s = &layer.0;
            let w = if draws.samples(j) {
                let noise = Tensor::from_vec(noise_of(&mut draws.rngs[j]), (n, k), x.device())?
                    .to_dtype(s.logits().dtype())?;
                s.weights_with_noise(&noise, x.dtype())?
            } else {
                s.weights(mixed_act::Selection::Argmax, &mut draws.rngs[j])?
                    .to_dtype(x.dtype())?
            };
            weights.push(w);
        }
        Ok(Tensor::stack(&weights, 0)?)
    }
}

impl HiddenLayer for GumbelSelection {
    fn group_key(&self) -> String {
        let s = &self.0;
        format!(
            "selection {} tau {} clamp {:?}",
            s.pool(),
            s.tau(),
            s.clamp()
        )
    }

    fn neurons(&self) -> usize {
        self.0.neurons()
    }

    fn params(&self) -> Vec<Var> {
        vec![self.0.logits().clone()]
    }

    fn checkpoint(&self) -> Vec<(&'static str, Tensor)> {
        vec![("logits", self.0.logits().as_tensor().clone())]
    }

    fn choices(&self) -> Result<Option<Vec<Activation>>> {
        Ok(Some(self.0.choices()?))
    }

    fn end_phase(&self) -> Result<Box<dyn HiddenLayer>> {
        Ok(Box::new(Fixed(freeze(&self.0)?)))
    }

    fn forward_ops(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        draws: &mut Draws,
    ) -> Result<Tensor> {
        let w = Self::mixing_weights(group, x, draws)?;
        Ok(mixture(x, &w, self.0.pool(), self.0.clamp())?)
    }

    fn forward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        draws: &mut Draws,
    ) -> Result<(Tensor, Saved)> {
        let w = Self::mixing_weights(group, x, draws)?;
        mixture_forward(x, w, self.0.pool(), self.0.clamp())
    }

    fn backward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        saved: &Saved,
        grad_y: &Tensor,
        grads: &mut GradStore,
    ) -> Result<Tensor> {
        let layers = layers_of::<GumbelSelection>(group)?;
        let logits: Vec<&Var> = layers.iter().map(|l| l.0.logits()).collect();
        let settings = (self.0.pool(), self.0.clamp());
        mixture_backward(&logits, (x, saved), settings, grad_y, grads)
    }
}
