//! The three matrix products of a stacked linear layer, `y = x W^T + b` (forward), `grad_W =
//! grad_y^T x` and `grad_x = grad_y W` (backward), for M models at once (`x` is `[M, B, in]`,
//! `W` is `[M, out, in]`, `grad_y` is `[M, B, out]`).
//!
//! On the CPU they call gemm, candle's own matrix-product crate, directly, with exactly the
//! arguments candle 0.11's `matmul` passes it (per model; alpha 0 with the output not read,
//! beta 1, candle's thread count), so each product gives candle's bits. What the direct call
//! saves is around the product: the output is not zeroed first, the bias is added in the same
//! pass that finishes the forward output (candle: a second op and buffer), and the weight
//! gradient is written straight in the weight's `[out, in]` layout instead of as `[in, out]`
//! and then transposed. That last one asks gemm for the transposed product; its bits are the
//! same because gemm sums each output element over the inner dimension in one chain per block
//! of `kc` terms, and `kc` depends on the inner dimension alone ([`blocked`];
//! `weight_gradient_bits` below holds it to candle's product and transpose at every shape).
//!
//! Other devices, dtypes and layouts take candle's ops.

use std::mem::MaybeUninit;

use anyhow::Result;
use candle_core::Tensor;

use crate::run::cpu_ops::{self, with_cpu_f32};

/// An operand of [`product`]: its data with its row and column strides.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl Operand<'_> {
    /// Whether a `rows x cols` matrix with these strides lies inside the data.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// Whether gemm 0.19 runs an `m x n` product over `k` terms through its blocked
/// micro-kernels. Thin products take other paths (a side of one: matrix-vector kernels; an
/// inner dimension of at most two; at most 256 outputs: horizontal sums where both operands are
/// contiguous along the inner dimension). On the blocked path, with alpha 0 and the output not
/// read, (1) every output element is written before it is read (the first block of the inner
/// dimension stores `beta * sum`, later blocks add to it), and (2) each element is one chain
/// of fused multiply-adds per block of `kc` terms, `kc` depending on `k` alone, so the product
/// and its transpose (`B^T A^T`) give the same bits.
fn blocked(m: usize, n: usize, k: usize) -> bool {
    m >= 2 && n >= 2 && k >= 3 && m * n > 256
}

/// `dst (m x n) = lhs (m x k) rhs (k x n)`, `dst` row-major, as candle 0.11's CPU matmul
/// calls gemm (so the same bits for the same operands and strides). `dst` may be unwritten
/// only where [`blocked`] holds (gemm writes every element before reading it); callers zero
/// it otherwise (see [`output_buffer`]).
fn product(
    dst: &mut [MaybeUninit<f32>],
    (m, n, k): (usize, usize, usize),
    lhs: Operand,
    rhs: Operand,
) {
    assert!(
        dst.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n),
        "product operands too short for {m}x{k} times {k}x{n}"
    );
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm reads or writes inside its slice; dst
    // does not overlap the operands (a `&mut` beside two `&`); gemm reads no element of dst
    // that it has not written unless dst was zeroed (`output_buffer`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0f32,
            1f32,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// A buffer of `len` values for products of shape `(m, n, k)` to fill: left unwritten when the
/// products take gemm's blocked path, which writes every element before reading any (zeroing
/// a fresh output was about 4 % of a ReLU step), zeroed otherwise.
fn output_buffer(len: usize, (m, n, k): (usize, usize, usize)) -> Vec<MaybeUninit<f32>> {
    let mut buffer = Vec::with_capacity(len);
    let fill = if blocked(m, n, k) {
        MaybeUninit::uninit()
    } else {
        MaybeUninit::new(0f32)
    };
    buffer.resize(len, fill);
    buffer
}

/// The buffer once every element is written (by [`product`] over all of it).
fn written(buffer: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut buffer = std::mem::ManuallyDrop::new(buffer);
    let (ptr, len, capacity) = (buffer.as_mut_ptr(), buffer.len(), buffer.capacity());
    // SAFETY: same allocation, layout and length; `MaybeUninit<f32>` has f32's layout, and
    // the callers have had every element written.
    unsafe { Vec::from_raw_parts(ptr.cast::<f32>(), len, capacity) }
}

