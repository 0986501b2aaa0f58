//! The model: M networks of the same widths stacked into one (a single run is M = 1). Each
//! linear layer's weights are one tensor `[M, out, in]`, so a layer is one batched matrix
//! product for all models; each hidden layer is one op per group of neighbouring models whose
//! layers are of one kind ([`crate::run::hidden`]).
//!
//! Each model keeps what it has alone: its own batch (x is `[M, B, 784]`), its own random
//! streams, its own hidden layers and their parameters. On the CPU a model in a stack gets
//! exactly the bits it gets alone: the products run the same gemm per model
//! ([`crate::run::products`]; tested below for candle's batched matmul), the fused ops give each
//! model its single-model bits (tested in mixed-act), and the rest (bias sums) runs per model
//! slice.
//!
//! The forward pass is untracked and keeps a trace; [`Stack::backward`] runs the explicit
//! backward pass from it (the same ops, in the same order, as candle's autograd would run:
//! tests/explicit_backward.rs holds the two equal bit for bit).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use mixed_act::Activation;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::run::conv::{pool_backward, pool_forward, PoolSaved, Windows};
use crate::run::cpu_ops;
use crate::run::hidden::{Draws, HiddenLayer, Pass, Saved};
use crate::run::net::{LayerSpec, Planned};
use crate::run::optim::Owner;
use crate::run::products;

/// One model's network before it joins a stack: its layers ([`crate::run::net`]), per linear
/// or convolution layer (weight `[out, in]` or `[out, taps x in channels]`, bias `[out]`), and
/// its hidden layers (one after each of those but the last).
#[derive(Clone)]
pub struct Network {
    pub plan: Vec<Planned>,
    pub linears: Vec<(Tensor, Tensor)>,
    pub hidden: Vec<Box<dyn HiddenLayer>>,
}

impl Network {
    /// The number of trainable scalars: the linear layers' and the hidden layers' own.
    pub fn n_params(&self) -> usize {
        let linear = self
            .linears
            .iter()
            .map(|(w, b)| w.elem_count() + b.elem_count());
        let hidden = self.hidden.iter().flat_map(|h| h.params());
        linear.sum::<usize>() + hidden.map(|p| p.elem_count()).sum::<usize>()
    }
}

/// The weights of the linear and convolution layers of `plan`, initialised like PyTorch's
/// `nn.Linear` and `nn.Conv*d`: weights and biases uniform in ±1/sqrt(fan_in) (fan_in: the
/// inputs of a unit, taps x channels for a convolution), drawn from the seeded host RNG
/// (candle's own CPU RNG cannot be seeded), layer by layer, weights before biases.
pub fn draw_linears(
    plan: &[Planned],
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Vec<(Tensor, Tensor)>> {
    plan.iter()
        .filter_map(Planned::weight_dims)
        .map(|(fan_out, fan_in)| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| rng.random_range(-bound..bound) as f32)
                    .collect()
            };
            let weight = Tensor::from_vec(draw(fan_in * fan_out), (fan_out, fan_in), device)?;
            let bias = Tensor::from_vec(draw(fan_out), fan_out, device)?;
            Ok((weight, bias))
        })
        .collect()
}

/// One linear layer of every model: `y[m] = x[m] W[m]^T + b[m]`.
struct StackedLinear {
    /// `[M, out, in]`.
    weight: Var,
    /// `[M, out]`.
    bias: Var,
}

