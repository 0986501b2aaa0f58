//! A soft mixture of the pool per neuron (DARTS' continuous relaxation): `y = sum_k w[n, k]
//! f_k(x)`, `w[n] = softmax(logits[n] / tau)`, no noise and no hard sample. It either trains
//! to the end (the network evaluated is the mixture, all K functions per neuron) or, in
//! SmartMixed's schedule, becomes each neuron's argmax when its phase ends. It reuses
//! mixed-act's mixture op (the same as the Gumbel selection, with dense weights); the softmax
//! from the logits to the weights goes through candle's autograd.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var, D};
use mixed_act::{freeze, mixture, Activation, SelectionLayer};
use rand_chacha::ChaCha8Rng;

use super::{layers_of, mixture_backward, mixture_forward, Draws, Fixed, HiddenLayer, Saved};
use crate::run::method::LayerSettings;

#[derive(Clone, Debug)]
pub struct SoftMixture {
    /// The logits, pool, tau and clamp, initialised as SmartMixed's selection is (so that the
    /// two methods start from the same logits).
    layer: SelectionLayer,
    /// Whether the layer becomes its argmax when its phase ends.
    freezes: bool,
}

impl SoftMixture {
    pub fn new(
        width: usize,
        s: &LayerSettings,
        freezes: bool,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let layer = SelectionLayer::with_pool(width, s.pool, s.tau, s.clamp, device, rng)?;
        Ok(Self { layer, freezes })
    }

    /// The group's mixing weights `[m, N, K]` in `x`'s dtype, tracked to each model's logits.
    fn weights(group: &[&dyn HiddenLayer], x: &Tensor) -> Result<Tensor> {
        let layers = layers_of::<SoftMixture>(group)?;
        let logits: Vec<Tensor> = layers
            .iter()
            .map(|l| l.layer.logits().as_tensor().clone())
            .collect();
        let scaled = (Tensor::stack(&logits, 0)? / layers[0].layer.tau())?;
        Ok(candle_nn::ops::softmax(&scaled, D::Minus1)?.to_dtype(x.dtype())?)
    }
}

impl HiddenLayer for SoftMixture {
    fn group_key(&self) -> String {
        let s = &self.layer;
        format!(
            "soft mixture {} tau {} clamp {:?}",
            s.pool(),
            s.tau(),
            s.clamp()
        )
    }

    fn neurons(&self) -> usize {
        self.layer.neurons()
    }

    fn params(&self) -> Vec<Var> {
        vec![self.layer.logits().clone()]
    }

    fn checkpoint(&self) -> Vec<(&'static str, Tensor)> {
        vec![("logits", self.layer.logits().as_tensor().clone())]
    }

    fn choices(&self) -> Result<Option<Vec<Activation>>> {
        Ok(Some(self.layer.choices()?))
    }

    fn learned(&self) -> Result<Option<serde_json::Value>> {
        let s = &self.layer;
        let scaled = (s.logits().as_tensor() / s.tau())?;
        let w: Vec<Vec<f64>> = candle_nn::ops::softmax(&scaled, D::Minus1)?
            .to_dtype(candle_core::DType::F64)?
            .to_vec2()?;
        let mean = |k: usize| w.iter().map(|row| row[k]).sum::<f64>() / w.len().max(1) as f64;
        let weights: serde_json::Map<String, serde_json::Value> = s
            .pool()
            .members()
            .iter()
            .enumerate()
            .map(|(k, a)| (a.name().to_string(), mean(k).into()))
            .collect();
        Ok(Some(serde_json::json!({ "mean_weights": weights })))
    }

    fn end_phase(&self) -> Result<Box<dyn HiddenLayer>> {
        Ok(match self.freezes {
            true => Box::new(Fixed(freeze(&self.layer)?)),
            false => Box::new(self.clone()),
        })
    }

    fn forward_ops(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        _draws: &mut Draws,
    ) -> Result<Tensor> {
        let w = Self::weights(group, x)?;
        Ok(mixture(x, &w, self.layer.pool(), self.layer.clamp())?)
    }

    fn forward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        _draws: &mut Draws,
    ) -> Result<(Tensor, Saved)> {
        let w = Self::weights(group, x)?;
        mixture_forward(x, w, self.layer.pool(), self.layer.clamp())
    }

    fn backward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        saved: &Saved,
        grad_y: &Tensor,
        grads: &mut GradStore,
    ) -> Result<Tensor> {
        let layers = layers_of::<SoftMixture>(group)?;
        let logits: Vec<&Var> = layers.iter().map(|l| l.layer.logits()).collect();
        let settings = (self.layer.pool(), self.layer.clamp());
        mixture_backward(&logits, (x, saved), settings, grad_y, grads)
    }
}
