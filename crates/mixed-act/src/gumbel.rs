//! Straight-through Gumbel-softmax: a hard one-hot choice in the forward pass, the softmax's
//! gradient in the backward pass.
//!
//! candle's CPU RNG cannot be seeded, so the noise comes from a host RNG that the caller owns
//! (one draw per neuron and candidate per call) and is uploaded as one small tensor.

use candle_core::{bail, DType, Device, Result, Tensor, D};
use rand::Rng;

/// Uniform draws are clamped to `[UNIFORM_MARGIN, 1 - UNIFORM_MARGIN]` so that neither log is
/// infinite; the noise then lies within about [-3.1, 23.0].
pub const UNIFORM_MARGIN: f64 = 1e-10;

/// `len` samples of standard Gumbel noise `-ln(-ln u)`, computed in f64 from `rng`.
pub fn gumbel_noise<R: Rng + ?Sized>(rng: &mut R, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let u: f64 = rng
                .random::<f64>()
                .clamp(UNIFORM_MARGIN, 1.0 - UNIFORM_MARGIN);
            (-(-u.ln()).ln()) as f32
        })
        .collect()
}

/// Straight-through Gumbel-softmax over `logits` `[N, 6]` with the given noise (same shape):
/// `soft = softmax((logits + noise) / tau)`; the value is exactly `one_hot(argmax soft)` (ties to
/// the lowest id), the gradient that of `soft`.
pub fn straight_through(logits: &Tensor, noise: &Tensor, tau: f64) -> Result<Tensor> {
    if !(tau.is_finite() && tau > 0.0) {
        bail!("tau must be a positive finite number, got {tau}");
    }
    if noise.dims() != logits.dims() {
        bail!(
            "Gumbel noise has shape {:?} but the logits have {:?}",
            noise.dims(),
            logits.dims()
        );
    }
    let soft = candle_nn::ops::softmax(&((logits + noise)? / tau)?, D::Minus1)?;
    let hard = one_hot_argmax(&soft)?;
    // (soft - soft) is exactly zero for finite soft, so the value is exactly `hard`, while the
    // gradient reaches `soft` through the first term unchanged. (PyTorch's hard + soft - soft
    // rounds: 1 + 0.3 - 0.3 need not be 1.)
    (soft.clone() - soft.detach())? + hard
}

/// Draws the noise from `rng` (one value per neuron and candidate), uploads it to the logits'
/// device and applies [`straight_through`].
pub fn sample_straight_through<R: Rng + ?Sized>(
    logits: &Tensor,
    tau: f64,
    rng: &mut R,
) -> Result<Tensor> {
    let noise = gumbel_noise(rng, logits.elem_count());
    let noise =
        Tensor::from_vec(noise, logits.shape(), logits.device())?.to_dtype(logits.dtype())?;
    straight_through(logits, &noise, tau)
}

/// One-hot rows of the argmax over the last dimension, in the input's dtype and device, without
/// leaving the device. candle's argmax keeps the first maximum, so ties go to the lowest id.
pub fn one_hot_argmax(scores: &Tensor) -> Result<Tensor> {
    let candidates = scores.dim(D::Minus1)?;
    let index = scores.argmax_keepdim(D::Minus1)?;
    let ids = Tensor::arange(0u32, candidates as u32, scores.device())?.unsqueeze(0)?;
    ids.broadcast_eq(&index)?.to_dtype(scores.dtype())
}

/// Host-side argmax of each row of `logits` `[N, 6]` (ties to the lowest id).
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<usize>> {
    let rows = logits
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            best
        })
        .collect())
}
