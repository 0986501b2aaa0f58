//! The MLP: linear layers with a hidden activation layer between each pair, which is a fixed
//! per-neuron layer (baselines and phase 2) or a selection layer (phase 1).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, Var};
use mixed_act::gumbel::gumbel_noise;
use mixed_act::{Activation, FixedLayer, Selection, SelectionLayer};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::{CLASSES, IMAGE_PIXELS};

/// A fully connected layer `y = x W^T + b`, initialised like PyTorch's `nn.Linear`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
}

impl Linear {
    /// Weights and biases uniform in ±1/sqrt(fan_in), drawn from the seeded host RNG (candle's
    /// own CPU RNG cannot be seeded).
    pub fn new(
        fan_in: usize,
        fan_out: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect()
        };
        let weight = Tensor::from_vec(draw(fan_in * fan_out), (fan_out, fan_in), device)?;
        let bias = Tensor::from_vec(draw(fan_out), fan_out, device)?;
        Ok(Self {
            weight: Var::from_tensor(&weight)?,
            bias: Var::from_tensor(&bias)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?)
    }
}

/// What sits between two linear layers.
#[derive(Clone, Debug)]
pub enum Hidden {
    /// Each neuron's own fixed function (a baseline uses one function for all).
    Fixed(FixedLayer),
    /// Phase 1: the straight-through Gumbel selection.
    Selection(SelectionLayer),
}

/// How the forward pass treats selection layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Training: sample.
    Train,
    /// Evaluation: the caller's choice of sampling or argmax.
    Eval(Selection),
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub linears: Vec<Linear>,
    pub hidden: Vec<Hidden>,
}