/// Fills a fresh `[M, m, n]` output with one product `(m, n, k)` per model: `f` gets the
/// model's output slice and its slices of the two stacked inputs.
fn per_model(
    models: usize,
    (m, n, k): (usize, usize, usize),
    inputs: [(&[f32], usize); 2],
    f: impl Fn(&mut [MaybeUninit<f32>], &[f32], &[f32]),
) -> Vec<f32> {
    let mut out = output_buffer(models * m * n, (m, n, k));
    let [(a, a_size), (b, b_size)] = inputs;
    for (model, dst) in out.chunks_exact_mut((m * n).max(1)).enumerate() {
        f(
            dst,
            &a[model * a_size..(model + 1) * a_size],
            &b[model * b_size..(model + 1) * b_size],
        );
    }
    written(out)
}

/// `x W^T` without the bias, `[M, B, out]`: the forward product.
pub fn forward_product(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    forward(x, weight, None)
}

/// `x W^T + b`, `[M, B, out]` (bias `[M, out]`): the linear layer's forward pass.
pub fn linear_forward(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    forward(x, weight, Some(bias))
}

fn forward(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (models, batch, fan_in) = x.dims3()?;
    let fan_out = weight.dim(1)?;
    let fast = with_cpu_f32(x, |x| {
        with_cpu_f32(weight, |w| {
            let shape = (batch, fan_out, fan_in);
            let inputs = [(x, batch * fan_in), (w, fan_out * fan_in)];
            per_model(models, shape, inputs, |y, x, w| {
                let x = Operand {
                    data: x,
                    row_stride: fan_in,
                    col_stride: 1,
                };
                // W^T as candle's `.t()` view of W presents it.
                let w_t = Operand {
                    data: w,
                    row_stride: 1,
                    col_stride: fan_in,
                };
                product(y, shape, x, w_t);
            })
        })
    })
    .flatten();
    let Some(mut y) = fast else {
        let y = x.matmul(&weight.t()?)?;
        return Ok(match bias {
            Some(b) => y.broadcast_add(&b.unsqueeze(1)?)?,
            None => y,
        });
    };
    if let Some(bias) = bias {
        // candle's broadcast_add computes `y + b` per element: the same single rounding.
        let added = with_cpu_f32(bias, |b| {
            for (y, b) in y
                .chunks_exact_mut(batch * fan_out)
                .zip(b.chunks_exact(fan_out))
            {
                for row in y.chunks_exact_mut(fan_out) {
                    cpu_ops::add_row(row, b);
                }
            }
        });
        if added.is_none() {
            let y = Tensor::from_vec(y, (models, batch, fan_out), x.device())?;
            return Ok(y.broadcast_add(&bias.unsqueeze(1)?)?);
        }
    }
    Ok(Tensor::from_vec(y, (models, batch, fan_out), x.device())?)
}

/// `grad_y W`, `[M, B, in]`: the gradient to the layer's input.
pub fn input_gradient(grad_y: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (models, batch, fan_out) = grad_y.dims3()?;
    let fan_in = weight.dim(2)?;
    let fast = with_cpu_f32(grad_y, |g| {
        with_cpu_f32(weight, |w| {
            let shape = (batch, fan_in, fan_out);
            let inputs = [(g, batch * fan_out), (w, fan_out * fan_in)];
            per_model(models, shape, inputs, |dst, g, w| {
                let g = Operand {
                    data: g,
                    row_stride: fan_out,
                    col_stride: 1,
                };
                let w = Operand {
                    data: w,
                    row_stride: fan_in,
                    col_stride: 1,
                };
                product(dst, shape, g, w);
            })
        })
    })
    .flatten();
    Ok(match fast {
        Some(grad_x) => Tensor::from_vec(grad_x, (models, batch, fan_in), grad_y.device())?,
        None => grad_y.matmul(weight)?,
    })
}

