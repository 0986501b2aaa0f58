//! Fixed functions, one per neuron: a baseline's layers (one function everywhere) and
//! SmartMixed's second phase (each neuron its argmax). Forward and backward are mixed-act's
//! fused per-neuron ops over the group's stacked ids.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use mixed_act::{per_neuron, per_neuron_grad, per_neuron_with_slope, Activation, FixedLayer};

use super::{layers_of, Draws, HiddenLayer, Pass, Saved};

#[derive(Clone, Debug)]
pub struct Fixed(pub FixedLayer);

impl Fixed {
    /// `activation` in each of `width` neurons.
    pub fn uniform(activation: Activation, width: usize, device: &Device) -> Result<Self> {
        Ok(Self(FixedLayer::new(vec![activation; width], device)?))
    }

    /// The group's ids `[m, N]`.
    fn ids(group: &[&dyn HiddenLayer]) -> Result<Tensor> {
        let ids: Vec<Tensor> = layers_of::<Fixed>(group)?
            .iter()
            .map(|l| l.0.ids().clone())
            .collect();
        Ok(Tensor::stack(&ids, 0)?)
    }
}

/// A training pass keeps the ids and, where the device and dtype allow, each element's
/// derivative (then the backward pass is one product).
struct Trace {
    ids: Tensor,
    slope: Option<Tensor>,
}

impl HiddenLayer for Fixed {
    fn group_key(&self) -> String {
        "fixed".into()
    }

    fn neurons(&self) -> usize {
        self.0.neurons()
    }

    fn checkpoint(&self) -> Vec<(&'static str, Tensor)> {
        vec![("ids", self.0.ids().clone())]
    }

    fn choices(&self) -> Result<Option<Vec<Activation>>> {
        Ok(Some(self.0.activations().to_vec()))
    }

    fn forward_ops(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        _draws: &mut Draws,
    ) -> Result<Tensor> {
        Ok(per_neuron(x, &Self::ids(group)?)?)
    }

    fn forward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        draws: &mut Draws,
    ) -> Result<(Tensor, Saved)> {
        let ids = Self::ids(group)?;
        if draws.pass != Pass::Train {
            return Ok((per_neuron(x, &ids)?, None));
        }
        let (y, slope) = per_neuron_with_slope(x, &ids)?;
        Ok((y, Some(Box::new(Trace { ids, slope }))))
    }

    fn backward(
        &self,
        _group: &[&dyn HiddenLayer],
        x: &Tensor,
        saved: &Saved,
        grad_y: &Tensor,
        _grads: &mut GradStore,
    ) -> Result<Tensor> {
        let trace = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Trace>())
            .ok_or_else(|| anyhow::anyhow!("a fixed layer's backward pass without its trace"))?;
        Ok(match &trace.slope {
            Some(slope) => grad_y.mul(slope)?,
            None => per_neuron_grad(x, &trace.ids, grad_y)?,
        })
    }
}