impl Mlp {
    fn linears(widths: &[usize], rng: &mut ChaCha8Rng, device: &Device) -> Result<Vec<Linear>> {
        let mut sizes = vec![IMAGE_PIXELS];
        sizes.extend_from_slice(widths);
        sizes.push(CLASSES);
        sizes
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], rng, device))
            .collect()
    }

    /// A baseline: `activation` in every hidden neuron.
    pub fn baseline(
        widths: &[usize],
        activation: Activation,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let linears = Self::linears(widths, rng, device)?;
        let hidden = widths
            .iter()
            .map(|&w| Ok(Hidden::Fixed(FixedLayer::new(vec![activation; w], device)?)))
            .collect::<Result<_>>()?;
        Ok(Self { linears, hidden })
    }

    /// SmartMixed phase 1: selection layers initialised as the reference does.
    pub fn selection(
        widths: &[usize],
        tau: f64,
        clamp: Option<f64>,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let linears = Self::linears(widths, rng, device)?;
        let hidden = widths
            .iter()
            .map(|&w| {
                Ok(Hidden::Selection(SelectionLayer::new(
                    w, tau, clamp, device, rng,
                )?))
            })
            .collect::<Result<_>>()?;
        Ok(Self { linears, hidden })
    }

    /// Phase 2 from phase 1: selection layers frozen to their argmax; the linear layers are
    /// shared (`warm`) or freshly drawn from `rng` (`fresh`, as the reference does).
    pub fn freeze(&self, fresh: Option<(&mut ChaCha8Rng, &Device)>) -> Result<Self> {
        let hidden = self
            .hidden
            .iter()
            .map(|h| match h {
                Hidden::Selection(s) => Ok(Hidden::Fixed(mixed_act::freeze(s)?)),
                Hidden::Fixed(f) => Ok(Hidden::Fixed(f.clone())),
            })
            .collect::<Result<_>>()?;
        let linears = match fresh {
            None => self
                .linears
                .iter()
                .map(|l| {
                    Ok(Linear {
                        weight: copy_var(&l.weight)?,
                        bias: copy_var(&l.bias)?,
                    })
                })
                .collect::<Result<_>>()?,
            Some((rng, device)) => Self::linears(&self.widths(), rng, device)?,
        };
        Ok(Self { linears, hidden })
    }

    pub fn widths(&self) -> Vec<usize> {
        self.linears[..self.linears.len() - 1]
            .iter()
            .map(|l| l.weight.dims()[0])
            .collect()
    }

    /// Logits `[batch, 10]`. `rng` gives the Gumbel noise of selection layers when sampling.
    pub fn forward(&self, x: &Tensor, pass: Pass, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let sampling = matches!(pass, Pass::Train | Pass::Eval(Selection::Sample));
        // The Gumbel noise of every selection layer goes to the device in one upload per pass,
        // drawn in layer order (the same values as drawing layer by layer).
        let neurons: usize = self
            .hidden
            .iter()
            .map(|h| match h {
                Hidden::Selection(s) if sampling => s.neurons() * Activation::COUNT,
                _ => 0,
            })
            .sum();
        let noise = (neurons > 0)
            .then(|| Tensor::from_vec(gumbel_noise(rng, neurons), neurons, x.device()))
            .transpose()?;
        let mut offset = 0;
        let mut h = x.clone();
        for (i, linear) in self.linears.iter().enumerate() {
            h = linear.forward(&h)?;
            if let Some(hidden) = self.hidden.get(i) {
                h = match (hidden, &noise) {
                    (Hidden::Fixed(f), _) => f.forward(&h)?,
                    (Hidden::Selection(s), Some(noise)) if sampling => {
                        let len = s.neurons() * Activation::COUNT;
                        let layer_noise = noise
                            .narrow(0, offset, len)?
                            .reshape((s.neurons(), Activation::COUNT))?
                            .to_dtype(s.logits().dtype())?;
                        offset += len;
                        s.forward_with_noise(&h, &layer_noise)?
                    }
                    (Hidden::Selection(s), _) => s.forward(&h, Selection::Argmax, rng)?,
                };
            }
        }
        Ok(h)
    }

    /// Every trainable variable: weights, biases and selection logits.
    pub fn vars(&self) -> Vec<Var> {
        let mut vars: Vec<Var> = self
            .linears
            .iter()
            .flat_map(|l| [l.weight.clone(), l.bias.clone()])
            .collect();
        for h in &self.hidden {
            if let Hidden::Selection(s) = h {
                vars.push(s.logits().clone());
            }
        }
        vars
    }

    /// Number of trainable scalars.
    pub fn n_params(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Each hidden layer's current choice per neuron (argmax for selection layers).
    pub fn choices(&self) -> Result<Vec<Vec<Activation>>> {
        self.hidden
            .iter()
            .map(|h| match h {
                Hidden::Fixed(f) => Ok(f.activations().to_vec()),
                Hidden::Selection(s) => Ok(s.choices()?),
            })
            .collect()
    }

    /// Deep copies of all variables, for keeping the best checkpoint.
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self
            .vars()
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    }

    /// Puts a [`Mlp::snapshot`] back.
    pub fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        for (var, value) in self.vars().iter().zip(snapshot) {
            var.set(value)?;
        }
        Ok(())
    }

    /// The model as safetensors: `linear.{i}.weight|bias`, `hidden.{i}.logits` (phase 1) or
    /// `hidden.{i}.ids` (u32 activation ids).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (i, l) in self.linears.iter().enumerate() {
            tensors.insert(format!("linear.{i}.weight"), l.weight.as_tensor().clone());
            tensors.insert(format!("linear.{i}.bias"), l.bias.as_tensor().clone());
        }
        for (i, h) in self.hidden.iter().enumerate() {
            match h {
                Hidden::Fixed(f) => tensors.insert(format!("hidden.{i}.ids"), f.ids().clone()),
                Hidden::Selection(s) => {
                    tensors.insert(format!("hidden.{i}.logits"), s.logits().as_tensor().clone())
                }
            };
        }
        candle_core::safetensors::save(&tensors, path)
            .with_context(|| format!("writing {}", path.display()))
    }
}

fn copy_var(v: &Var) -> Result<Var> {
    Ok(Var::from_tensor(&v.as_tensor().copy()?)?)
}
