//! Phase 2: each neuron applies its own fixed activation.
//!
//! ```text
//! x: [B, N] float, ids: [N] activation ids       y[b, n] = f_{ids[n]}(x[b, n])
//! (or a cohort of M models: x [M, B, N], ids [M, N], each model its own ids)
//! grad_x[b, n] = grad_y[b, n] * f'_{ids[n]}(x[b, n])
//! ```
//! Forward and grad-x are each one pass over the data that writes only the output.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::activation::Real;
use crate::activation::{specialise, Activation};
use crate::cpu::{
    float_dispatch, for_each_row_block, for_each_row_block_pair, model_rows, model_views, read_ids,
    same_dtype, ColumnPlan, KernelFloat, Matrix,
};
use crate::kernels::gpu_paths;
use crate::lanes::Lanes;

/// Applies activation `ids[n]` to column `n` of `x` (`[batch, neurons]`), with autograd to `x`.
///
/// `ids` is an integer tensor `[neurons]` (u8, u32 or i64) on the same device as `x`; each entry
/// is an [`Activation`] id. Wrong shapes, out-of-range ids and non-float `x` are errors.
pub fn per_neuron(x: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (x, ids) = device_ready(x, ids)?;
    x.apply_op2(&ids, PerNeuron)
}

/// The gradient of [`per_neuron`] to `x` for the upstream gradient `grad_y`, computed directly:
/// for callers that run their own backward pass instead of candle's autograd. It is the kernel
/// the op's own backward runs, so the two give the same bits.
pub fn per_neuron_grad(x: &Tensor, ids: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
    let (x, ids) = device_ready(x, ids)?;
    x.apply_op3_no_bwd(&ids, &gpu_ready(grad_y)?, &PerNeuronGradX)
}

/// [`per_neuron`] together with each element's derivative, `(y, f'(x))`, both `[batch, neurons]`,
/// for an explicit backward pass: the gradient to `x` is then `grad_y * slope`, one multiplication
/// instead of evaluating the functions again, with the bits of [`per_neuron_grad`] (which
/// multiplies the same two numbers). The slope is `None` where it is not built: GPUs, and half
/// types (computed in f32, a stored slope would be rounded); use [`per_neuron_grad`] there.
pub fn per_neuron_with_slope(x: &Tensor, ids: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    if !(x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)) {
        return Ok((per_neuron(x, ids)?, None));
    }
    let both = x.apply_op2_no_bwd(ids, &PerNeuronWithSlope)?;
    Ok((both.get(0)?, Some(both.get(1)?)))
}

/// The GPU kernels read contiguous data and u32 ids (a no-op when already so); the CPU kernels
/// follow any layout and integer type.
fn device_ready(x: &Tensor, ids: &Tensor) -> Result<(Tensor, Tensor)> {
    if x.device().is_cpu() {
        Ok((x.clone(), ids.clone()))
    } else {
        Ok((
            x.contiguous()?,
            ids.to_dtype(candle_core::DType::U32)?.contiguous()?,
        ))
    }
}

