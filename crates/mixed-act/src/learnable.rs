//! Activations with learnable parameters, the adaptive methods SmartMixed is compared with:
//! PReLU and Swish-beta (one parameter per neuron) and PAU, the safe Pade unit of degrees
//! (5, 4) (ten coefficients per layer, or per neuron). The one place each formula and its
//! derivatives live.
//!
//! ```text
//! x: [M, B, N] float, params: [M, U, P] (U = N: one unit per neuron; U = 1: one per layer)
//! y[m, b, n] = f(x[m, b, n]; params[m, u(n)])
//! grad_x = grad_y * df/dx;  grad_params[m, u] = sum over b (and n, for U = 1) of grad_y * df/dp
//! ```
//! The parameter gradients are sums over the batch in a fixed order (column by column, rows in
//! order, in f64; a shared unit's columns then added in column order), so their bits do not
//! depend on the thread count. On the CPU the forward is one fused pass and the backward
//! another (grad-x and the parameter gradients together); on a GPU the forward is one kernel
//! and the backward two, `learnable_grad_x` and `learnable_grad_p` (`kernels/mixed_act.cu`,
//! `.metal`), the latter one sum per column in a fixed order, a shared unit's columns then
//! added by candle. The candle compositions beside them ([`prelu_slow`], [`swish_beta_slow`],
//! [`pau_slow`]) spell out the math for the tests.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::{logistic, Real};
use crate::kernels::gpu_paths;
#[cfg(any(feature = "cuda", feature = "metal"))]
use crate::kernels::{Scalars, LEARNABLE_FWD, LEARNABLE_GRAD_P, LEARNABLE_GRAD_X};

/// The learnable activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learnable {
    /// `max(0, x) + a min(0, x)`, one slope `a` per neuron (He et al. 2015).
    Prelu,
    /// `x sigmoid(beta x)`, one `beta` per neuron (Ramachandran et al. 2017).
    SwishBeta,
    /// `P(x) / Q(x)`, `P = sum_{j<=5} a_j x^j`, `Q = 1 + sum_{k=1..4} |b_k| |x|^k` (Molina et
    /// al. 2020, rational_activations' version A); parameters `[a_0..a_5, b_1..b_4]`.
    Pau,
}

/// PAU's numerator and denominator degrees' coefficient counts.
pub const PAU_NUMERATOR: usize = 6;
pub const PAU_DENOMINATOR: usize = 4;

/// PAU initialised to its least-squares fit of leaky ReLU (slope 0.01) on [-3, 3]
/// (rational_activations' `rationals_config.json`, "Rational_version_A5/4", "leaky_relu").
pub const PAU_LEAKY_RELU_INIT: [f64; PAU_NUMERATOR + PAU_DENOMINATOR] = [
    0.029792778657264946,
    0.6183735264987601,
    2.323309062531321,
    3.051936237265109,
    1.4854203263828845,
    0.2510244961111299,
    -1.1419548357285474,
    4.393159974992486,
    0.8714712309957245,
    0.34719662339598834,
];

impl Learnable {
    /// The kind's number in the GPU kernels' `kind` argument (`learnable_value` in
    /// `kernels/mixed_act.cu` and `.metal`).
    pub fn id(self) -> u32 {
        match self {
            Learnable::Prelu => 0,
            Learnable::SwishBeta => 1,
            Learnable::Pau => 2,
        }
    }

    /// Parameters per unit.
    pub fn params(self) -> usize {
        match self {
            Learnable::Prelu | Learnable::SwishBeta => 1,
            Learnable::Pau => PAU_NUMERATOR + PAU_DENOMINATOR,
        }
    }

    /// `f(x; p)`.
    #[inline(always)]
    fn value<F: Real>(self, x: F, p: &[F]) -> F {
        match self {
            // `+ 0` turns the -0 of a zero slope times a negative x into relu's +0.
            Learnable::Prelu => {
                if x > F::zero() {
                    x
                } else {
                    p[0] * x + F::zero()
                }
            }
            // With beta = 1 exactly SiLU's arithmetic (`activation.rs`): the same bits.
            Learnable::SwishBeta => x * logistic(p[0] * x).0,
            Learnable::Pau => pau_value(x, p),
        }
    }

    /// `df/dx`, with `df/dp` written into `dp`.
    #[inline(always)]
    fn derivatives<F: Real>(self, x: F, p: &[F], dp: &mut [F]) -> F {
        match self {
            Learnable::Prelu => {
                if x > F::zero() {
                    dp[0] = F::zero();
                    F::one()
                } else {
                    dp[0] = x;
                    p[0]
                }
            }
            Learnable::SwishBeta => {
                // s (1 + beta x (1 - s)), as SiLU's derivative with beta = 1; d/dbeta = x^2 s (1 - s).
                let bx = p[0] * x;
                let (s, one_minus_s) = logistic(bx);
                dp[0] = x * x * s * one_minus_s;
                s * (F::one() + bx * one_minus_s)
            }
            Learnable::Pau => {
                let t = pau_terms(x, p);
                for (d, power) in dp[..PAU_NUMERATOR].iter_mut().zip(t.powers) {
                    *d = power / t.q;
                }
                for (k, d) in dp[PAU_NUMERATOR..].iter_mut().enumerate() {
                    // sign(0) taken as +1, so that a coefficient at 0 can move.
                    let sign = if p[PAU_NUMERATOR + k] < F::zero() {
                        -F::one()
                    } else {
                        F::one()
                    };
                    *d = -sign * t.powers[k + 1].abs() * t.value / t.q;
                }
                (t.dp - t.dq * t.value) / t.q
            }
        }
    }
}

