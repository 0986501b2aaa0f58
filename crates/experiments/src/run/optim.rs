//! Adam (no weight decay), as PyTorch's `torch.optim.Adam` computes it:
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
//!
//! On the CPU each parameter is updated in place by one pass over parameter, gradient and
//! moments (in parallel chunks, vectorised), instead of candle-nn's dozen allocating tensor ops
//! per parameter, which dominated a training step. Other devices use the same formula with
//! tensor ops until they get kernels of their own.

use std::cell::RefCell;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor, Var};
use mixed_act::simd_variants;
use rayon::prelude::*;

use crate::run::cpu_ops;

/// The factor that brings the joint L2 norm of `grads` (one model's gradients, in its
/// variable order) to at most `max_norm`, as PyTorch's `clip_grad_norm_` computes it
/// (max_norm / (norm + 1e-6), capped at 1), as a scalar tensor on the device (no host sync);
/// `None` when there is no gradient.
pub fn clip_factor(grads: &[Tensor], max_norm: f64) -> Result<Option<Tensor>> {
    let squares = grads
        .iter()
        .map(cpu_ops::sum_of_squares)
        .collect::<Result<Vec<_>>>()?;
    if squares.is_empty() {
        return Ok(None);
    }
    let norm = Tensor::stack(&squares, 0)?.sum_all()?.sqrt()?;
    let coefficient = (norm + 1e-6)?
        .recip()?
        .affine(max_norm, 0.0)?
        .clamp(0.0, 1.0)?;
    Ok(Some(coefficient))
}

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamConfig {
    /// PyTorch's defaults with the given learning rate.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

struct Slot {
    var: Var,
    owner: Owner,
    /// First and second moments, `[m (n values), v (n values)]`, f32.
    moments: Moments,
}

/// Which model of a cohort a parameter belongs to, for its gradient-clipping factor: one model's
/// own tensor, or a stack `[M, ...]` whose slice m is model m's (see `run::stack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Model(usize),
    Stacked,
}

enum Moments {
    /// On the CPU the moments live in host memory owned here, so that one pass can update
    /// them and the parameter together (candle's in-place ops write to one tensor only).
    Host(RefCell<Vec<f32>>),
    Device(Tensor),
}

pub struct Adam {
    slots: Vec<Slot>,
    config: AdamConfig,
    /// Per model of a cohort, the number of updates since it started (or was reset).
    steps: Vec<i32>,
    /// Per model, its learning rate (the config's unless [`Adam::set_lr`] says otherwise).
    lrs: Vec<f64>,
}

