//! The MLP: linear layers with a hidden activation layer between each pair, which is a fixed
//! per-neuron layer (baselines and phase 2) or a selection layer (phase 1).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use mixed_act::gumbel::gumbel_noise;
use mixed_act::{mixture, Activation, FixedLayer, Pool, Selection, SelectionLayer};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::run::cpu_ops;
use crate::run::data::{CLASSES, IMAGE_PIXELS};

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
        self.apply(x, self.weight.as_tensor(), self.bias.as_tensor())
    }

    /// The forward pass without recording it for autograd (for the explicit backward pass).
    fn forward_untracked(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(
            x,
            &self.weight.as_tensor().detach(),
            &self.bias.as_tensor().detach(),
        )
    }

    fn apply(&self, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
    }

    /// Backward through `y = x W^T + b` for the upstream gradient `grad_y`: stores the weight
    /// and bias gradients in `grads` and returns the gradient to `x` if `need_input`. The same
    /// candle ops, on the same layouts, as candle's autograd runs for [`Linear::forward`] (so the
    /// same bits); a gradient that autograd would add to zeros is stored as it is.
    fn backward(
        &self,
        x: &Tensor,
        grad_y: &Tensor,
        need_input: bool,
        grads: &mut GradStore,
    ) -> Result<Option<Tensor>> {
        // broadcast_add: the bias was broadcast over the batch, so its gradient sums over it.
        grads.insert(self.bias.as_tensor(), cpu_ops::column_sums(grad_y)?);
        // matmul(x, W^T): the gradient of W^T is x^T grad_y, that of W its transpose.
        let grad_weight_t = x.t()?.matmul(grad_y)?;
        grads.insert(
            self.weight.as_tensor(),
            cpu_ops::transposed(&grad_weight_t)?,
        );
        // Autograd also computes the gradient of the network's input; nothing needs it.
        need_input
            .then(|| grad_y.matmul(&self.weight.as_tensor().detach()))
            .transpose()
            .map_err(Into::into)
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

/// What a traced forward pass keeps for [`Mlp::backward`]: per linear layer its input, per
/// hidden layer its input and, for a sampling selection layer, the mixing weights (tracked to
/// the logits; the mixture itself ran on a detached copy), for a fixed layer the derivative of
/// every element where the forward pass could produce it.
#[derive(Default)]
pub struct Trace {
    inputs: Vec<Tensor>,
    pre_activations: Vec<Tensor>,
    mixing: Vec<Option<Tensor>>,
    slopes: Vec<Option<Tensor>>,
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

    /// SmartMixed phase 1: selection layers over `pool`, initialised as the reference does.
    pub fn selection(
        widths: &[usize],
        pool: Pool,
        tau: f64,
        clamp: Option<f64>,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let linears = Self::linears(widths, rng, device)?;
        let hidden = widths
            .iter()
            .map(|&w| {
                Ok(Hidden::Selection(SelectionLayer::with_pool(
                    w, pool, tau, clamp, device, rng,
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
        self.run(x, pass, rng, None)
    }

    /// A training forward pass ([`Pass::Train`], the same values and the same draws from `rng`
    /// as [`Mlp::forward`]) that records what [`Mlp::backward`] needs instead of an autograd
    /// graph.
    pub fn forward_traced(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<(Tensor, Trace)> {
        let mut trace = Trace::default();
        let logits = self.run(x, Pass::Train, rng, Some(&mut trace))?;
        Ok((logits, trace))
    }

    /// The gradients of every variable for the gradient of the loss to the logits of a
    /// [`Mlp::forward_traced`] pass, layer by layer with the ops candle's autograd would run (so
    /// the same bits as `loss.backward()` on [`Mlp::forward`]) but without building a graph,
    /// without adding every gradient to a tensor of zeros, and without the gradient of the
    /// network's input, which autograd computes and nothing reads.
    pub fn backward(&self, trace: &Trace, grad_logits: &Tensor) -> Result<GradStore> {
        let mut grads = GradStore::default();
        // Phase-1 layers: (mixing weights tracked to the logits, their gradient).
        let mut mixing_grads = Vec::new();
        let mut grad = grad_logits.clone();
        for (i, linear) in self.linears.iter().enumerate().rev() {
            let Some(grad_input) = linear.backward(&trace.inputs[i], &grad, i > 0, &mut grads)?
            else {
                break;
            };
            let pre_activation = &trace.pre_activations[i - 1];
            grad = match (&self.hidden[i - 1], &trace.mixing[i - 1]) {
                (Hidden::Fixed(f), _) => match &trace.slopes[i - 1] {
                    Some(slope) => grad_input.mul(slope)?,
                    None => f.backward(pre_activation, &grad_input)?,
                },
                (Hidden::Selection(s), Some(w)) => {
                    let (grad_x, grad_w) = s.backward(pre_activation, &w.detach(), &grad_input)?;
                    mixing_grads.push((w, grad_w));
                    grad_x
                }
                (Hidden::Selection(_), None) => {
                    anyhow::bail!("backward: the trace holds no mixing weights for layer {i}")
                }
            };
        }
        if !mixing_grads.is_empty() {
            // From the mixing weights to the logits (softmax over the pool, tiny) with
            // autograd. It starts from a scalar: sum(w * G) has gradient exactly G (1 * G) in w.
            let seeds = mixing_grads
                .iter()
                .map(|(w, g)| (*w * g)?.sum_all())
                .collect::<candle_core::Result<Vec<_>>>()?;
            let logit_grads = Tensor::stack(&seeds, 0)?.sum_all()?.backward()?;
            for hidden in &self.hidden {
                if let Hidden::Selection(s) = hidden {
                    let logits = s.logits().as_tensor();
                    if let Some(g) = logit_grads.get(logits) {
                        grads.insert(logits, g.clone());
                    }
                }
            }
        }
        Ok(grads)
    }

    /// The forward pass; with a trace, untracked and recording the tensors the explicit
    /// backward pass reads.
    fn run(
        &self,
        x: &Tensor,
        pass: Pass,
        rng: &mut ChaCha8Rng,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor> {
        let sampling = matches!(pass, Pass::Train | Pass::Eval(Selection::Sample));
        // The Gumbel noise of every selection layer goes to the device in one upload per pass,
        // drawn in layer order (the same values as drawing layer by layer).
        let neurons: usize = self
            .hidden
            .iter()
            .map(|h| match h {
                Hidden::Selection(s) if sampling => s.neurons() * s.pool().len(),
                _ => 0,
            })
            .sum();
        let noise = (neurons > 0)
            .then(|| Tensor::from_vec(gumbel_noise(rng, neurons), neurons, x.device()))
            .transpose()?;
        let mut offset = 0;
        let mut h = x.clone();
        for (i, linear) in self.linears.iter().enumerate() {
            h = match trace.as_deref_mut() {
                Some(trace) => {
                    trace.inputs.push(h.clone());
                    linear.forward_untracked(&h)?
                }
                None => linear.forward(&h)?,
            };
            let Some(hidden) = self.hidden.get(i) else {
                continue;
            };
            if let Some(trace) = trace.as_deref_mut() {
                trace.pre_activations.push(h.clone());
            }
            let (mut mixing, mut slope) = (None, None);
            h = match (hidden, &noise) {
                (Hidden::Fixed(f), _) if trace.is_some() => {
                    let (y, s) = f.forward_with_slope(&h)?;
                    slope = s;
                    y
                }
                (Hidden::Fixed(f), _) => f.forward(&h)?,
                (Hidden::Selection(s), Some(noise)) if sampling => {
                    let len = s.neurons() * s.pool().len();
                    let layer_noise = noise
                        .narrow(0, offset, len)?
                        .reshape((s.neurons(), s.pool().len()))?
                        .to_dtype(s.logits().dtype())?;
                    offset += len;
                    let w = s.weights_with_noise(&layer_noise, h.dtype())?;
                    let y = if trace.is_some() {
                        mixture(&h, &w.detach(), s.pool(), s.clamp())?
                    } else {
                        mixture(&h, &w, s.pool(), s.clamp())?
                    };
                    mixing = Some(w);
                    y
                }
                (Hidden::Selection(s), _) => s.forward(&h, Selection::Argmax, rng)?,
            };
            if let Some(trace) = trace.as_deref_mut() {
                trace.mixing.push(mixing);
                trace.slopes.push(slope);
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    /// What training a cohort as one stacked model relies on: candle's CPU batched matmul gives
    /// each model of a stack `[M, ...]` exactly the bits of that model's own product, for the
    /// three products of a linear layer's step (forward `x W^T`, weight gradient `x^T g`, input
    /// gradient `g W`) at this project's shapes, the weight used through its transposed view as
    /// [`Linear`](super::Linear) does.
    #[test]
    fn stacked_matmuls_give_each_model_its_own_bits() {
        let dev = Device::Cpu;
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        let models = 3;
        for (batch, fan_in, fan_out) in [(64, 784, 512), (128, 512, 256), (64, 64, 10), (7, 13, 5)]
        {
            let x = Tensor::randn(0f32, 1.0, (models, batch, fan_in), &dev).unwrap();
            let w = Tensor::randn(0f32, 0.1, (models, fan_out, fan_in), &dev).unwrap();
            let g = Tensor::randn(0f32, 0.1, (models, batch, fan_out), &dev).unwrap();
            let y = x.matmul(&w.t().unwrap()).unwrap();
            let grad_w_t = x.t().unwrap().matmul(&g).unwrap();
            let grad_x = g.matmul(&w).unwrap();
            for m in 0..models {
                let (xm, wm, gm) = (x.get(m).unwrap(), w.get(m).unwrap(), g.get(m).unwrap());
                let shape = format!("[{batch}, {fan_in}] x [{fan_in}, {fan_out}], model {m}");
                let single = xm.matmul(&wm.t().unwrap()).unwrap();
                assert_eq!(bits(&y.get(m).unwrap()), bits(&single), "forward {shape}");
                let single = xm.t().unwrap().matmul(&gm).unwrap();
                assert_eq!(
                    bits(&grad_w_t.get(m).unwrap()),
                    bits(&single),
                    "grad W {shape}"
                );
                let single = gm.matmul(&wm).unwrap();
                assert_eq!(
                    bits(&grad_x.get(m).unwrap()),
                    bits(&single),
                    "grad x {shape}"
                );
            }
        }
    }
}