/// The GPU kernels read contiguous inputs; gradients can arrive as stride-0 broadcasts. On the
/// CPU the kernels follow any layout, so nothing is copied there.
pub(crate) fn gpu_ready(t: &Tensor) -> Result<Tensor> {
    if t.device().is_cpu() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

pub(crate) fn check_grad_shape(x_layout: &Layout, grad_layout: &Layout) -> Result<()> {
    if grad_layout.dims() != x_layout.dims() {
        bail!(
            "grad_y has shape {:?} but x has {:?}",
            grad_layout.dims(),
            x_layout.dims()
        );
    }
    Ok(())
}

/// The same function composed from candle's own ops and one mask per function: slow, but it
/// spells out the math, and the tests compare the fused op (values and gradients) against it.
pub fn per_neuron_slow(x: &Tensor, ids: &[Activation]) -> Result<Tensor> {
    let (_, neurons) = x.dims2()?;
    if ids.len() != neurons {
        bail!("ids has {} entries but x has {neurons} neurons", ids.len());
    }
    let mut y = x.zeros_like()?;
    for act in Activation::ALL {
        let mask: Vec<f64> = ids
            .iter()
            .map(|&a| if a == act { 1.0 } else { 0.0 })
            .collect();
        if mask.iter().all(|&m| m == 0.0) {
            continue;
        }
        let mask = Tensor::new(mask, x.device())?
            .to_dtype(x.dtype())?
            .unsqueeze(0)?;
        y = (y + activation_slow(act, x)?.broadcast_mul(&mask)?)?;
    }
    Ok(y)
}

/// One activation on a whole tensor with candle's own ops (the unfused reference).
pub fn activation_slow(act: Activation, x: &Tensor) -> Result<Tensor> {
    use crate::activation::{
        ELU_ALPHA, LEAKY_RELU_SLOPE, SELU_ALPHA, SELU_LAMBDA, SOFTPLUS_THRESHOLD,
    };
    // ln(1 + e^x) below the threshold, x above it; the exponent is capped so that the unused
    // branch stays finite (0 * inf in its gradient would be NaN). Computed in f64: candle has no
    // log1p, and ln(1 + u) in f32 loses all precision for u below 1e-7 (x below -16).
    let softplus = |x: &Tensor| -> Result<Tensor> {
        let wide = x.to_dtype(DType::F64)?;
        let smooth = (wide.minimum(SOFTPLUS_THRESHOLD)?.exp()? + 1.0)?.log()?;
        wide.gt(SOFTPLUS_THRESHOLD)?
            .where_cond(&wide, &smooth)?
            .to_dtype(x.dtype())
    };
    match act {
        Activation::Relu => x.relu(),
        Activation::Sigmoid => candle_nn::ops::sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, LEAKY_RELU_SLOPE),
        Activation::Elu => x.elu(ELU_ALPHA),
        // candle_nn::ops::selu builds f32 constants and so fails on f64 tensors.
        Activation::Selu => {
            let negative = x.exp()?.affine(SELU_ALPHA, -SELU_ALPHA)?;
            x.gt(0.0)?
                .where_cond(x, &negative)?
                .affine(SELU_LAMBDA, 0.0)
        }
        // x (1 + erf(x / sqrt 2)) / 2 from erf, whose gradient candle forms exactly; candle's
        // fused gelu_erf has the same value but a gradient with 1/sqrt(2 pi) cut to 0.398942.
        Activation::Gelu => {
            (x * (x.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?.erf()? + 1.0)?)?.affine(0.5, 0.0)
        }
        Activation::Silu => x.silu(),
        Activation::Mish => {
            let wide = x.to_dtype(DType::F64)?;
            (&wide * softplus(&wide)?.tanh()?)?.to_dtype(x.dtype())
        }
        Activation::Softplus => softplus(x),
        Activation::Identity => x.affine(1.0, 0.0),
    }
}

struct PerNeuron;

impl CustomOp2 for PerNeuron {
    fn name(&self) -> &'static str {
        "per-neuron-activation"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        ids: &CpuStorage,
        ids_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let models = Models::new(x_layout, ids_layout)?;
        let out = float_dispatch!(x, "x", |data| {
            let mut out = Vec::with_capacity(x_layout.shape().elem_count());
            for (x_view, ids_view) in models.views() {
                let ids = read_ids(ids, ids_view, models.cols)?;
                out.extend(forward_cpu(
                    &Matrix::new(data, x_view, "x")?,
                    &RowPlan::new(&ids),
                ));
            }
            out
        });
        Ok((out, x_layout.shape().clone()))
    }

    gpu_paths!(op2, crate::kernels::PER_NEURON_FWD, |_: &Self| {
        crate::kernels::Scalars::None
    });

    fn bwd(
        &self,
        x: &Tensor,
        ids: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(per_neuron_grad(x, ids, grad_y)?), None))
    }
}

/// `grad_x = grad_y * f'_{ids[n]}(x)`: a forward-only op, so each device path is one kernel.
struct PerNeuronGradX;

impl CustomOp3 for PerNeuronGradX {
    fn name(&self) -> &'static str {
        "per-neuron-activation-grad-x"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        ids: &CpuStorage,
        ids_layout: &Layout,
        grad_y: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_grad_shape(x_layout, grad_layout)?;
        let models = Models::new(x_layout, ids_layout)?;
        let grad_views = model_views(grad_layout, "grad_y")?;
        let out = float_dispatch!(x, "x", |data| {
            let grad = same_dtype(grad_y, "grad_y")?;
            let mut out = Vec::with_capacity(x_layout.shape().elem_count());
            for ((x_view, ids_view), grad_view) in models.views().zip(&grad_views) {
                let ids = read_ids(ids, ids_view, models.cols)?;
                out.extend(grad_x_cpu(
                    &Matrix::new(data, x_view, "x")?,
                    &Matrix::new(grad, grad_view, "grad_y")?,
                    &RowPlan::new(&ids),
                ));
            }
            out
        });
        Ok((out, x_layout.shape().clone()))
    }

    gpu_paths!(op3, crate::kernels::PER_NEURON_GRAD_X, |_: &Self| {
        crate::kernels::Scalars::None
    });
}