impl StackedLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let weight = self.weight.as_tensor().detach();
        let bias = self.bias.as_tensor().detach();
        products::linear_forward(x, &weight, &bias)
    }

    /// Backward through `y = x W^T + b`: the weight and bias gradients into `grads`, the
    /// gradient to `x` if `need_input`. Autograd's results: the bias was broadcast over the
    /// batch (its gradient sums over it); the gradient of `W` is `grad_y^T x`, which autograd
    /// computes as `x^T grad_y` (the gradient of `W^T`) and transposes, and
    /// [`products::weight_gradient`] writes directly with the same bits.
    fn backward(
        &self,
        x: &Tensor,
        grad_y: &Tensor,
        need_input: bool,
        grads: &mut GradStore,
    ) -> Result<Option<Tensor>> {
        grads.insert(self.bias.as_tensor(), cpu_ops::column_sums_stack(grad_y)?);
        grads.insert(
            self.weight.as_tensor(),
            products::weight_gradient(x, grad_y)?,
        );
        need_input
            .then(|| products::input_gradient(grad_y, &self.weight.as_tensor().detach()))
            .transpose()
    }

    /// Puts model `m`'s weight and bias in.
    fn set(&self, m: usize, weight: &Tensor, bias: &Tensor) -> Result<()> {
        self.weight
            .as_tensor()
            .slice_set(&weight.unsqueeze(0)?, 0, m)?;
        self.bias.as_tensor().slice_set(&bias.unsqueeze(0)?, 0, m)?;
        Ok(())
    }
}

/// One layer of every model.
enum StackedLayer {
    /// A linear layer, or a convolution: the linear layer over its input's unfolded windows.
    Product {
        linear: StackedLinear,
        windows: Option<Windows>,
        units: usize,
        /// Saved as `linear.{i}` or `conv.{i}` (i: its index among these layers).
        name: &'static str,
    },
    Pool {
        windows: Windows,
        max: bool,
    },
    /// Features are stored flat already: nothing to do.
    Flatten,
}

/// What the forward pass keeps for the backward pass: the batch's size, per linear or
/// convolution layer its (unfolded) input, per hidden layer its input and each group's saved
/// state, per pooling layer what its backward pass needs.
pub struct Trace {
    models: usize,
    batch: usize,
    inputs: Vec<Tensor>,
    pre_activations: Vec<Tensor>,
    groups: Vec<Vec<Saved>>,
    pools: Vec<PoolSaved>,
}

/// M models trained together.
pub struct Stack {
    plan: Vec<Planned>,
    layers: Vec<StackedLayer>,
    /// The indices in `layers` of the linear and convolution layers.
    products: Vec<usize>,
    /// `hidden[m][l]`: model m's hidden layer l.
    hidden: Vec<Vec<Box<dyn HiddenLayer>>>,
}