/// One evaluation of PAU, every quantity divided by `|x|^4` when `|x| > 1` (the ratios are
/// unchanged, and no power of x above the first is formed, so nothing overflows for finite x:
/// x^5 would overflow f32 above about 5e7).
struct PauTerms<F> {
    value: F,
    /// Q, scaled.
    q: F,
    /// dP/dx and dQ/dx, scaled.
    dp: F,
    dq: F,
    /// x^j for j = 0..=5, scaled.
    powers: [F; PAU_NUMERATOR],
}

/// PAU's value alone, scaled as [`pau_terms`] scales.
#[inline(always)]
fn pau_value<F: Real>(x: F, p: &[F]) -> F {
    let (a, b) = p.split_at(PAU_NUMERATOR);
    let one = F::one();
    let u = x.abs();
    if u > one {
        // P / |x|^4 and Q / |x|^4 in powers of r = 1 / |x| (Horner), the x^5 term as x.
        let r = one / u;
        let sign = if x < F::zero() { -one } else { one };
        let even = a[4] + r * r * (a[2] + r * r * a[0]);
        let odd = sign * (r * (a[3] + r * r * a[1]));
        let numerator = even + odd + a[5] * x;
        let q = b[3].abs() + r * (b[2].abs() + r * (b[1].abs() + r * (b[0].abs() + r)));
        numerator / q
    } else {
        let mut numerator = a[5];
        for j in (0..5).rev() {
            numerator = numerator * x + a[j];
        }
        let mut q = b[3].abs();
        for k in (0..3).rev() {
            q = q * u + b[k].abs();
        }
        numerator / (q * u + one)
    }
}

#[inline(always)]
fn pau_terms<F: Real>(x: F, p: &[F]) -> PauTerms<F> {
    let (a, b) = p.split_at(PAU_NUMERATOR);
    let one = F::one();
    let sign = if x < F::zero() { -one } else { one };
    let u = x.abs();
    // abs_powers[j] = |x|^j / s, with s = 1 for |x| <= 1 and |x|^4 above: then r^(4 - j) for
    // j <= 4 (r = 1 / |x|) and |x| for j = 5.
    let mut abs_powers = [one; PAU_NUMERATOR];
    if u > one {
        let r = one / u;
        abs_powers = [r * r * r * r, r * r * r, r * r, r, one, u];
    } else {
        for j in 1..PAU_NUMERATOR {
            abs_powers[j] = abs_powers[j - 1] * u;
        }
    }
    let signed = |j: usize| {
        if j % 2 == 1 {
            sign * abs_powers[j]
        } else {
            abs_powers[j]
        }
    };
    let powers: [F; PAU_NUMERATOR] = std::array::from_fn(signed);
    let (mut numerator, mut dp) = (F::zero(), F::zero());
    for j in 0..PAU_NUMERATOR {
        numerator = numerator + a[j] * powers[j];
        if j > 0 {
            // d x^j / dx = j x^(j - 1), scaled as x^(j - 1) is.
            dp = dp + F::constant(j as f64) * a[j] * signed(j - 1);
        }
    }
    // Q / s = 1 / s + sum |b_k| |x|^k / s; 1 / s is abs_powers[0].
    let (mut q, mut dq) = (abs_powers[0], F::zero());
    for k in 1..=PAU_DENOMINATOR {
        let b = b[k - 1].abs();
        q = q + b * abs_powers[k];
        dq = dq + F::constant(k as f64) * b * abs_powers[k - 1];
    }
    PauTerms {
        value: numerator / q,
        q,
        dp,
        dq: sign * dq,
        powers,
    }
}

/// `f(x; params)` with autograd to `x` and `params`: x `[B, N]` or `[M, B, N]`, params
/// `[U, P]` or `[M, U, P]` with U = N (a unit per neuron) or U = 1 (one for the layer).
pub fn learnable(kind: Learnable, x: &Tensor, params: &Tensor) -> Result<Tensor> {
    let (x3, p3, single) = as_stacks(kind, x, params)?;
    let y = x3
        .contiguous()?
        .apply_op2(&p3.contiguous()?, Forward(kind))?;
    if single {
        y.squeeze(0)
    } else {
        Ok(y)
    }
}