/// `grad_y^T x`, `[M, out, in]`: the weight gradient, in the weight's layout. candle's way,
/// `x^T grad_y` then a transpose, where the direct product could sum in another order.
pub fn weight_gradient(x: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
    let (models, batch, fan_in) = x.dims3()?;
    let fan_out = grad_y.dim(2)?;
    // The transposed product sums like candle's only on gemm's blocked path.
    if !blocked(fan_in, fan_out, batch) {
        return cpu_ops::transposed_stack(&x.t()?.matmul(grad_y)?);
    }
    let fast = with_cpu_f32(grad_y, |g| {
        with_cpu_f32(x, |x| {
            let shape = (fan_out, fan_in, batch);
            let inputs = [(g, batch * fan_out), (x, batch * fan_in)];
            per_model(models, shape, inputs, |dst, g, x| {
                let g_t = Operand {
                    data: g,
                    row_stride: 1,
                    col_stride: fan_out,
                };
                let x = Operand {
                    data: x,
                    row_stride: fan_in,
                    col_stride: 1,
                };
                product(dst, shape, g_t, x);
            })
        })
    })
    .flatten();
    match fast {
        Some(grad_w) => Ok(Tensor::from_vec(
            grad_w,
            (models, fan_out, fan_in),
            x.device(),
        )?),
        None => cpu_ops::transposed_stack(&x.t()?.matmul(grad_y)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Values of mixed magnitude and sign, so that the order of a sum shows in its rounding.
    fn random(shape: (usize, usize, usize), rng: &mut rand_chacha::ChaCha8Rng) -> Tensor {
        let n = shape.0 * shape.1 * shape.2;
        let data: Vec<f32> = (0..n)
            .map(|_| (rng.random::<f32>() - 0.5) * 10f32.powi(rng.random_range(-3..3)))
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    /// (models, batch, in, out): this project's layer shapes (architecture 3 and the small
    /// test networks, batch 128 and a ragged last batch), inner dimensions past gemm's block of
    /// 512, and the thin shapes that fall back.
    const SHAPES: [(usize, usize, usize, usize); 14] = [
        (1, 128, 784, 512),
        (1, 128, 512, 256),
        (2, 128, 256, 128),
        (1, 128, 128, 64),
        (3, 128, 64, 10),
        (1, 96, 784, 32),
        (2, 37, 32, 16),
        (1, 1000, 40, 100),
        (1, 600, 100, 3),
        (1, 64, 16, 10),
        (1, 2, 784, 512),
        (1, 128, 1, 64),
        (1, 128, 64, 1),
        (1, 7, 13, 5),
    ];

    /// The forward pass with and without the bias, and the input gradient, give candle's
    /// `matmul` (+ `broadcast_add`) bits.
    #[test]
    fn forward_and_input_gradient_bits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for (models, batch, fan_in, fan_out) in SHAPES {
            let x = random((models, batch, fan_in), &mut rng);
            let w = random((models, fan_out, fan_in), &mut rng);
            let b = random((models, fan_out, 1), &mut rng).squeeze(2).unwrap();
            let g = random((models, batch, fan_out), &mut rng);
            let shape = format!("{models} x [{batch}, {fan_in}] -> {fan_out}");
            let want = x.matmul(&w.t().unwrap()).unwrap();
            assert_eq!(
                bits(&forward_product(&x, &w).unwrap()),
                bits(&want),
                "{shape}"
            );
            let want = want.broadcast_add(&b.unsqueeze(1).unwrap()).unwrap();
            let got = linear_forward(&x, &w, &b).unwrap();
            assert_eq!(got.dims(), want.dims());
            assert_eq!(bits(&got), bits(&want), "{shape} with bias");
            let want = g.matmul(&w).unwrap();
            let got = input_gradient(&g, &w).unwrap();
            assert_eq!(got.dims(), want.dims());
            assert_eq!(bits(&got), bits(&want), "{shape} grad x");
        }
    }

    /// The weight gradient written in the weight's layout equals candle's `x^T g` transposed,
    /// bit for bit, at shapes that take the direct product and at those that fall back.
    #[test]
    fn weight_gradient_bits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut direct = 0;
        for (models, batch, fan_in, fan_out) in SHAPES {
            let x = random((models, batch, fan_in), &mut rng);
            let g = random((models, batch, fan_out), &mut rng);
            let want = x.t().unwrap().matmul(&g).unwrap();
            let want = want.transpose(1, 2).unwrap().contiguous().unwrap();
            let got = weight_gradient(&x, &g).unwrap();
            assert_eq!(got.dims(), want.dims());
            assert_eq!(
                bits(&got),
                bits(&want),
                "{models} x [{batch}, {fan_in}] -> {fan_out}"
            );
            direct += usize::from(blocked(fan_in, fan_out, batch));
        }
        assert!(
            direct >= 9,
            "most shapes take the direct product ({direct})"
        );
    }

    /// Strided inputs take candle's path and still give its results.
    #[test]
    fn strided_inputs_fall_back() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x = random((1, 40, 30), &mut rng);
        let w = random((1, 20, 40), &mut rng);
        let x_strided = x.transpose(1, 2).unwrap();
        assert!(!x_strided.is_contiguous());
        let want = x_strided.matmul(&w.t().unwrap()).unwrap();
        assert_eq!(bits(&forward_product(&x_strided, &w).unwrap()), bits(&want));
    }
}