/// `[2, rows, cols]`: the values, then the derivatives (f32 and f64, CPU only).
struct PerNeuronWithSlope;

impl CustomOp2 for PerNeuronWithSlope {
    fn name(&self) -> &'static str {
        "per-neuron-activation-with-slope"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        ids: &CpuStorage,
        ids_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let models = Models::new(x_layout, ids_layout)?;
        // Every model's values, then every model's slopes: `[2, (M,) B, N]`.
        fn stacked<T: KernelFloat<Acc = T> + Real>(
            data: &[T],
            ids: &CpuStorage,
            models: &Models,
        ) -> Result<Vec<T>> {
            let (mut values, mut slopes) = (Vec::new(), Vec::new());
            for (x_view, ids_view) in models.views() {
                let ids = read_ids(ids, ids_view, models.cols)?;
                let both =
                    forward_with_slope_cpu(&Matrix::new(data, x_view, "x")?, &RowPlan::new(&ids));
                let (v, d) = both.split_at(both.len() / 2);
                values.extend_from_slice(v);
                slopes.extend_from_slice(d);
            }
            values.append(&mut slopes);
            Ok(values)
        }
        let out = match x {
            CpuStorage::F32(data) => CpuStorage::F32(stacked(data, ids, &models)?),
            CpuStorage::F64(data) => CpuStorage::F64(stacked(data, ids, &models)?),
            other => bail!(
                "per_neuron_with_slope: x must be f32 or f64, got {:?}",
                candle_core::backend::BackendStorage::dtype(other)
            ),
        };
        let mut dims = vec![2];
        dims.extend_from_slice(x_layout.dims());
        Ok((out, Shape::from(dims)))
    }
}

/// The models of a phase-2 op: x `[B, N]` with ids `[N]`, or x `[M, B, N]` with ids `[M, N]`.
struct Models {
    x: Vec<Layout>,
    ids: Vec<Layout>,
    cols: usize,
}

impl Models {
    fn new(x_layout: &Layout, ids_layout: &Layout) -> Result<Self> {
        let x = model_views(x_layout, "x")?;
        let ids = model_rows(ids_layout, x.len(), "ids")?;
        let cols = *x_layout.dims().last().unwrap_or(&0);
        Ok(Self { x, ids, cols })
    }

    fn views(&self) -> impl Iterator<Item = (&Layout, &Layout)> {
        self.x.iter().zip(&self.ids)
    }
}

fn forward_with_slope_cpu<T: KernelFloat<Acc = T> + Real>(
    x: &Matrix<T>,
    plan: &RowPlan<T>,
) -> Vec<T> {
    let n = x.rows * x.cols;
    let mut out = vec![T::zero(); 2 * n];
    let (values, slopes) = out.split_at_mut(n);
    for_each_row_block_pair(values, slopes, x.cols, |first_row, values, slopes| {
        forward_with_slope_rows(x, plan, first_row, values, slopes)
    });
    out
}