impl Adam {
    #[cfg(test)]
    /// An optimizer over `vars`; all must be f32 (the model's dtype).
    pub fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        Self::with_owners(vars.into_iter().map(|v| (v, Owner::Model(0))), config)
    }

    /// An optimizer over the parameters of a cohort, each with its [`Owner`].
    pub fn with_owners(
        vars: impl IntoIterator<Item = (Var, Owner)>,
        config: AdamConfig,
    ) -> Result<Self> {
        Self::build(vars, config, false)
    }

    /// [`Adam::with_owners`] with the tensor-op path GPUs take, on any device (for its tests).
    #[cfg(test)]
    fn with_owners_on_tensor_ops(
        vars: impl IntoIterator<Item = (Var, Owner)>,
        config: AdamConfig,
    ) -> Result<Self> {
        Self::build(vars, config, true)
    }

    fn build(
        vars: impl IntoIterator<Item = (Var, Owner)>,
        config: AdamConfig,
        tensor_ops: bool,
    ) -> Result<Self> {
        let slots: Vec<Slot> = vars
            .into_iter()
            .map(|(var, owner)| {
                anyhow::ensure!(
                    var.dtype() == DType::F32,
                    "Adam expects f32 parameters, got {:?}",
                    var.dtype()
                );
                let n = 2 * var.elem_count();
                let moments = match var.device() {
                    Device::Cpu if !tensor_ops => Moments::Host(RefCell::new(vec![0.0; n])),
                    device => Moments::Device(Tensor::zeros(n, DType::F32, device)?),
                };
                Ok(Slot {
                    var,
                    owner,
                    moments,
                })
            })
            .collect::<Result<_>>()?;
        let models = slots
            .iter()
            .map(|s: &Slot| match s.owner {
                Owner::Model(m) => m + 1,
                Owner::Stacked => s.var.dims().first().copied().unwrap_or(1),
            })
            .max()
            .unwrap_or(1);
        Ok(Self {
            slots,
            config,
            steps: vec![0; models],
            lrs: vec![config.lr; models],
        })
    }

    /// Model `m`'s learning rate (models of a cohort may differ in it).
    pub fn set_lr(&mut self, m: usize, lr: f64) {
        self.lrs[m] = lr;
    }

    /// Starts model `m` afresh, as a new optimizer would: its moments zeroed and its step
    /// count back to 0 (SmartMixed's phase 2 in a cohort whose other models go on).
    pub fn reset_model(&mut self, m: usize) -> Result<()> {
        self.steps[m] = 0;
        let models = self.steps.len();
        for slot in &self.slots {
            let n = slot.var.elem_count();
            let range = match slot.owner {
                Owner::Model(o) if o == m => 0..n,
                Owner::Model(_) => continue,
                Owner::Stacked => (n / models * m)..(n / models * (m + 1)),
            };
            match &slot.moments {
                Moments::Host(moments) => {
                    let mut moments = moments.borrow_mut();
                    moments[range.clone()].fill(0.0);
                    moments[n + range.start..n + range.end].fill(0.0);
                }
                Moments::Device(moments) => {
                    let zeros = Tensor::zeros(range.len(), DType::F32, moments.device())?;
                    moments.slice_set(&zeros, 0, range.start)?;
                    moments.slice_set(&zeros, 0, n + range.start)?;
                }
            }
        }
        Ok(())
    }

    #[cfg(test)]
    /// One update with the gradients in `grads` (parameters without a gradient are skipped).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_scaled(grads, 1.0)
    }

    /// One update with every gradient multiplied by `grad_scale` first (gradient clipping),
    /// the multiplication fused into the update's own pass over the gradient on the CPU. The
    /// product is rounded to f32 as a separately scaled gradient would be, so the result is
    /// the same as scaling first.
    #[cfg(test)]
    pub fn step_scaled(&mut self, grads: &GradStore, grad_scale: f32) -> Result<()> {
        self.step_models(grads, &[Some(grad_scale)])
    }

    /// One update of a cohort: model m's gradients multiplied by `grad_scales[m]` (its own
    /// clipping factor), or model m left alone where it is `None` (a diverged model: no update,
    /// no step counted); a stacked parameter's slice m is model m's. Element by element the same
    /// arithmetic as [`step_scaled`](Self::step_scaled) with that model's factor and step count,
    /// so each model gets the bits it would get alone.
    pub fn step_models(&mut self, grads: &GradStore, grad_scales: &[Option<f32>]) -> Result<()> {
        let rules = self.next_rules(grad_scales)?;
        self.update(grads, &rules, None)
    }

    /// [`step_models`](Self::step_models) with the clipping factors `[M]` as a tensor on the
    /// parameters' device, so that nothing waits for the device (GPUs); models whose `active`
    /// entry is false are left alone. On the CPU the factors are read and the update is
    /// [`step_models`](Self::step_models)'s.
    pub fn step_models_on_device(
        &mut self,
        grads: &GradStore,
        factors: &Tensor,
        active: &[bool],
    ) -> Result<()> {
        let host = self
            .slots
            .iter()
            .any(|s| matches!(s.moments, Moments::Host(_)));
        if host {
            let factors = factors.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            let scales: Vec<Option<f32>> = active
                .iter()
                .zip(factors)
                .map(|(&a, f)| a.then_some(f))
                .collect();
            return self.step_models(grads, &scales);
        }
        let scales: Vec<Option<f32>> = active.iter().map(|&a| a.then_some(1.0)).collect();
        let rules = self.next_rules(&scales)?;
        self.update(grads, &rules, Some(factors))
    }

    /// Counts a step for every model with a factor and returns each model's rule.
    fn next_rules(&mut self, grad_scales: &[Option<f32>]) -> Result<Vec<Option<Rule>>> {
        anyhow::ensure!(
            grad_scales.len() == self.steps.len(),
            "Adam: {} clipping factors for {} models",
            grad_scales.len(),
            self.steps.len()
        );
        for (step, scale) in self.steps.iter_mut().zip(grad_scales) {
            if scale.is_some() {
                *step += 1;
            }
        }
        let c = self.config;
        Ok(grad_scales
            .iter()
            .zip(self.steps.iter().zip(&self.lrs))
            .map(|(scale, (&step, &lr))| {
                scale.map(|grad_scale| Rule {
                    beta1: c.beta1 as f32,
                    beta2: c.beta2 as f32,
                    grad_scale,
                    step_size: (lr / (1.0 - c.beta1.powi(step))) as f32,
                    bias_correction2_sqrt: (1.0 - c.beta2.powi(step)).sqrt() as f32,
                    eps: c.eps as f32,
                })
            })
            .collect())
    }

    /// Every parameter's update under `rules` (one per model), with the gradient factors on the
    /// device when given (then the rules' own factors are 1).
    fn update(
        &self,
        grads: &GradStore,
        rules: &[Option<Rule>],
        device_factors: Option<&Tensor>,
    ) -> Result<()> {
        for slot in &self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let grad = grad.contiguous()?;
            let (slot_rules, factors): (Vec<Option<Rule>>, Option<Tensor>) = match slot.owner {
                Owner::Model(m) => (
                    vec![rules[m]],
                    device_factors.map(|f| f.narrow(0, m, 1)).transpose()?,
                ),
                Owner::Stacked => {
                    anyhow::ensure!(
                        slot.var.dims().first() == Some(&rules.len()),
                        "Adam: a stacked parameter of shape {:?} for {} models",
                        slot.var.dims(),
                        rules.len()
                    );
                    (rules.to_vec(), device_factors.cloned())
                }
            };
            if slot_rules.iter().all(Option::is_none) {
                continue;
            }
            match &slot.moments {
                Moments::Host(moments) => {
                    let mut moments = moments.borrow_mut();
                    let update = FusedUpdate {
                        rules: slot_rules,
                        moments: RefCell::new(moments.as_mut_slice()),
                    };
                    slot.var.as_tensor().inplace_op2(&grad, &update)?
                }
                Moments::Device(moments) => {
                    step_with_tensor_ops(&slot.var, moments, &grad, &slot_rules, factors)?
                }
            }
        }
        Ok(())
    }
}