/// The gradients of [`learnable`] to `x` and to `params` for the upstream gradient `grad_y`,
/// computed directly (the kernel the op's own backward runs).
pub fn learnable_grads(
    kind: Learnable,
    x: &Tensor,
    params: &Tensor,
    grad_y: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (x3, p3, _) = as_stacks(kind, x, params)?;
    let (x3, p3) = (x3.contiguous()?, p3.contiguous()?);
    let g3 = grad_y.reshape(x3.shape())?.contiguous()?;
    let (grad_x, grad_p) = if x.device().is_cpu() {
        let both = x3.apply_op3_no_bwd(&p3, &g3, &Backward(kind))?;
        let n = x3.elem_count();
        (
            both.narrow(0, 0, n)?.reshape(x3.shape())?,
            both.narrow(0, n, p3.elem_count())?.reshape(p3.shape())?,
        )
    } else {
        let grad_x = x3.apply_op3_no_bwd(&p3, &g3, &GpuGrad::<false>(kind))?;
        // [M, N, P]: one sum per column; a shared unit adds its columns.
        let per_column = x3.apply_op3_no_bwd(&p3, &g3, &GpuGrad::<true>(kind))?;
        let grad_p = match (p3.dim(1)?, x.device()) {
            // A shared unit adds its columns, in f64 where the device has it (as the CPU does).
            (1, candle_core::Device::Cuda(_)) => per_column
                .to_dtype(DType::F64)?
                .sum_keepdim(1)?
                .to_dtype(x3.dtype())?,
            (1, _) => per_column.sum_keepdim(1)?,
            _ => per_column,
        };
        (grad_x, grad_p)
    };
    Ok((grad_x.reshape(x.shape())?, grad_p.reshape(params.shape())?))
}

/// x as `[M, B, N]` and params as `[M, U, P]` (a leading model dimension added to single
/// tensors), checked against each other.
fn as_stacks(kind: Learnable, x: &Tensor, params: &Tensor) -> Result<(Tensor, Tensor, bool)> {
    let (x3, p3, single) = match (x.rank(), params.rank()) {
        (2, 2) => (x.unsqueeze(0)?, params.unsqueeze(0)?, true),
        (3, 3) => (x.clone(), params.clone(), false),
        _ => bail!(
            "{kind:?}: x [B, N] with params [U, P], or x [M, B, N] with params [M, U, P]; got {:?} and {:?}",
            x.dims(),
            params.dims()
        ),
    };
    let (m, _, n) = x3.dims3()?;
    let (pm, u, p) = p3.dims3()?;
    if pm != m || !(u == n || u == 1) || p != kind.params() {
        bail!(
            "{kind:?}: params must be [{m}, {n} or 1, {}] for x {:?}, got {:?}",
            kind.params(),
            x.dims(),
            params.dims()
        );
    }
    if x3.dtype() != p3.dtype() {
        bail!(
            "{kind:?}: x is {:?} but params are {:?}",
            x3.dtype(),
            p3.dtype()
        );
    }
    Ok((x3, p3, single))
}

/// PReLU: [`learnable`] with [`Learnable::Prelu`] (slopes `[.., N, 1]` or the squeezed `[.., N]`).
pub fn prelu(x: &Tensor, slopes: &Tensor) -> Result<Tensor> {
    learnable(Learnable::Prelu, x, &slopes.unsqueeze(slopes.rank())?)
}

/// Swish-beta: [`learnable`] with [`Learnable::SwishBeta`] (betas `[.., N]`).
pub fn swish_beta(x: &Tensor, betas: &Tensor) -> Result<Tensor> {
    learnable(Learnable::SwishBeta, x, &betas.unsqueeze(betas.rank())?)
}

/// PAU: [`learnable`] with [`Learnable::Pau`] (coefficients `[.., U, 10]`).
pub fn pau(x: &Tensor, coefficients: &Tensor) -> Result<Tensor> {
    learnable(Learnable::Pau, x, coefficients)
}

/// The same functions composed from candle's own ops (x `[M, B, N]`, params `[M, U, P]`):
/// slow, but they spell out the math, and the tests compare the fused ops against them. PAU
/// is written directly (`x^5` overflows f32 above about 5e7: compare at moderate inputs).
pub fn learnable_slow(kind: Learnable, x: &Tensor, params: &Tensor) -> Result<Tensor> {
    // [M, 1, U] columns of parameter j, broadcast over the batch.
    let column = |j: usize| -> Result<Tensor> { params.narrow(2, j, 1)?.squeeze(2)?.unsqueeze(1) };
    match kind {
        Learnable::Prelu => {
            let negative = x.minimum(0.0)?.broadcast_mul(&column(0)?)?;
            x.relu()? + negative
        }
        Learnable::SwishBeta => {
            let bx = x.broadcast_mul(&column(0)?)?;
            x * candle_nn::ops::sigmoid(&bx)?
        }
        Learnable::Pau => pau_slow(x, params),
    }
}

/// PReLU from candle ops.
pub fn prelu_slow(x: &Tensor, slopes: &Tensor) -> Result<Tensor> {
    learnable_slow(Learnable::Prelu, x, &slopes.unsqueeze(slopes.rank())?)
}

/// Swish-beta from candle ops.
pub fn swish_beta_slow(x: &Tensor, betas: &Tensor) -> Result<Tensor> {
    learnable_slow(Learnable::SwishBeta, x, &betas.unsqueeze(betas.rank())?)
}

