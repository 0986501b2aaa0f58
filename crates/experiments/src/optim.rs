//! Adam (no weight decay), as PyTorch's `torch.optim.Adam` computes it:
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
//!
//! On the CPU each parameter is updated by two fused in-place passes (moments, then parameter)
//! instead of candle-nn's dozen allocating tensor ops per parameter, which dominated a training
//! step. Other devices use the same formula with tensor ops until they get kernels of their own.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor, Var};

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
    /// First and second moments, `[m (n values), v (n values)]`, f32.
    moments: Tensor,
}

pub struct Adam {
    slots: Vec<Slot>,
    config: AdamConfig,
    step: i32,
}

impl Adam {
    /// An optimizer over `vars`; all must be f32 (the model's dtype).
    pub fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|var| {
                anyhow::ensure!(
                    var.dtype() == DType::F32,
                    "Adam expects f32 parameters, got {:?}",
                    var.dtype()
                );
                let moments = Tensor::zeros(2 * var.elem_count(), DType::F32, var.device())?;
                Ok(Slot { var, moments })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            slots,
            config,
            step: 0,
        })
    }

    /// One update with the gradients in `grads` (parameters without a gradient are skipped).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_scaled(grads, 1.0)
    }

    /// One update with every gradient multiplied by `grad_scale` first (gradient clipping),
    /// the multiplication fused into the update's own pass over the gradient on the CPU. The
    /// product is rounded to f32 as a separately scaled gradient would be, so the result is
    /// the same as scaling first.
    pub fn step_scaled(&mut self, grads: &GradStore, grad_scale: f32) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let update = ParamUpdate {
            step_size: c.lr / (1.0 - c.beta1.powi(self.step)),
            bias_correction2_sqrt: (1.0 - c.beta2.powi(self.step)).sqrt(),
            eps: c.eps,
        };
        let moments_update = MomentsUpdate {
            beta1: c.beta1,
            beta2: c.beta2,
            grad_scale,
        };
        for slot in &self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let grad = grad.contiguous()?;
            match slot.var.device() {
                Device::Cpu => {
                    slot.moments.inplace_op2(&grad, &moments_update)?;
                    slot.var.as_tensor().inplace_op2(&slot.moments, &update)?;
                }
                _ => {
                    let grad = if grad_scale == 1.0 {
                        grad
                    } else {
                        grad.affine(grad_scale as f64, 0.0)?
                    };
                    self.step_with_tensor_ops(slot, &grad.flatten_all()?, &moments_update, &update)?
                }
            }
        }
        Ok(())
    }

    fn step_with_tensor_ops(
        &self,
        slot: &Slot,
        grad: &Tensor,
        mu: &MomentsUpdate,
        pu: &ParamUpdate,
    ) -> Result<()> {
        let n = slot.var.elem_count();
        let m = slot.moments.narrow(0, 0, n)?;
        let v = slot.moments.narrow(0, n, n)?;
        let m = ((m * mu.beta1)? + (grad * (1.0 - mu.beta1))?)?;
        let v = ((v * mu.beta2)? + (grad.sqr()? * (1.0 - mu.beta2))?)?;
        let denom = ((v.sqrt()? / pu.bias_correction2_sqrt)? + pu.eps)?;
        let delta = ((&m / denom)? * pu.step_size)?.reshape(slot.var.shape())?;
        slot.var.set(&(slot.var.as_tensor() - delta)?)?;
        slot.moments.slice_set(&Tensor::cat(&[m, v], 0)?, 0, 0)?;
        Ok(())
    }
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

/// In place on the moments `[m, v]`, from the gradient times `grad_scale`.
struct MomentsUpdate {
    beta1: f64,
    beta2: f64,
    grad_scale: f32,
}

impl InplaceOp2 for MomentsUpdate {
    fn name(&self) -> &'static str {
        "adam-moments"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        grad: &CpuStorage,
        grad_l: &Layout,
    ) -> candle_core::Result<()> {
        let grad = contiguous_f32(grad, grad_l, "the gradient")?;
        let moments = contiguous_f32_mut(dst, dst_l, "the moments")?;
        let (m, v) = moments.split_at_mut(grad.len());
        let (b1, b2, scale) = (self.beta1 as f32, self.beta2 as f32, self.grad_scale);
        for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(grad) {
            let g = g * scale;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
        }
        Ok(())
    }
}

/// In place on the parameter, from the moments.
struct ParamUpdate {
    step_size: f64,
    bias_correction2_sqrt: f64,
    eps: f64,
}

impl InplaceOp2 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adam-param"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        moments: &CpuStorage,
        moments_l: &Layout,
    ) -> candle_core::Result<()> {
        let param = contiguous_f32_mut(dst, dst_l, "the parameter")?;
        let moments = contiguous_f32(moments, moments_l, "the moments")?;
        let (m, v) = moments.split_at(param.len());
        let (step, bc2, eps) = (
            self.step_size as f32,
            self.bias_correction2_sqrt as f32,
            self.eps as f32,
        );
        for ((p, &m), &v) in param.iter_mut().zip(m).zip(v) {
            *p -= step * m / (v.sqrt() / bc2 + eps);
        }
        Ok(())
    }
}

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