/// The update with candle's tensor ops (GPUs), the same formula as [`Rule::update`], for a
/// whole parameter in one set of ops: `rules` has one entry per model slice (one for a model's
/// own parameter), their factors as `[k, 1]` columns (`factors`, on the device, when given);
/// slices whose rule is `None` keep their values and moments.
fn step_with_tensor_ops(
    var: &Var,
    moments: &Tensor,
    grad: &Tensor,
    rules: &[Option<Rule>],
    factors: Option<Tensor>,
) -> Result<()> {
    let (n, k) = (var.elem_count(), rules.len());
    let per = n / k;
    let device = var.device();
    let any = rules
        .iter()
        .flatten()
        .next()
        .context("Adam: no model to update")?;
    let column = |f: &dyn Fn(&Rule) -> f32, idle: f32| -> candle_core::Result<Tensor> {
        let values: Vec<f32> = rules.iter().map(|r| r.as_ref().map_or(idle, f)).collect();
        Tensor::from_vec(values, (k, 1), device)
    };
    let scale = match factors {
        Some(f) => f.to_dtype(DType::F32)?.reshape((k, 1))?,
        None => column(&|r| r.grad_scale, 0.0)?,
    };
    let g = grad
        .flatten_all()?
        .reshape((k, per))?
        .broadcast_mul(&scale)?;
    let m_old = moments.narrow(0, 0, n)?.reshape((k, per))?;
    let v_old = moments.narrow(0, n, n)?.reshape((k, per))?;
    let m_new = ((&m_old * any.beta1 as f64)? + (&g * (1.0 - any.beta1) as f64)?)?;
    let v_new = ((&v_old * any.beta2 as f64)? + (g.sqr()? * (1.0 - any.beta2) as f64)?)?;
    let bias2 = column(&|r| r.bias_correction2_sqrt, 1.0)?;
    let denom = (v_new.sqrt()?.broadcast_div(&bias2)? + any.eps as f64)?;
    let delta = (&m_new / denom)?.broadcast_mul(&column(&|r| r.step_size, 0.0)?)?;
    let p_old = var.as_tensor().flatten_all()?.reshape((k, per))?;
    let p_new = (&p_old - delta)?;
    let (p, m, v) = if rules.iter().all(Option::is_some) {
        (p_new, m_new, v_new)
    } else {
        let on: Vec<u8> = rules.iter().map(|r| u8::from(r.is_some())).collect();
        let mask = Tensor::from_vec(on, (k, 1), device)?.broadcast_as((k, per))?;
        (
            mask.where_cond(&p_new, &p_old)?,
            mask.where_cond(&m_new, &m_old)?,
            mask.where_cond(&v_new, &v_old)?,
        )
    };
    var.set(&p.reshape(var.shape())?)?;
    moments.slice_set(&m.flatten_all()?.contiguous()?, 0, 0)?;
    moments.slice_set(&v.flatten_all()?.contiguous()?, 0, n)?;
    Ok(())
}

fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("Adam: {what} must be a contiguous f32 tensor"),
    }
}

fn contiguous_f32_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&mut data[start..end]),
        _ => candle_core::bail!("Adam: {what} must be a contiguous f32 tensor"),
    }
}

/// One step's constants, in f32 (the parameters' type).
#[derive(Clone, Copy)]
struct Rule {
    beta1: f32,
    beta2: f32,
    /// Gradient clipping's factor, applied to each gradient as it is read.
    grad_scale: f32,
    /// lr / (1 - b1^t).
    step_size: f32,
    /// sqrt(1 - b2^t).
    bias_correction2_sqrt: f32,
    eps: f32,
}

impl Rule {
    /// One parameter: moments first, then the parameter from the new moments. The product
    /// `g * grad_scale` is rounded to f32 as a separately scaled gradient would be.
    #[inline(always)]
    fn update(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let g = g * self.grad_scale;
        *m = self.beta1 * *m + (1.0 - self.beta1) * g;
        *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
        *p -= self.step_size * *m / (v.sqrt() / self.bias_correction2_sqrt + self.eps);
    }
}

/// Parameters per parallel task: large enough that a task outweighs its scheduling.
const UPDATE_CHUNK: usize = 1 << 14;

/// In place on the parameter, from its gradient, updating the moments in the same pass. With
/// several rules (a stacked cohort parameter), slice m of the parameter follows rule m; a slice
/// whose rule is `None` is left as it is.
struct FusedUpdate<'a> {
    rules: Vec<Option<Rule>>,
    /// `[m, v]`; in a cell because candle hands the op out as `&self`.
    moments: RefCell<&'a mut [f32]>,
}