/// PAU from candle ops: `P(x) / (1 + sum |b_k| |x|^k)` with the powers formed directly.
pub fn pau_slow(x: &Tensor, coefficients: &Tensor) -> Result<Tensor> {
    let column =
        |j: usize| -> Result<Tensor> { coefficients.narrow(2, j, 1)?.squeeze(2)?.unsqueeze(1) };
    let mut numerator = column(0)?.broadcast_as(x.shape())?;
    let mut power = x.clone();
    for j in 1..PAU_NUMERATOR {
        numerator = (numerator + power.broadcast_mul(&column(j)?)?)?;
        power = (power * x)?;
    }
    let u = x.abs()?;
    let mut denominator = x.ones_like()?;
    let mut power = u.clone();
    for k in 0..PAU_DENOMINATOR {
        denominator = (denominator + power.broadcast_mul(&column(PAU_NUMERATOR + k)?.abs()?)?)?;
        power = (power * &u)?;
    }
    numerator / denominator
}

/// The unit of column `n` when there are `units` units (n itself, or the one shared unit).
#[inline(always)]
fn unit_of(n: usize, units: usize) -> usize {
    if units == 1 {
        0
    } else {
        n
    }
}

fn contiguous<'a, F: candle_core::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [F]> {
    let data = storage.as_slice::<F>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{what} must be contiguous"),
    }
}

/// Runs `$body` with `$k` a constant of the kind `$kind` holds, so that each kind's loop is
/// compiled on its own, the per-element match folded away.
macro_rules! for_kind {
    ($kind:expr, $k:ident => $body:expr) => {
        match $kind {
            Learnable::Prelu => {
                const $k: Learnable = Learnable::Prelu;
                $body
            }
            Learnable::SwishBeta => {
                const $k: Learnable = Learnable::SwishBeta;
                $body
            }
            Learnable::Pau => {
                const $k: Learnable = Learnable::Pau;
                $body
            }
        }
    };
}

struct Forward(Learnable);

impl Forward {
    fn run<F: Real + candle_core::WithDType>(
        &self,
        x: &[F],
        p: &[F],
        dims: (usize, usize, usize, usize),
    ) -> Vec<F> {
        forward_rows(self.0, x, p, dims)
    }
}

fn forward_rows<F: Real>(
    kind: Learnable,
    x: &[F],
    p: &[F],
    (m, b, n, u): (usize, usize, usize, usize),
) -> Vec<F> {
    let k = kind.params();
    let mut y = vec![F::zero(); m * b * n];
    // PAU runs in lanes over a model's coefficients laid out parameter by parameter.
    let pau_coefficients: Vec<Vec<F>> = match kind {
        Learnable::Pau => (0..m)
            .map(|model| coefficients_by_parameter(&p[model * u * k..][..u * k], k, n))
            .collect(),
        _ => Vec::new(),
    };
    y.par_chunks_mut(n.max(1))
        .zip(x.par_chunks(n.max(1)))
        .enumerate()
        .for_each(|(row, (y, x))| {
            let model = row / b.max(1);
            match kind {
                Learnable::Pau => pau_values_row(x, &pau_coefficients[model], y),
                _ => forward_row(kind, x, &p[model * u * k..][..u * k], y),
            }
        });
    y
}

/// One model's coefficients for its `width` columns laid out parameter by parameter
/// (`[j * width + c]`), from `params` of one unit (shared) or one unit per column
/// (`[column * k + j]`).
fn coefficients_by_parameter<F: Real>(params: &[F], k: usize, width: usize) -> Vec<F> {
    let shared = params.len() == k;
    (0..k * width)
        .map(|i| {
            let (j, c) = (i / width, i % width);
            if shared {
                params[j]
            } else {
                params[c * k + j]
            }
        })
        .collect()
}

simd_variants! {
/// PAU's values of one row, [`PAU_LANES`] columns at a time: exactly [`pau_value`], operation
/// for operation, with both of its cases computed and one selected, so that the lanes run in
/// SIMD (a lane gives the bits the scalar code gives).
fn pau_values_row<F: Real>(x: &[F], coefficients: &[F], y: &mut [F]) {
    let width = x.len();
    let (one, zero) = (F::one(), F::zero());
    macro_rules! lanes {
        ($l:ident => $e:expr) => {
            std::array::from_fn::<F, PAU_LANES, _>(|$l| $e)
        };
    }
    for start in (0..width).step_by(PAU_LANES) {
        let used = PAU_LANES.min(width - start);
        let (xs, p) = lane_inputs(x, coefficients, start, used);
        let a = |j: usize| &p[j];
        let b = |k: usize| lanes!(l => p[PAU_NUMERATOR + k][l].abs());
        let u = lanes!(l => xs[l].abs());
        // |x| > 1: P / |x|^4 and Q / |x|^4 in powers of r = 1 / |x| (Horner), x^5 as x.
        let r = lanes!(l => one / u[l]);
        let sign = lanes!(l => if xs[l] < zero { -one } else { one });
        let rr = lanes!(l => r[l] * r[l]);
        let even = lanes!(l => a(4)[l] + rr[l] * (a(2)[l] + rr[l] * a(0)[l]));
        let odd = lanes!(l => sign[l] * (r[l] * (a(3)[l] + rr[l] * a(1)[l])));
        let large_numerator = lanes!(l => even[l] + odd[l] + a(5)[l] * xs[l]);
        let (b0, b1, b2, b3) = (b(0), b(1), b(2), b(3));
        let large_q = lanes!(l => b3[l] + r[l] * (b2[l] + r[l] * (b1[l] + r[l] * (b0[l] + r[l]))));
        // |x| <= 1: Horner in x.
        let mut numerator = *a(5);
        for j in (0..5).rev() {
            numerator = lanes!(l => numerator[l] * xs[l] + a(j)[l]);
        }
        let mut q = b3;
        for bk in [b2, b1, b0] {
            q = lanes!(l => q[l] * u[l] + bk[l]);
        }
        let small_q = lanes!(l => q[l] * u[l] + one);
        let values = lanes!(l => if u[l] > one {
            large_numerator[l] / large_q[l]
        } else {
            numerator[l] / small_q[l]
        });
        y[start..start + used].copy_from_slice(&values[..used]);
    }
}}