simd_variants! {
/// Rows `first_row..` of values and slopes, multiversioned like [`forward_rows`].
fn forward_with_slope_rows<T: KernelFloat<Acc = T> + Real>(
    x: &Matrix<T>,
    plan: &RowPlan<T>,
    first_row: usize,
    values: &mut [T],
    slopes: &mut [T],
) {
    let cols = x.cols;
    // One function for every unit of a dense block: one loop over the block, the same
    // computation per element as the row loop (narrow rows, a conv layer's few channels, would
    // pay the per-row dispatch for every handful of values).
    if let RowPlan::Runs(plan) = plan {
        let dense = x.dense_rows(first_row, values.len() / cols.max(1));
        if let (Some(act), Some(x)) = (plan.uniform(cols), dense) {
            specialise!(act, |a| {
                for ((y, s), &x) in values.iter_mut().zip(slopes.iter_mut()).zip(x) {
                    *y = a.value(x);
                    *s = a.derivative(x);
                }
            });
            return;
        }
    }
    // Narrow rows of mixed functions in a dense block: several rows per lanes loop.
    let mut first_row = first_row;
    let (mut values, mut slopes) = (values, slopes);
    if let RowPlan::Lanes(lanes) = plan {
        if let Some((tiled, k)) = &lanes.1 {
        let rows = values.len() / cols.max(1);
        let whole = rows / k * k;
        if let Some(dense) = x.dense_rows(first_row, whole) {
            let width = k * cols;
            let blocks = dense
                .chunks_exact(width)
                .zip(values[..whole * cols].chunks_exact_mut(width))
                .zip(slopes[..whole * cols].chunks_exact_mut(width));
            for ((x, y), s) in blocks {
                tiled.values_and_slopes(x, y, s);
            }
            first_row += whole;
            values = &mut values[whole * cols..];
            slopes = &mut slopes[whole * cols..];
        }
        }
    }
    let mut scratch = Vec::new();
    let rows = values
        .chunks_exact_mut(cols)
        .zip(slopes.chunks_exact_mut(cols));
    for (i, (y, slope)) in rows.enumerate() {
        let x = x.row(first_row + i, 0..cols, &mut scratch);
        match plan {
            RowPlan::Lanes(plan) => plan.0.values_and_slopes(x, y, slope),
            RowPlan::Runs(plan) => {
                for act in Activation::ALL {
                    specialise!(act, |a| {
                        for run in &plan.runs[act.id()] {
                            let r = run.clone();
                            let out = y[r.clone()].iter_mut().zip(&mut slope[r.clone()]);
                            for ((y, s), &x) in out.zip(&x[r]) {
                                *y = a.value(x);
                                *s = a.derivative(x);
                            }
                        }
                    })
                }
            }
        }
    }
}}

/// How the rows are computed: per-function loops over runs of neighbouring columns when each
/// function's neurons sit together (the loops are plain slice loops, each specialised for one
/// function), else one loop over the whole row with per-column coefficients ([`Lanes`]), which
/// needs no gather or scatter.
enum RowPlan<A> {
    /// Boxed: a plan holds a list per candidate, and one is built per op call.
    Runs(Box<ColumnPlan>),
    /// The row's lanes, and for rows narrower than [`TILE_MIN`] the same lanes repeated over
    /// enough rows to fill that width, with how many rows: a dense block is then computed that
    /// many rows per loop (every element with its own column's coefficients: the same bits).
    Lanes(Box<LanePlan<A>>),
}

/// A row's lanes, and the tiled ones with their rows per loop (see [`RowPlan::Lanes`]).
type LanePlan<A> = (Lanes<A>, Option<(Lanes<A>, usize)>);

/// The width below which a dense block's rows are taken several at a time by the lanes loop.
const TILE_MIN: usize = 64;

impl<A: Real> RowPlan<A> {
    fn new(ids: &[Activation]) -> Self {
        let plan = ColumnPlan::new(ids.iter().copied().map(Some));
        // One function for every unit is one run, however narrow the layer (a conv layer's 6
        // channels): its dense blocks then take one loop.
        if plan.any_scattered() && plan.uniform(ids.len()).is_none() {
            let tiled = (!ids.is_empty() && ids.len() < TILE_MIN).then(|| {
                let rows = TILE_MIN.div_ceil(ids.len());
                let repeated: Vec<Activation> = ids.repeat(rows);
                (Lanes::new(&repeated), rows)
            });
            RowPlan::Lanes(Box::new((Lanes::new(ids), tiled)))
        } else {
            RowPlan::Runs(Box::new(plan))
        }
    }
}

fn forward_cpu<T: KernelFloat>(x: &Matrix<T>, plan: &RowPlan<T::Acc>) -> Vec<T> {
    let cols = x.cols;
    let mut out = vec![T::narrow(num_traits::Zero::zero()); x.rows * cols];
    for_each_row_block(&mut out, cols, |first_row, block| {
        forward_rows(x, plan, first_row, block)
    });
    out
}

