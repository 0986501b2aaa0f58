//! Activations with learnable parameters (PReLU, Swish-beta, PAU per layer or per neuron):
//! each model's layer holds its parameters `[U, P]` (U = neurons, or 1 for one unit per layer);
//! a group stacks them and runs mixed-act's fused op and its explicit gradients.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use mixed_act::{learnable, learnable_grads, Learnable, PAU_LEAKY_RELU_INIT};
use serde_json::json;

use super::{layers_of, spread, Draws, HiddenLayer, Saved};

#[derive(Clone, Debug)]
pub struct LearnableUnits {
    kind: Learnable,
    neurons: usize,
    /// `[U, P]`.
    params: Var,
}

impl LearnableUnits {
    /// A layer of `neurons` neurons with one unit per neuron, or one for the layer (`shared`),
    /// at the published initial values: PReLU slopes 0.25, Swish betas 1, PAU the leaky-ReLU fit.
    pub fn new(kind: Learnable, neurons: usize, shared: bool, device: &Device) -> Result<Self> {
        let units = if shared { 1 } else { neurons };
        let init: Vec<f32> = match kind {
            Learnable::Prelu => vec![0.25; units],
            Learnable::SwishBeta => vec![1.0; units],
            Learnable::Pau => (0..units)
                .flat_map(|_| PAU_LEAKY_RELU_INIT.map(|v| v as f32))
                .collect(),
        };
        let params = Tensor::from_vec(init, (units, kind.params()), device)?;
        Ok(Self {
            kind,
            neurons,
            params: Var::from_tensor(&params)?,
        })
    }

    /// The group's parameters `[m, U, P]`.
    fn stacked(group: &[&dyn HiddenLayer]) -> Result<Tensor> {
        let params: Vec<Tensor> = layers_of::<LearnableUnits>(group)?
            .iter()
            .map(|l| l.params.as_tensor().clone())
            .collect();
        Ok(Tensor::stack(&params, 0)?)
    }
}

impl HiddenLayer for LearnableUnits {
    fn group_key(&self) -> String {
        format!("{:?} units {}", self.kind, self.params.dims()[0])
    }

    fn neurons(&self) -> usize {
        self.neurons
    }

    fn params(&self) -> Vec<Var> {
        vec![self.params.clone()]
    }

    fn checkpoint(&self) -> Vec<(&'static str, Tensor)> {
        let name = match self.kind {
            Learnable::Prelu => "slopes",
            Learnable::SwishBeta => "betas",
            Learnable::Pau => "coefficients",
        };
        vec![(name, self.params.as_tensor().clone())]
    }

    fn learned(&self) -> Result<Option<serde_json::Value>> {
        let rows: Vec<Vec<f64>> = self.params.as_tensor().to_dtype(DType::F64)?.to_vec2()?;
        let column = |j: usize| -> Vec<f64> { rows.iter().map(|r| r[j]).collect() };
        Ok(Some(match self.kind {
            Learnable::Prelu => json!({ "slopes": spread(&column(0)) }),
            Learnable::SwishBeta => json!({ "betas": spread(&column(0)) }),
            // One unit: its coefficients; one per neuron: each coefficient's spread.
            Learnable::Pau if rows.len() == 1 => json!({ "coefficients": rows[0] }),
            Learnable::Pau => json!({
                "coefficients": (0..self.kind.params()).map(|j| spread(&column(j))).collect::<Vec<_>>()
            }),
        }))
    }

    fn forward_ops(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        _draws: &mut Draws,
    ) -> Result<Tensor> {
        Ok(learnable(self.kind, x, &Self::stacked(group)?)?)
    }

    fn forward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        _draws: &mut Draws,
    ) -> Result<(Tensor, Saved)> {
        // Untracked: the parameters detached, and x comes from the stack's untracked products.
        let params = Self::stacked(group)?.detach();
        let y = learnable(self.kind, x, &params)?;
        Ok((y, Some(Box::new(params))))
    }

    fn backward(
        &self,
        group: &[&dyn HiddenLayer],
        x: &Tensor,
        saved: &Saved,
        grad_y: &Tensor,
        grads: &mut GradStore,
    ) -> Result<Tensor> {
        let params = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Tensor>())
            .ok_or_else(|| {
                anyhow::anyhow!("a learnable layer's backward pass without its trace")
            })?;
        let (grad_x, grad_params) = learnable_grads(self.kind, x, params, grad_y)?;
        for (j, layer) in layers_of::<LearnableUnits>(group)?.iter().enumerate() {
            grads.insert(layer.params.as_tensor(), grad_params.get(j)?);
        }
        Ok(grad_x)
    }
}