/// `PAU_LANES` inputs from `start` (`used` of them, the rest zeros: x = 0 with zero
/// coefficients gives Q = 1, no division by zero) and the coefficients of those columns.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn lane_inputs<F: Real>(
    x: &[F],
    coefficients: &[F],
    start: usize,
    used: usize,
) -> (
    [F; PAU_LANES],
    [[F; PAU_LANES]; PAU_NUMERATOR + PAU_DENOMINATOR],
) {
    let width = x.len();
    let mut xs = [F::zero(); PAU_LANES];
    xs[..used].copy_from_slice(&x[start..start + used]);
    let mut p = [[F::zero(); PAU_LANES]; PAU_NUMERATOR + PAU_DENOMINATOR];
    for (j, lanes) in p.iter_mut().enumerate() {
        lanes[..used].copy_from_slice(&coefficients[j * width + start..][..used]);
    }
    (xs, p)
}

simd_variants! {
/// One row: `params` one unit's (shared) or one per column.
fn forward_row<F: Real>(kind: Learnable, x: &[F], params: &[F], y: &mut [F]) {
    for_kind!(kind, KIND => {
        let k = KIND.params();
        if params.len() == k {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = KIND.value(x, params);
            }
        } else {
            for ((y, &x), p) in y.iter_mut().zip(x).zip(params.chunks_exact(k)) {
                *y = KIND.value(x, p);
            }
        }
    })
}}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "learnable-activation"
    }

    gpu_paths!(op2, LEARNABLE_FWD, |op: &Self| Scalars::Learnable(op.0));

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, b, n) = xl.shape().dims3()?;
        let u = pl.shape().dims3()?.1;
        let dims = (m, b, n, u);
        let out = match candle_core::backend::BackendStorage::dtype(xs) {
            DType::F32 => CpuStorage::F32(self.run(
                contiguous::<f32>(xs, xl, "x")?,
                contiguous::<f32>(ps, pl, "params")?,
                dims,
            )),
            DType::F64 => CpuStorage::F64(self.run(
                contiguous::<f64>(xs, xl, "x")?,
                contiguous::<f64>(ps, pl, "params")?,
                dims,
            )),
            other => bail!("learnable activations take f32 or f64, got {other:?}"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gp) = learnable_grads(self.0, x, params, grad_res)?;
        Ok((Some(gx), Some(gp)))
    }
}

simd_variants! {
/// One model's columns `cols` over all its rows (`x` and `g` `[B, N]`): grad_x of the block,
/// row by row, and per column its parameter gradient, summed over the rows in order in f64.
fn backward_block<F: Real>(
    kind: Learnable,
    (x, g): (&[F], &[F]),
    params: &[F],
    (n, cols): (usize, std::ops::Range<usize>),
) -> (Vec<F>, Vec<f64>) {
    for_kind!(kind, KIND => {
        let k = KIND.params();
        let shared = params.len() == k;
        let width = cols.len();
        let rows = x.len() / n.max(1);
        if KIND == Learnable::Pau {
            return pau_backward_block((x, g), params, (n, cols));
        }
        let mut grad_x = vec![F::zero(); rows * width];
        let mut sums = vec![0f64; width * k];
        let mut dp = [F::zero(); PAU_NUMERATOR + PAU_DENOMINATOR];
        // One parameter per unit (PReLU, Swish-beta): the derivatives of a row's block in one
        // loop into `slopes` and `dps`, then the sums, so that the first loop vectorises.
        let (mut slopes, mut dps) = (vec![F::zero(); width], vec![F::zero(); width]);
        for row in 0..rows {
            let at = row * n + cols.start;
            let (x, g) = (&x[at..at + width], &g[at..at + width]);
            let out = &mut grad_x[row * width..(row + 1) * width];
            if k == 1 && !shared {
                let p = &params[cols.start..cols.end];
                for (((slope, d), &x), p) in slopes.iter_mut().zip(&mut dps).zip(x).zip(p) {
                    let mut one = [F::zero()];
                    *slope = KIND.derivatives(x, std::slice::from_ref(p), &mut one);
                    *d = one[0];
                }
                for c in 0..width {
                    out[c] = g[c] * slopes[c];
                    sums[c] += wide(g[c]) * wide(dps[c]);
                }
                continue;
            }
            for c in 0..width {
                let p = if shared { params } else { &params[(cols.start + c) * k..][..k] };
                let dydx = KIND.derivatives(x[c], p, &mut dp[..k]);
                out[c] = g[c] * dydx;
                for (sum, &d) in sums[c * k..(c + 1) * k].iter_mut().zip(&dp[..k]) {
                    *sum += wide(g[c]) * wide(d);
                }
            }
        }
        (grad_x, sums)
    })
}}