impl InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        grad: &CpuStorage,
        grad_l: &Layout,
    ) -> candle_core::Result<()> {
        let param = contiguous_f32_mut(dst, dst_l, "the parameter")?;
        let grad = contiguous_f32(grad, grad_l, "the gradient")?;
        let mut moments = self.moments.borrow_mut();
        if grad.len() != param.len() || moments.len() != 2 * param.len() {
            candle_core::bail!("Adam: gradient or moments do not match the parameter");
        }
        let (m, v) = moments.split_at_mut(param.len());
        if self.rules.is_empty() || param.len() % self.rules.len() != 0 {
            candle_core::bail!("Adam: the parameter does not split into one slice per model");
        }
        let part = param.len() / self.rules.len();
        let parts = param
            .chunks_mut(part.max(1))
            .zip(grad.chunks(part.max(1)))
            .zip(m.chunks_mut(part.max(1)))
            .zip(v.chunks_mut(part.max(1)));
        for ((((p, g), m), v), rule) in parts.zip(&self.rules) {
            let Some(rule) = rule else { continue };
            p.par_chunks_mut(UPDATE_CHUNK)
                .zip(g.par_chunks(UPDATE_CHUNK))
                .zip(m.par_chunks_mut(UPDATE_CHUNK))
                .zip(v.par_chunks_mut(UPDATE_CHUNK))
                .for_each(|(((p, g), m), v)| update_chunk(rule, p, g, m, v));
        }
        Ok(())
    }
}