impl Stack {
    /// Stacks networks of the same layers.
    pub fn new(networks: Vec<Network>) -> Result<Self> {
        let first = networks
            .first()
            .context("a stack needs at least one model")?;
        let plan = first.plan.clone();
        anyhow::ensure!(
            networks.iter().all(|n| n.plan == plan),
            "a stack's models must have the same layers"
        );
        let mut stacked_linears = (0..first.linears.len())
            .map(|i| {
                let weights: Vec<Tensor> =
                    networks.iter().map(|n| n.linears[i].0.clone()).collect();
                let biases: Vec<Tensor> = networks.iter().map(|n| n.linears[i].1.clone()).collect();
                Ok(StackedLinear {
                    weight: Var::from_tensor(&Tensor::stack(&weights, 0)?)?,
                    bias: Var::from_tensor(&Tensor::stack(&biases, 0)?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut layers = Vec::new();
        let mut products = Vec::new();
        for (i, p) in plan.iter().enumerate() {
            let windows = |kernel, stride, padding| {
                Windows::new(&p.input, &p.output.spatial, kernel, stride, padding)
            };
            layers.push(match p.spec {
                LayerSpec::Linear { .. } | LayerSpec::Conv { .. } => {
                    products.push(i);
                    let (windows, name) = match p.spec {
                        LayerSpec::Conv {
                            kernel,
                            stride,
                            padding,
                            ..
                        } => (Some(windows(kernel, stride, padding)), "conv"),
                        _ => (None, "linear"),
                    };
                    StackedLayer::Product {
                        linear: stacked_linears
                            .next()
                            .context("a network with fewer weights than layers")?,
                        windows,
                        units: p.units(),
                        name,
                    }
                }
                LayerSpec::MaxPool { kernel, stride } | LayerSpec::AvgPool { kernel, stride } => {
                    StackedLayer::Pool {
                        windows: windows(kernel, stride, 0),
                        max: matches!(p.spec, LayerSpec::MaxPool { .. }),
                    }
                }
                LayerSpec::Flatten => StackedLayer::Flatten,
            });
        }
        let hidden = networks.into_iter().map(|n| n.hidden).collect();
        Ok(Self {
            plan,
            layers,
            products,
            hidden,
        })
    }

    /// The linear and convolution layers, in order.
    fn linears(&self) -> impl DoubleEndedIterator<Item = &StackedLinear> + '_ {
        self.products.iter().map(|&i| match &self.layers[i] {
            StackedLayer::Product { linear, .. } => linear,
            _ => unreachable!("products index product layers"),
        })
    }

    pub fn len(&self) -> usize {
        self.hidden.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hidden.is_empty()
    }

    /// Model `m`'s hidden layers.
    pub fn hidden(&self, m: usize) -> &[Box<dyn HiddenLayer>] {
        &self.hidden[m]
    }

    /// Model `m`'s linear (or convolution) layer `i`: copies of (weight `[out, in]`, bias
    /// `[out]`).
    pub fn linear(&self, m: usize, i: usize) -> Result<(Tensor, Tensor)> {
        let l = self.linears().nth(i).context("no such layer")?;
        Ok((
            l.weight.as_tensor().get(m)?.copy()?,
            l.bias.as_tensor().get(m)?.copy()?,
        ))
    }

    /// The stacked linear layers' variables: (weight `[M, out, in]`, bias `[M, out]`).
    pub fn linear_vars(&self) -> Vec<(Var, Var)> {
        self.linears()
            .map(|l| (l.weight.clone(), l.bias.clone()))
            .collect()
    }

    /// `[start, end)` ranges of neighbouring models whose hidden layer `layer` runs as one op.
    pub fn groups(&self, layer: usize) -> Vec<Range<usize>> {
        let mut groups: Vec<(Range<usize>, String)> = Vec::new();
        for (m, hidden) in self.hidden.iter().enumerate() {
            let key = hidden[layer].group_key();
            match groups.last_mut() {
                Some((range, last)) if *last == key => range.end = m + 1,
                _ => groups.push((m..m + 1, key)),
            }
        }
        groups.into_iter().map(|(range, _)| range).collect()
    }

    /// The layers of group `range` in hidden layer `layer`.
    fn group(&self, layer: usize, range: &Range<usize>) -> Vec<&dyn HiddenLayer> {
        self.hidden[range.clone()]
            .iter()
            .map(|h| h[layer].as_ref())
            .collect()
    }

    /// Every trainable variable with its owner, in each model's own order (its linear layers,
    /// then its hidden layers' parameters): what the clipping norms and Adam read.
    pub fn params(&self) -> Vec<(Var, Owner)> {
        let mut vars: Vec<(Var, Owner)> = self
            .linears()
            .flat_map(|l| {
                [
                    (l.weight.clone(), Owner::Stacked),
                    (l.bias.clone(), Owner::Stacked),
                ]
            })
            .collect();
        for (m, layers) in self.hidden.iter().enumerate() {
            for p in layers.iter().flat_map(|h| h.params()) {
                vars.push((p, Owner::Model(m)));
            }
        }
        vars
    }

    /// Logits `[M, B, 10]` for x `[M, B, features]` (each model its own batch), and the trace
    /// for [`Stack::backward`] (empty unless the pass trains). Only the models in `include`
    /// draw from their streams (the others' logits are to be ignored).
    pub fn forward(
        &self,
        x: &Tensor,
        pass: Pass,
        rngs: &mut [ChaCha8Rng],
        include: &[bool],
    ) -> Result<(Tensor, Trace)> {
        anyhow::ensure!(
            rngs.len() == self.len() && include.len() == self.len() && x.dim(0)? == self.len(),
            "a stack of {} models: {} streams, {} flags, x {:?}",
            self.len(),
            rngs.len(),
            include.len(),
            x.dims()
        );
        let (models, batch, _) = x.dims3()?;
        let mut trace = Trace {
            models,
            batch,
            inputs: Vec::new(),
            pre_activations: Vec::new(),
            groups: Vec::new(),
            pools: Vec::new(),
        };
        // Between layers: `[M, B, features]`; a product's rows are examples x positions. An
        // evaluation keeps no trace (a conv net's unfolded inputs are large).
        let keep = pass == Pass::Train;
        let mut h = x.clone();
        let mut product = 0;
        for layer in &self.layers {
            let (linear, windows) = match layer {
                StackedLayer::Flatten => continue,
                StackedLayer::Pool { windows, max } => {
                    let (y, saved) = pool_forward(windows, *max, &h)?;
                    if keep {
                        trace.pools.push(saved);
                    }
                    h = y;
                    continue;
                }
                StackedLayer::Product {
                    linear, windows, ..
                } => (linear, windows),
            };
            let i = product;
            product += 1;
            let input = match windows {
                Some(w) => w.unfold(&h)?,
                None => h,
            };
            h = linear.forward(&input)?;
            if keep {
                trace.inputs.push(input);
            }
            if i + 1 == self.products.len() {
                break;
            }
            if keep {
                trace.pre_activations.push(h.clone());
            }
            let mut outputs = Vec::new();
            let mut saved = Vec::new();
            for range in self.groups(i) {
                let group = self.group(i, &range);
                let mut draws = Draws {
                    pass,
                    rngs: &mut rngs[range.clone()],
                    include: &include[range.clone()],
                };
                let x_group = h.narrow(0, range.start, range.len())?;
                let (y, s) = group[0].forward(&group, &x_group, &mut draws)?;
                outputs.push(y);
                saved.push(s);
            }
            h = concat(outputs)?.reshape((models, batch, ()))?;
            if keep {
                trace.groups.push(saved);
            }
        }
        Ok((h, trace))
    }

    /// Every variable's gradient for the gradient `[M, B, 10]` of the models' losses to their
    /// logits, from the trace of a training [`Stack::forward`].
    pub fn backward(&self, trace: &Trace, grad_logits: &Tensor) -> Result<GradStore> {
        let mut grads = GradStore::default();
        let mut grad = grad_logits.clone();
        let (models, batch) = (trace.models, trace.batch);
        let mut product = self.products.len();
        let mut pool = trace.pools.len();
        for layer in self.layers.iter().rev() {
            let (linear, windows, units) = match layer {
                StackedLayer::Flatten => continue,
                StackedLayer::Pool { windows, .. } => {
                    pool -= 1;
                    grad = pool_backward(windows, &trace.pools[pool], &grad)?;
                    continue;
                }
                StackedLayer::Product {
                    linear,
                    windows,
                    units,
                    ..
                } => (linear, windows, *units),
            };
            product -= 1;
            if product + 1 < self.products.len() {
                // Through the hidden layer after this product, on its rows of units.
                let x = &trace.pre_activations[product];
                let grad_units = grad.reshape((models, (), units))?;
                let mut parts = Vec::new();
                for (range, saved) in self.groups(product).iter().zip(&trace.groups[product]) {
                    let group = self.group(product, range);
                    let x_group = x.narrow(0, range.start, range.len())?;
                    let g_group = grad_units.narrow(0, range.start, range.len())?;
                    parts.push(group[0].backward(&group, &x_group, saved, &g_group, &mut grads)?);
                }
                grad = concat(parts)?;
            }
            let Some(grad_input) =
                linear.backward(&trace.inputs[product], &grad, product > 0, &mut grads)?
            else {
                break;
            };
            grad = match windows {
                Some(w) => w.fold(&grad_input, models, batch)?,
                None => grad_input,
            };
        }
        Ok(grads)
    }

    /// Copies of model `m`'s variables (its linear slices, then its hidden layers'
    /// parameters), for keeping its best checkpoint.
    pub fn snapshot(&self, m: usize) -> Result<Vec<Tensor>> {
        let mut copies = Vec::new();
        for l in self.linears() {
            copies.push(l.weight.as_tensor().get(m)?.copy()?);
            copies.push(l.bias.as_tensor().get(m)?.copy()?);
        }
        for p in self.hidden[m].iter().flat_map(|h| h.params()) {
            copies.push(p.as_tensor().copy()?);
        }
        Ok(copies)
    }

    /// Puts a [`Stack::snapshot`] of model `m` back.
    pub fn restore(&self, m: usize, snapshot: &[Tensor]) -> Result<()> {
        let mut values = snapshot.iter();
        let mut next = || values.next().context("a snapshot of another model");
        for l in self.linears() {
            l.set(m, next()?, next()?)?;
        }
        for p in self.hidden[m].iter().flat_map(|h| h.params()) {
            p.set(next()?)?;
        }
        Ok(())
    }

    /// Ends model `m`'s phase: each hidden layer becomes what its kind turns into; the linear
    /// layers stay (`None`) or are drawn afresh from `fresh`.
    pub fn end_phase(&mut self, m: usize, fresh: Option<&mut ChaCha8Rng>) -> Result<()> {
        if let Some(rng) = fresh {
            let device = self
                .linears()
                .next()
                .context("no layers")?
                .weight
                .device()
                .clone();
            for (l, (weight, bias)) in self.linears().zip(draw_linears(&self.plan, rng, &device)?) {
                l.set(m, &weight, &bias)?;
            }
        }
        self.hidden[m] = self.hidden[m]
            .iter()
            .map(|h| h.end_phase())
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// Model `m`'s function per neuron and hidden layer, when every layer has one.
    pub fn choices(&self, m: usize) -> Result<Option<Vec<Vec<Activation>>>> {
        self.hidden[m].iter().map(|h| h.choices()).collect()
    }

    /// What model `m`'s hidden layers learned, one entry per layer, when any has something
    /// to say (`summary.json`'s `learned`).
    pub fn learned(&self, m: usize) -> Result<Option<Vec<serde_json::Value>>> {
        let layers: Vec<Option<serde_json::Value>> = self.hidden[m]
            .iter()
            .map(|h| h.learned())
            .collect::<Result<_>>()?;
        Ok(layers
            .iter()
            .any(Option::is_some)
            .then(|| layers.into_iter().map(Option::unwrap_or_default).collect()))
    }

    /// Model `m` as safetensors: `linear.{i}.weight|bias` (`conv.{i}` for a convolution), then each hidden layer's checkpoint
    /// as `hidden.{i}.{name}` (`logits` in a selection phase, `ids` for fixed functions).
    pub fn save(&self, m: usize, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (i, &at) in self.products.iter().enumerate() {
            let StackedLayer::Product { name, .. } = &self.layers[at] else {
                unreachable!("products index product layers")
            };
            let (weight, bias) = self.linear(m, i)?;
            tensors.insert(format!("{name}.{i}.weight"), weight);
            tensors.insert(format!("{name}.{i}.bias"), bias);
        }
        for (i, h) in self.hidden[m].iter().enumerate() {
            for (name, t) in h.checkpoint() {
                tensors.insert(format!("hidden.{i}.{name}"), t);
            }
        }
        candle_core::safetensors::save(&tensors, path)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The groups' outputs along the model dimension.
fn concat(mut parts: Vec<Tensor>) -> Result<Tensor> {
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(&parts, 0)?
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    /// What training models as one stack relies on: candle's CPU batched matmul gives each
    /// model of a stack `[M, ...]` exactly the bits of that model's own product, for the three
    /// products of a linear layer's step (forward `x W^T`, weight gradient `x^T g`, input
    /// gradient `g W`) at this project's shapes, the weight used through its transposed view.
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