/// Columns PAU's row path computes at once (fixed-size arrays, so that the loop over them
/// compiles to SIMD lanes without bounds checks).
const PAU_LANES: usize = 16;

/// [`backward_block`] for PAU: [`PAU_LANES`] columns at a time, their coefficients loaded
/// once, each row's derivatives computed in SIMD lanes ([`pau_lanes`]) and each parameter's
/// gradient summed over the rows in order in f64, in lanes too: the sums of the scalar code,
/// in the same order.
#[inline(always)]
fn pau_backward_block<F: Real>(
    (x, g): (&[F], &[F]),
    params: &[F],
    (n, cols): (usize, std::ops::Range<usize>),
) -> (Vec<F>, Vec<f64>) {
    const P: usize = PAU_NUMERATOR + PAU_DENOMINATOR;
    let shared = params.len() == P;
    let width = cols.len();
    let rows = x.len() / n.max(1);
    let mut grad_x = vec![F::zero(); rows * width];
    let mut sums = vec![0f64; width * P];
    for start in (0..width).step_by(PAU_LANES) {
        // A last chunk narrower than the lanes is padded with x = 0, zero coefficients (Q = 1,
        // no division by zero) and a zero gradient; its extra lanes are dropped.
        let used = PAU_LANES.min(width - start);
        let p: [[F; PAU_LANES]; P] = std::array::from_fn(|j| {
            std::array::from_fn(|l| match (l < used, shared) {
                (false, _) => F::zero(),
                (true, true) => params[j],
                (true, false) => params[(cols.start + start + l) * P + j],
            })
        });
        let mut lane_sums = [[0f64; PAU_LANES]; P];
        for row in 0..rows {
            let at = row * n + cols.start + start;
            let (mut xs, mut gs) = ([F::zero(); PAU_LANES], [F::zero(); PAU_LANES]);
            xs[..used].copy_from_slice(&x[at..at + used]);
            gs[..used].copy_from_slice(&g[at..at + used]);
            let (dydx, d) = pau_lanes(&xs, &p);
            let out: [F; PAU_LANES] = std::array::from_fn(|l| gs[l] * dydx[l]);
            grad_x[row * width + start..][..used].copy_from_slice(&out[..used]);
            for (sums, d) in lane_sums.iter_mut().zip(&d) {
                for l in 0..PAU_LANES {
                    sums[l] += wide(gs[l]) * wide(d[l]);
                }
            }
        }
        for (j, lanes) in lane_sums.iter().enumerate() {
            for (l, &sum) in lanes[..used].iter().enumerate() {
                sums[(start + l) * P + j] = sum;
            }
        }
    }
    (grad_x, sums)
}