simd_variants! {
/// Compiled for AVX-512 and AVX2 as well as the baseline, chosen at run time (the square root
/// and the division vectorise).
fn update_chunk(rule: &Rule, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        rule.update(p, g, m, v);
    }
}}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Optimizer;
    use rand::{Rng, SeedableRng};

    /// Uniform random tensors of `shape` in [-1, 1), from a seeded stream.
    struct Random(rand_chacha::ChaCha8Rng);

    impl Random {
        fn tensor(&mut self, shape: (usize, usize)) -> Tensor {
            let data = (0..shape.0 * shape.1)
                .map(|_| self.0.random::<f32>() * 2.0 - 1.0)
                .collect();
            Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
        }
    }

    /// Two independent variables holding the same initial values.
    fn twin_vars(init: &Tensor) -> (Var, Var) {
        (
            Var::from_tensor(init).unwrap(),
            Var::from_tensor(&init.copy().unwrap()).unwrap(),
        )
    }

    /// `sum((v - target)^2)`.
    fn squared_error(v: &Var, target: &Tensor) -> Tensor {
        (v.as_tensor() - target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    }

    /// The fused update follows candle-nn's AdamW with weight decay 0 (the same formula).
    /// The tensor-op path (GPUs) on a stacked parameter of three models with different
    /// factors, one model idle: within rounding of the fused CPU path, the idle slice and its
    /// moments untouched.
    #[test]
    fn the_tensor_op_path_matches_the_fused_path_per_model() {
        let mut random = Random(rand_chacha::ChaCha8Rng::seed_from_u64(5));
        let init = random.tensor((3, 40));
        let (fused, ops) = twin_vars(&init);
        let config = AdamConfig::with_lr(0.01);
        let mut a = Adam::with_owners([(fused.clone(), Owner::Stacked)], config).unwrap();
        let mut b =
            Adam::with_owners_on_tensor_ops([(ops.clone(), Owner::Stacked)], config).unwrap();
        for step in 0..4 {
            let grad = random.tensor((3, 40));
            let mut grads = GradStore::default();
            grads.insert(fused.as_tensor(), grad.clone());
            grads.insert(ops.as_tensor(), grad);
            let active = [true, step % 2 == 0, true];
            let factors = [0.5f32, 1.0, 0.25];
            let scales: Vec<Option<f32>> = active
                .iter()
                .zip(factors)
                .map(|(&on, f)| on.then_some(f))
                .collect();
            a.step_models(&grads, &scales).unwrap();
            let factors = Tensor::new(&factors, &Device::Cpu).unwrap();
            b.step_models_on_device(&grads, &factors, &active).unwrap();
        }
        let (x, y) = (
            fused.as_tensor().to_vec2::<f32>().unwrap(),
            ops.as_tensor().to_vec2::<f32>().unwrap(),
        );
        for (rx, ry) in x.iter().zip(&y) {
            for (u, v) in rx.iter().zip(ry) {
                assert!((u - v).abs() <= 1e-6 * (1.0 + u.abs()), "{u} vs {v}");
            }
        }
        // Model 1 updated in steps 0 and 2 only: its slice moved, twice.
        assert_ne!(x[1], init.to_vec2::<f32>().unwrap()[1]);
    }

    /// The factor brings the joint norm of all gradients to the bound, as PyTorch's
    /// `clip_grad_norm_` does, and is capped at 1 below it.
    #[test]
    fn clipping_scales_the_joint_norm_like_pytorch() {
        let dev = Device::Cpu;
        // Gradients (3, 3) and (4, 4): joint norm sqrt(50).
        let grads = [
            Tensor::new(&[3f32, 3.0], &dev).unwrap(),
            Tensor::new(&[[4f32, 4.0]], &dev).unwrap(),
        ];
        let factor = clip_factor(&grads, 1.0).unwrap().unwrap();
        let want = 1.0 / (50f64.sqrt() + 1e-6);
        assert!((factor.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-7);
        let factor = clip_factor(&grads, 100.0).unwrap().unwrap();
        assert_eq!(factor.to_scalar::<f32>().unwrap(), 1.0);
        assert!(clip_factor(&[], 1.0).unwrap().is_none());
    }

    #[test]
    fn matches_candle_adamw_without_decay() {
        let mut random = Random(rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let init = random.tensor((3, 4));
        let (ours, theirs) = twin_vars(&init);
        let cfg = AdamConfig::with_lr(0.01);
        let mut adam = Adam::new(vec![ours.clone()], cfg).unwrap();
        let params = candle_nn::ParamsAdamW {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut reference = candle_nn::AdamW::new(vec![theirs.clone()], params).unwrap();
        for _ in 0..5 {
            let target = random.tensor((3, 4));
            adam.step(&squared_error(&ours, &target).backward().unwrap())
                .unwrap();
            reference
                .step(&squared_error(&theirs, &target).backward().unwrap())
                .unwrap();
        }
        let diff = (ours.as_tensor() - theirs.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let moved = (ours.as_tensor() - &init)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(
            moved.to_scalar::<f32>().unwrap() > 0.01,
            "the parameters moved"
        );
    }

    /// Clipping fused into the update gives the same bits as scaling the gradients first.
    #[test]
    fn a_scaled_step_equals_scaling_the_gradients_first() {
        let mut random = Random(rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let (fused, apart) = twin_vars(&random.tensor((5, 8)));
        let cfg = AdamConfig::with_lr(0.01);
        let mut adam_fused = Adam::new(vec![fused.clone()], cfg).unwrap();
        let mut adam_apart = Adam::new(vec![apart.clone()], cfg).unwrap();
        for scale in [0.37f32, 1.0, 0.0123] {
            let target = random.tensor((5, 8));
            let grads = squared_error(&fused, &target).backward().unwrap();
            adam_fused.step_scaled(&grads, scale).unwrap();
            let mut grads = squared_error(&apart, &target).backward().unwrap();
            let coefficient = Tensor::new(&[scale], &Device::Cpu).unwrap();
            let scaled = grads
                .get(apart.as_tensor())
                .unwrap()
                .broadcast_mul(&coefficient)
                .unwrap();
            grads.insert(apart.as_tensor(), scaled);
            adam_apart.step(&grads).unwrap();
        }
        assert_eq!(
            fused.as_tensor().to_vec2::<f32>().unwrap(),
            apart.as_tensor().to_vec2::<f32>().unwrap()
        );
    }
}