simd_variants! {
/// Rows `first_row..` of the forward pass into `block`, in the instruction-set variants of
/// [`simd_variants`](crate::simd_variants) (wide vectors where the CPU has them; the binary still runs everywhere).
fn forward_rows<T: KernelFloat>(
    x: &Matrix<T>,
    plan: &RowPlan<T::Acc>,
    first_row: usize,
    block: &mut [T],
) {
    let cols = x.cols;
    // One function for every unit of a dense block: one loop (see forward_with_slope_rows).
    if let RowPlan::Runs(plan) = plan {
        let dense = x.dense_rows(first_row, block.len() / cols.max(1));
        if let (Some(act), Some(x)) = (plan.uniform(cols), dense) {
            specialise!(act, |a| {
                for (y, x) in block.iter_mut().zip(x) {
                    *y = T::narrow(a.value(x.widen()));
                }
            });
            return;
        }
    }
    let (mut scratch, mut wide_x, mut wide_y) = (Vec::new(), Vec::new(), Vec::new());
    for (i, y) in block.chunks_exact_mut(cols).enumerate() {
        let x = x.row(first_row + i, 0..cols, &mut scratch);
        match plan {
            RowPlan::Lanes(plan) => match (&plan.0, T::as_acc(x), T::as_acc_mut(y)) {
                (lanes, Some(x), Some(y)) => lanes.values(x, y),
                // Half types: widen the row, compute, narrow.
                (lanes, _, None) => {
                    widen(x, &mut wide_x);
                    wide_y.resize(cols, num_traits::Zero::zero());
                    lanes.values(&wide_x, &mut wide_y);
                    narrow(&wide_y, y);
                }
                (_, None, Some(_)) => unreachable!("as_acc and as_acc_mut agree"),
            },
            RowPlan::Runs(plan) => {
                for act in Activation::ALL {
                    specialise!(act, |a| {
                        for run in &plan.runs[act.id()] {
                            for (y, x) in y[run.clone()].iter_mut().zip(&x[run.clone()]) {
                                *y = T::narrow(a.value(x.widen()));
                            }
                        }
                    })
                }
            }
        }
    }
}}

fn widen<T: KernelFloat>(row: &[T], wide: &mut Vec<T::Acc>) {
    wide.clear();
    wide.extend(row.iter().map(|v| v.widen()));
}

fn narrow<T: KernelFloat>(wide: &[T::Acc], row: &mut [T]) {
    for (out, v) in row.iter_mut().zip(wide) {
        *out = T::narrow(*v);
    }
}

fn grad_x_cpu<T: KernelFloat>(x: &Matrix<T>, grad_y: &Matrix<T>, plan: &RowPlan<T::Acc>) -> Vec<T> {
    let cols = x.cols;
    let mut out = vec![T::narrow(num_traits::Zero::zero()); x.rows * cols];
    for_each_row_block(&mut out, cols, |first_row, block| {
        grad_x_rows(x, grad_y, plan, first_row, block)
    });
    out
}

simd_variants! {
/// Rows `first_row..` of grad-x into `block`, multiversioned like [`forward_rows`].
fn grad_x_rows<T: KernelFloat>(
    x: &Matrix<T>,
    grad_y: &Matrix<T>,
    plan: &RowPlan<T::Acc>,
    first_row: usize,
    block: &mut [T],
) {
    let cols = x.cols;
    let (mut x_scratch, mut g_scratch) = (Vec::new(), Vec::new());
    let (mut wide_x, mut wide_g, mut wide_out) = (Vec::new(), Vec::new(), Vec::new());
    for (i, gx) in block.chunks_exact_mut(cols).enumerate() {
        let x = x.row(first_row + i, 0..cols, &mut x_scratch);
        let g = grad_y.row(first_row + i, 0..cols, &mut g_scratch);
        match plan {
            RowPlan::Lanes(plan) => match (&plan.0, T::as_acc(x), T::as_acc(g), T::as_acc_mut(gx)) {
                (lanes, Some(x), Some(g), Some(gx)) => lanes.grad(x, g, gx),
                (lanes, _, _, None) => {
                    widen(x, &mut wide_x);
                    widen(g, &mut wide_g);
                    wide_out.resize(cols, num_traits::Zero::zero());
                    lanes.grad(&wide_x, &wide_g, &mut wide_out);
                    narrow(&wide_out, gx);
                }
                _ => unreachable!("as_acc and as_acc_mut agree"),
            },
            RowPlan::Runs(plan) => {
                for act in Activation::ALL {
                    specialise!(act, |a| {
                        for run in &plan.runs[act.id()] {
                            let r = run.clone();
                            for ((gx, x), g) in
                                gx[r.clone()].iter_mut().zip(&x[r.clone()]).zip(&g[r])
                            {
                                *gx = T::narrow(g.widen() * a.derivative(x.widen()));
                            }
                        }
                    })
                }
            }
        }
    }
}}