/// PAU's df/dx and df/dp (`[parameter][lane]`) at [`PAU_LANES`] inputs, each lane with its
/// own coefficients (`p[parameter][lane]`): exactly [`pau_terms`] and
/// [`Learnable::derivatives`], operation for operation, but with both of `pau_terms`' cases
/// computed and one selected, so that every step is one operation over all lanes (SIMD; the
/// divisions are most of PAU's cost, and a lane gives the bits the scalar code gives).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn pau_lanes<F: Real>(
    xs: &[F; PAU_LANES],
    p: &[[F; PAU_LANES]; PAU_NUMERATOR + PAU_DENOMINATOR],
) -> (
    [F; PAU_LANES],
    [[F; PAU_LANES]; PAU_NUMERATOR + PAU_DENOMINATOR],
) {
    const P: usize = PAU_NUMERATOR + PAU_DENOMINATOR;
    let (one, zero) = (F::one(), F::zero());
    // Each step one operation over all lanes (small loops that compile to SIMD).
    macro_rules! lanes {
        ($l:ident => $e:expr) => {
            std::array::from_fn::<F, PAU_LANES, _>(|$l| $e)
        };
    }
    let sign = lanes!(l => if xs[l] < zero { -one } else { one });
    let u = lanes!(l => xs[l].abs());
    // Both cases of pau_terms' abs_powers, then the one that applies.
    let r = lanes!(l => one / u[l]);
    let (r2, u2) = (lanes!(l => r[l] * r[l]), lanes!(l => u[l] * u[l]));
    let (r3, u3) = (lanes!(l => r2[l] * r[l]), lanes!(l => u2[l] * u[l]));
    let (r4, u4) = (lanes!(l => r3[l] * r[l]), lanes!(l => u3[l] * u[l]));
    let u5 = lanes!(l => u4[l] * u[l]);
    let pick = |above: &[F; PAU_LANES], below: &[F; PAU_LANES]| -> [F; PAU_LANES] {
        lanes!(l => if u[l] > one { above[l] } else { below[l] })
    };
    let ones = [one; PAU_LANES];
    let abs_powers = [
        pick(&r4, &ones),
        pick(&r3, &u),
        pick(&r2, &u2),
        pick(&r, &u3),
        pick(&ones, &u4),
        pick(&u, &u5),
    ];
    let powers: [[F; PAU_LANES]; PAU_NUMERATOR] = std::array::from_fn(|j| {
        if j % 2 == 1 {
            lanes!(l => sign[l] * abs_powers[j][l])
        } else {
            abs_powers[j]
        }
    });
    let (mut numerator, mut dpdx) = ([zero; PAU_LANES], [zero; PAU_LANES]);
    for j in 0..PAU_NUMERATOR {
        numerator = lanes!(l => numerator[l] + p[j][l] * powers[j][l]);
        if j > 0 {
            let jf = F::constant(j as f64);
            dpdx = lanes!(l => dpdx[l] + jf * p[j][l] * powers[j - 1][l]);
        }
    }
    let (mut q, mut dq) = (abs_powers[0], [zero; PAU_LANES]);
    for k in 1..=PAU_DENOMINATOR {
        let b = lanes!(l => p[PAU_NUMERATOR + k - 1][l].abs());
        let kf = F::constant(k as f64);
        q = lanes!(l => q[l] + b[l] * abs_powers[k][l]);
        dq = lanes!(l => dq[l] + kf * b[l] * abs_powers[k - 1][l]);
    }
    let dq = lanes!(l => sign[l] * dq[l]);
    let value = lanes!(l => numerator[l] / q[l]);
    let mut d = [[zero; PAU_LANES]; P];
    for j in 0..PAU_NUMERATOR {
        d[j] = lanes!(l => powers[j][l] / q[l]);
    }
    for k in 0..PAU_DENOMINATOR {
        let b = &p[PAU_NUMERATOR + k];
        d[PAU_NUMERATOR + k] = lanes!(l => {
            let sign = if b[l] < zero { -one } else { one };
            -sign * powers[k + 1][l].abs() * value[l] / q[l]
        });
    }
    let dy = lanes!(l => (dpdx[l] - dq[l] * value[l]) / q[l]);
    (dy, d)
}

#[inline(always)]
fn wide<F: Real>(v: F) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

/// Columns per parallel task of the backward pass.
const COLUMN_BLOCK: usize = 32;

struct Backward(Learnable);

impl Backward {
    /// `[grad_x (M B N values), grad_params (M U P values)]`.
    fn run<F: Real + candle_core::WithDType>(
        &self,
        x: &[F],
        p: &[F],
        g: &[F],
        dims: (usize, usize, usize, usize),
    ) -> Vec<F> {
        backward_blocks(self.0, x, p, g, dims)
    }
}

fn backward_blocks<F: Real>(
    kind: Learnable,
    x: &[F],
    p: &[F],
    g: &[F],
    (m, b, n, u): (usize, usize, usize, usize),
) -> Vec<F> {
    let k = kind.params();
    let blocks = n.div_ceil(COLUMN_BLOCK);
    // Per (model, column block): the block's grad_x, row by row, and per column its
    // parameter gradient summed over the rows in order, in f64.
    let parts: Vec<(Vec<F>, Vec<f64>)> = (0..m * blocks)
        .into_par_iter()
        .map(|task| {
            let (model, block) = (task / blocks, task % blocks);
            let cols = block * COLUMN_BLOCK..((block + 1) * COLUMN_BLOCK).min(n);
            let at = model * b * n;
            let rows = (&x[at..at + b * n], &g[at..at + b * n]);
            backward_block(kind, rows, &p[model * u * k..][..u * k], (n, cols))
        })
        .collect();
    let mut out = vec![F::zero(); m * b * n + m * u * k];
    let (grad_x, grad_p) = out.split_at_mut(m * b * n);
    let mut unit_sums = vec![0f64; m * u * k];
    for (task, (block_grad, sums)) in parts.into_iter().enumerate() {
        let (model, block) = (task / blocks, task % blocks);
        let start = block * COLUMN_BLOCK;
        let width = sums.len() / k.max(1);
        for row in 0..b {
            let at = (model * b + row) * n + start;
            grad_x[at..at + width].copy_from_slice(&block_grad[row * width..][..width]);
        }
        // Columns in order: a shared unit's sum adds them one after the other.
        for c in 0..width {
            let unit = unit_of(start + c, u);
            for j in 0..k {
                unit_sums[(model * u + unit) * k + j] += sums[c * k + j];
            }
        }
    }
    for (out, sum) in grad_p.iter_mut().zip(unit_sums) {
        *out = F::constant(sum);
    }
    out
}

impl CustomOp3 for Backward {
    fn name(&self) -> &'static str {
        "learnable-activation-grads"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, b, n) = xl.shape().dims3()?;
        let u = pl.shape().dims3()?.1;
        if gl.dims() != xl.dims() {
            bail!("grad_y has shape {:?} but x has {:?}", gl.dims(), xl.dims());
        }
        let dims = (m, b, n, u);
        let out = match candle_core::backend::BackendStorage::dtype(xs) {
            DType::F32 => CpuStorage::F32(self.run(
                contiguous::<f32>(xs, xl, "x")?,
                contiguous::<f32>(ps, pl, "params")?,
                contiguous::<f32>(gs, gl, "grad_y")?,
                dims,
            )),
            DType::F64 => CpuStorage::F64(self.run(
                contiguous::<f64>(xs, xl, "x")?,
                contiguous::<f64>(ps, pl, "params")?,
                contiguous::<f64>(gs, gl, "grad_y")?,
                dims,
            )),
            other => bail!("learnable activations take f32 or f64, got {other:?}"),
        };
        let len = m * b * n + m * u * self.0.params();
        Ok((out, Shape::from(len)))
    }
}

/// The backward pass on a GPU, two kernels: grad-x `[M, B, N]` (`GpuGrad::<false>`) and the
/// parameter gradients, one sum per column `[M, N, P]` (`GpuGrad::<true>`). The CPU computes both
/// in one pass ([`Backward`]), so these ops have no CPU path.
#[cfg_attr(not(any(feature = "cuda", feature = "metal")), allow(dead_code))]
struct GpuGrad<const PARAMS: bool>(Learnable);

impl<const PARAMS: bool> CustomOp3 for GpuGrad<PARAMS> {
    fn name(&self) -> &'static str {
        if PARAMS {
            "learnable-activation-grad-params"
        } else {
            "learnable-activation-grad-x"
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!(
            "internal error: {} runs on GPUs only (the CPU runs learnable-activation-grads)",
            self.name()
        )
    }

    gpu_paths!(
        op3,
        if PARAMS {
            LEARNABLE_GRAD_P
        } else {
            LEARNABLE_GRAD_X
        },
        |op: &Self| Scalars::Learnable(op.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused forward and backward passes give the bits of the scalar formulas
    /// (Learnable::value and Learnable::derivatives per element, each parameter's gradient summed over the rows in order in f64, a shared
    /// unit's columns then in order): the lane paths compute the same operations.
    #[test]
    fn fused_passes_give_the_scalar_formulas_bits() {
        let (b, n) = (37, 70);
        // Inputs across both of PAU's cases, its boundary |x| = 1, zeros, tails, NaN.
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            1.0000001,
            -0.9999999,
            1e-30,
            3e4,
            -1e30,
            f32::NAN,
        ];
        let x: Vec<f32> = (0..b * n)
            .map(|i| match i % 7 {
                0 => special[(i / 7) % special.len()],
                _ => ((i * 7919) % 2000) as f32 / 250.0 - 4.0,
            })
            .collect();
        let g: Vec<f32> = (0..b * n)
            .map(|i| ((i * 104729) % 997) as f32 / 997.0 - 0.5)
            .collect();
        for kind in [Learnable::Prelu, Learnable::SwishBeta, Learnable::Pau] {
            let k = kind.params();
            for units in [n, 1] {
                let params: Vec<f32> = (0..units * k)
                    .map(|i| match kind {
                        Learnable::Pau if i % 11 == 3 => 0.0,
                        Learnable::Pau => {
                            PAU_LEAKY_RELU_INIT[i % k] as f32 * (0.6 + (i % 5) as f32 * 0.2)
                        }
                        _ => 0.1 + (i % 13) as f32 * 0.1,
                    })
                    .collect();
                let values = forward_rows(kind, &x, &params, (1, b, n, units));
                for (i, (&got, &x)) in values.iter().zip(&x).enumerate() {
                    let want = kind.value(x, &params[unit_of(i % n, units) * k..][..k]);
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{kind:?} units {units} y[{i}] at x = {x}: {got} vs the scalar {want}"
                    );
                }
                let got = backward_blocks(kind, &x, &params, &g, (1, b, n, units));
                let mut want_x = vec![0f32; b * n];
                let mut sums = vec![0f64; n * k];
                let mut dp = [0f32; PAU_NUMERATOR + PAU_DENOMINATOR];
                for row in 0..b {
                    for c in 0..n {
                        let p = &params[unit_of(c, units) * k..][..k];
                        let i = row * n + c;
                        want_x[i] = g[i] * kind.derivatives(x[i], p, &mut dp[..k]);
                        for j in 0..k {
                            sums[c * k + j] += g[i] as f64 * dp[j] as f64;
                        }
                    }
                }
                let mut want_p = vec![0f64; units * k];
                for c in 0..n {
                    for j in 0..k {
                        want_p[unit_of(c, units) * k + j] += sums[c * k + j];
                    }
                }
                // Bit for bit, but a NaN is any NaN (vector code may order a product's operands
                // the other way, which changes only a NaN's sign bit).
                let same =
                    |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                let want_p: Vec<f32> = want_p.into_iter().map(|v| v as f32).collect();
                let parts = [
                    ("grad_x", &got[..b * n], &want_x[..]),
                    ("grad_p", &got[b * n..], &want_p[..]),
                ];
                for (what, got, want) in parts {
                    assert_eq!(got.len(), want.len());
                    if let Some(i) = (0..got.len()).find(|&i| !same(got[i], want[i])) {
                        panic!(
                            "{kind:?} units {units} {what}[{i}]: {} vs the scalar {}",
                            got[i], want[i]
                        );
                    }
                }
            }
        }
    }
}
