//! Phase 1: the hard mixture that a straight-through Gumbel sample selects.
//!
//! ```text
//! x: [B, N], w: [N, K] (same dtype) for a pool f_1..f_K, C = clamp to [-c, c] or the identity
//! (or a cohort of M models: x [M, B, N], w [M, N, K], grad_w [M, N, K] reduced per model)
//! s[b, n]      = sum_k w[n, k] * C(f_k(x[b, n]))          y = C(s)
//! grad_x[b, n] = g * C'(s) * sum_k w[n, k] * C'(f_k(x)) * f_k'(x)
//! grad_w[n, k] = sum_b g * C'(s) * C(f_k(x[b, n]))
//! ```
//! Terms whose weight is exactly zero are skipped; that equals the dense sum whenever f_k(x) is
//! finite (always with a clamp, and for every finite x without one). No [B, N, K] tensor is made:
//! grad_w recomputes the K values element by element and reduces them over the batch at once.
//! Column k of w belongs to member k of the [`Pool`]; the loops run over the members in pool
//! order, so the paper's pool gives the bits it gave before pools existed.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::activation::{specialise, Activation, Real};
use crate::cpu::{
    float_dispatch, for_each_column_block, for_each_row_block, model_matrices, model_views,
    same_dtype, Clamp, ColumnPlan, KernelFloat, Matrix,
};
use crate::kernels::gpu_paths;
#[cfg(any(feature = "cuda", feature = "metal"))]
use crate::kernels::{MixtureParams, Scalars};
use crate::per_neuron::{activation_slow, check_grad_shape, gpu_ready};
use crate::pool::Pool;
use num_traits::{ToPrimitive, Zero};

/// `y = C(sum_k w[n, k] * C(f_k(x)))` for `x` `[batch, neurons]` and `w` `[neurons, K]`, where
/// f_k is member k of `pool` (K members), with autograd to both `x` and `w`. `clamp = Some(c)`
/// clamps to `[-c, c]` (the reference uses 10); `None` disables both clamps.
pub fn mixture(x: &Tensor, w: &Tensor, pool: Pool, clamp: Option<f64>) -> Result<Tensor> {
    let clamp = check_clamp(clamp)?;
    gpu_ready(x)?.apply_op2(&gpu_ready(w)?, Mixture { clamp, pool })
}

/// The gradients of [`mixture`] to `x` and `w` for the upstream gradient `grad_y`, computed
/// directly: for callers that run their own backward pass instead of candle's autograd. These
/// are the kernels the op's own backward runs, so the two give the same bits.
pub fn mixture_grads(
    x: &Tensor,
    w: &Tensor,
    pool: Pool,
    clamp: Option<f64>,
    grad_y: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let clamp = check_clamp(clamp)?;
    let (x, w, grad_y) = (gpu_ready(x)?, gpu_ready(w)?, gpu_ready(grad_y)?);
    let grad_x = x.apply_op3_no_bwd(&w, &grad_y, &MixtureGradX { clamp, pool })?;
    let grad_w = x.apply_op3_no_bwd(&w, &grad_y, &MixtureGradW { clamp, pool })?;
    Ok((grad_x, grad_w))
}

/// The same function from candle's own ops, with a `[B, N]` temporary per candidate: the
/// unfused reference the tests compare against.
pub fn mixture_slow(x: &Tensor, w: &Tensor, pool: Pool, clamp: Option<f64>) -> Result<Tensor> {
    let clamp = check_clamp(clamp)?;
    let mut sum = x.zeros_like()?;
    for (k, &act) in pool.members().iter().enumerate() {
        let weight = w.narrow(1, k, 1)?.t()?; // [1, N]
        let value = clamp_slow(activation_slow(act, x)?, clamp)?;
        sum = (sum + value.broadcast_mul(&weight)?)?;
    }
    clamp_slow(sum, clamp)
}

/// PyTorch's clamp from candle ops. (candle's own `clamp` gives gradient 1/2 exactly on a
/// bound, PyTorch 1; a one-hot mixture whose inner clamp is active sits exactly on the outer
/// bound, so the difference matters for grad_w.)
fn clamp_slow(t: Tensor, clamp: Option<f64>) -> Result<Tensor> {
    let Some(c) = clamp else { return Ok(t) };
    let upper = Tensor::full(c, t.shape(), t.device())?.to_dtype(t.dtype())?;
    let lower = upper.neg()?;
    let inside_or_low = t.lt(&lower)?.where_cond(&lower, &t)?;
    t.gt(&upper)?.where_cond(&upper, &inside_or_low)
}

fn check_clamp(clamp: Option<f64>) -> Result<Option<f64>> {
    match clamp {
        Some(c) if !(c.is_finite() && c > 0.0) => {
            bail!("clamp must be a positive finite number or none, got {c}")
        }
        _ => Ok(clamp),
    }
}

struct Mixture {
    clamp: Option<f64>,
    pool: Pool,
}

impl CustomOp2 for Mixture {
    fn name(&self) -> &'static str {
        "mixture-activation"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let models = Models::new(x_layout, w_layout)?;
        let out = float_dispatch!(x, "x", |data| {
            let mut out = Vec::with_capacity(x_layout.shape().elem_count());
            for (x_view, w_view) in models.views() {
                let weights = read_weights(data, w, w_view, models.cols, self.pool)?;
                out.extend(forward_cpu(
                    &Matrix::new(data, x_view, "x")?,
                    &weights,
                    Clamp::new(self.clamp),
                ));
            }
            out
        });
        Ok((out, x_layout.shape().clone()))
    }

    gpu_paths!(op2, crate::kernels::MIXTURE_FWD, |op: &Self| {
        Scalars::Mixture(MixtureParams {
            clamp: op.clamp,
            pool: op.pool,
        })
    });

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_x, grad_w) = mixture_grads(x, w, self.pool, self.clamp, grad_y)?;
        Ok((Some(grad_x), Some(grad_w)))
    }
}

/// Gradient of the mixture to `x`: one pass over x and grad_y, writing `[B, N]`.
struct MixtureGradX {
    clamp: Option<f64>,
    pool: Pool,
}

impl CustomOp3 for MixtureGradX {
    fn name(&self) -> &'static str {
        "mixture-activation-grad-x"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
        grad_y: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_grad_shape(x_layout, grad_layout)?;
        let models = Models::new(x_layout, w_layout)?;
        let grad_views = model_views(grad_layout, "grad_y")?;
        let out = float_dispatch!(x, "x", |data| {
            let grad = same_dtype(grad_y, "grad_y")?;
            let mut out = Vec::with_capacity(x_layout.shape().elem_count());
            for ((x_view, w_view), grad_view) in models.views().zip(&grad_views) {
                let weights = read_weights(data, w, w_view, models.cols, self.pool)?;
                out.extend(grad_x_cpu(
                    &Matrix::new(data, x_view, "x")?,
                    &Matrix::new(grad, grad_view, "grad_y")?,
                    &weights,
                    Clamp::new(self.clamp),
                ));
            }
            out
        });
        Ok((out, x_layout.shape().clone()))
    }

    gpu_paths!(op3, crate::kernels::MIXTURE_GRAD_X, |op: &Self| {
        Scalars::Mixture(MixtureParams {
            clamp: op.clamp,
            pool: op.pool,
        })
    });
}

/// Gradient of the mixture to `w`: one pass over x and grad_y, reducing over the batch into
/// `[N, K]`. Each neuron's sums run over the rows in order within one task, so the result does
/// not depend on the number of threads.
struct MixtureGradW {
    clamp: Option<f64>,
    pool: Pool,
}

impl CustomOp3 for MixtureGradW {
    fn name(&self) -> &'static str {
        "mixture-activation-grad-w"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
        grad_y: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_grad_shape(x_layout, grad_layout)?;
        let models = Models::new(x_layout, w_layout)?;
        let grad_views = model_views(grad_layout, "grad_y")?;
        let out = float_dispatch!(x, "x", |data| {
            let grad = same_dtype(grad_y, "grad_y")?;
            let mut out = Vec::with_capacity(models.x.len() * models.cols * self.pool.len());
            for ((x_view, w_view), grad_view) in models.views().zip(&grad_views) {
                let weights = read_weights(data, w, w_view, models.cols, self.pool)?;
                out.extend(grad_w_cpu(
                    &Matrix::new(data, x_view, "x")?,
                    &Matrix::new(grad, grad_view, "grad_y")?,
                    &weights,
                    Clamp::new(self.clamp),
                ));
            }
            out
        });
        // The shape of w: [N, K], or [M, N, K] for a cohort (reduced over each model's batch).
        Ok((out, w_layout.shape().clone()))
    }

    gpu_paths!(op3, crate::kernels::MIXTURE_GRAD_W, |op: &Self| {
        Scalars::Mixture(MixtureParams {
            clamp: op.clamp,
            pool: op.pool,
        })
    });
}

/// The models of a phase-1 op: x `[B, N]` with w `[N, K]`, or x `[M, B, N]` with w `[M, N, K]`.
struct Models {
    x: Vec<Layout>,
    w: Vec<Layout>,
    cols: usize,
}

impl Models {
    fn new(x_layout: &Layout, w_layout: &Layout) -> Result<Self> {
        let x = model_views(x_layout, "x")?;
        let w = model_matrices(w_layout, x.len(), "w")?;
        let cols = *x_layout.dims().last().unwrap_or(&0);
        Ok(Self { x, w, cols })
    }

    fn views(&self) -> impl Iterator<Item = (&Layout, &Layout)> {
        self.x.iter().zip(&self.w)
    }
}

/// The mixing weights, widened, with the plan that sends every neuron whose weights have a
/// single non-zero entry (the one-hot case of training) down a specialised loop.
struct Weights<A> {
    pool: Pool,
    /// `[N, K]`, row-major: `rows[c * K + k]` is neuron c's weight on pool member k.
    rows: Vec<A>,
    plan: ColumnPlan,
}

impl<A: Copy> Weights<A> {
    /// Neuron `c`'s weights, one per pool member.
    #[inline(always)]
    fn of(&self, c: usize) -> &[A] {
        let k = self.pool.len();
        &self.rows[c * k..(c + 1) * k]
    }
}

/// `_x` only fixes the element type: `w` must have the dtype of `x`.
fn read_weights<T: KernelFloat>(
    _x: &[T],
    w: &CpuStorage,
    layout: &Layout,
    neurons: usize,
    pool: Pool,
) -> Result<Weights<T::Acc>> {
    let k = pool.len();
    if layout.dims() != [neurons, k] {
        bail!(
            "w must have shape [neurons, pool size] = [{neurons}, {k}] (pool {pool}), got {:?}",
            layout.dims()
        );
    }
    let w = Matrix::new(same_dtype::<T>(w, "w")?, layout, "w")?;
    let mut scratch = Vec::new();
    let mut rows = Vec::with_capacity(neurons * k);
    for n in 0..neurons {
        rows.extend(w.row(n, 0..k, &mut scratch).iter().map(|v| v.widen()));
    }
    let single = |row: &[T::Acc]| {
        let mut nonzero = (0..k).filter(|&j| row[j] != T::Acc::zero());
        match (nonzero.next(), nonzero.next()) {
            (Some(j), None) => Some(pool.members()[j]),
            _ => None,
        }
    };
    let plan = ColumnPlan::new(rows.chunks_exact(k).map(single));
    Ok(Weights { pool, rows, plan })
}

fn forward_cpu<T: KernelFloat>(
    x: &Matrix<T>,
    weights: &Weights<T::Acc>,
    clamp: Clamp<T::Acc>,
) -> Vec<T> {
    let cols = x.cols;
    let mut out = vec![T::narrow(T::Acc::zero()); x.rows * cols];
    for_each_row_block(&mut out, cols, |first_row, block| {
        forward_rows(x, weights, clamp, first_row, block)
    });
    out
}

simd_variants! {
/// Rows `first_row..` of the forward pass (in [`simd_variants`](crate::simd_variants) like the phase-2 op).
fn forward_rows<T: KernelFloat>(
    x: &Matrix<T>,
    weights: &Weights<T::Acc>,
    clamp: Clamp<T::Acc>,
    first_row: usize,
    block: &mut [T],
) {
    let cols = x.cols;
    let scattered = Scattered::new(weights);
    let general = general_weights(weights);
    let (mut scratch, mut xs, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for (i, y) in block.chunks_exact_mut(cols).enumerate() {
        let x = x.row(first_row + i, 0..cols, &mut scratch);
        for (k, &act) in weights.pool.members().iter().enumerate() {
            specialise!(act, |a| {
                if let Some((columns, w)) = scattered.of(k) {
                    gather(x, columns, &mut xs);
                    ys.resize(xs.len(), T::Acc::zero());
                    for ((y, &x), &w) in ys.iter_mut().zip(&xs).zip(w) {
                        *y = clamp.apply(w * clamp.apply(a.value(x)));
                    }
                    scatter(&ys, columns, y);
                } else {
                    for run in &weights.plan.runs[act.id()] {
                        for c in run.clone() {
                            let w = weights.of(c)[k];
                            y[c] = T::narrow(clamp.apply(w * clamp.apply(a.value(x[c].widen()))));
                        }
                    }
                }
            })
        }
        if !weights.plan.general.is_empty() {
            gather(x, &weights.plan.general, &mut xs);
            general_terms_dense(&xs, (weights.pool, general.as_slice()), clamp, &mut ys, None);
            for sum in ys.iter_mut() {
                *sum = clamp.apply(*sum);
            }
            scatter(&ys, &weights.plan.general, y);
        }
    }
}}

/// Per pool member, the weights of the general path's columns (in the plan's order): what the
/// member-by-member loops over those columns read.
fn general_weights<A: Copy>(weights: &Weights<A>) -> Vec<Vec<A>> {
    (0..weights.pool.len())
        .map(|k| {
            weights
                .plan
                .general
                .iter()
                .map(|&c| weights.of(c)[k])
                .collect()
        })
        .collect()
}

/// The general path (neurons with zero or several non-zero weights: soft mixtures) for a row's
/// general-path columns at once: `xs` (their inputs, gathered) into the pre-clamp sums
/// `s = sum_k w_k C(f_k(x))` and, when asked, the weighted derivatives
/// `sum_k w_k C'(f_k(x)) f_k'(x)`, with one loop per pool member over all of them
/// (specialised, so it vectorises). Each element adds the members' terms in pool order and
/// skips zero weights, so a term that is not finite does not reach it through a zero weight.
#[inline(always)]
fn general_terms_dense<A: Real>(
    xs: &[A],
    (pool, general): (Pool, &[Vec<A>]),
    clamp: Clamp<A>,
    sums: &mut Vec<A>,
    mut slopes: Option<&mut Vec<A>>,
) {
    sums.clear();
    sums.resize(xs.len(), A::zero());
    if let Some(slopes) = slopes.as_deref_mut() {
        slopes.clear();
        slopes.resize(xs.len(), A::zero());
    }
    for (&act, w) in pool.members().iter().zip(general) {
        specialise!(act, |a| {
            if let Some(slopes) = slopes.as_deref_mut() {
                // One loop for both, so each f_k(x) is evaluated once.
                let columns = sums.iter_mut().zip(slopes.iter_mut());
                for (((sum, slope), &x), &w) in columns.zip(xs).zip(w) {
                    let v = a.value(x);
                    let term = w * clamp.apply(v);
                    let slope_term = w * clamp.derivative(v) * a.derivative(x);
                    let live = w != A::zero();
                    *sum = if live { *sum + term } else { *sum };
                    *slope = if live { *slope + slope_term } else { *slope };
                }
            } else {
                for ((sum, &x), &w) in sums.iter_mut().zip(xs).zip(w) {
                    let term = w * clamp.apply(a.value(x));
                    *sum = if w != A::zero() { *sum + term } else { *sum };
                }
            }
        })
    }
}

/// grad-x of one element of a neuron with the single non-zero weight `w` on function `a`.
#[inline(always)]
fn one_hot_grad_x<A: Real>(a: Activation, clamp: Clamp<A>, x: A, g: A, w: A) -> A {
    let v = a.value(x);
    let s = w * clamp.apply(v);
    let slope = w * clamp.derivative(v) * a.derivative(x);
    g * clamp.derivative(s) * slope
}

/// Per pool member, its columns and their weights when the columns are scattered (neurons in
/// random order, as selection leaves them): a row then gathers those columns into a contiguous
/// buffer, runs the function's loop over it (vectorised) and scatters the results back, the same
/// arithmetic per element as the loop over runs, so the same bits.
struct Scattered<A> {
    /// Indexed by pool member.
    of: Vec<Option<(Vec<usize>, Vec<A>)>>,
}

impl<A: Real> Scattered<A> {
    fn new(weights: &Weights<A>) -> Self {
        let plan = &weights.plan;
        let members = weights.pool.members().iter().enumerate();
        Self {
            of: members
                .map(|(k, act)| {
                    plan.scattered(act.id()).then(|| {
                        let columns: Vec<usize> =
                            plan.columns[act.id()].iter().map(|&c| c as usize).collect();
                        let w = columns.iter().map(|&c| weights.of(c)[k]).collect();
                        (columns, w)
                    })
                })
                .collect(),
        }
    }

    fn of(&self, k: usize) -> Option<(&[usize], &[A])> {
        self.of[k]
            .as_ref()
            .map(|(c, w)| (c.as_slice(), w.as_slice()))
    }
}

#[inline(always)]
fn gather<T: KernelFloat>(row: &[T], columns: &[usize], out: &mut Vec<T::Acc>) {
    out.clear();
    out.extend(columns.iter().map(|&c| row[c].widen()));
}

#[inline(always)]
fn scatter<T: KernelFloat>(values: &[T::Acc], columns: &[usize], row: &mut [T]) {
    for (&c, &v) in columns.iter().zip(values) {
        row[c] = T::narrow(v);
    }
}

fn grad_x_cpu<T: KernelFloat>(
    x: &Matrix<T>,
    grad_y: &Matrix<T>,
    weights: &Weights<T::Acc>,
    clamp: Clamp<T::Acc>,
) -> Vec<T> {
    let cols = x.cols;
    let mut out = vec![T::narrow(T::Acc::zero()); x.rows * cols];
    for_each_row_block(&mut out, cols, |first_row, block| {
        grad_x_rows(x, grad_y, weights, clamp, first_row, block)
    });
    out
}

simd_variants! {
/// Rows `first_row..` of grad-x; multiversioned like [`forward_rows`].
fn grad_x_rows<T: KernelFloat>(
    x: &Matrix<T>,
    grad_y: &Matrix<T>,
    weights: &Weights<T::Acc>,
    clamp: Clamp<T::Acc>,
    first_row: usize,
    block: &mut [T],
) {
    let cols = x.cols;
    let scattered = Scattered::new(weights);
    let general = general_weights(weights);
    let (mut x_scratch, mut g_scratch) = (Vec::new(), Vec::new());
    let (mut xs, mut gs, mut outs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sums, mut slopes) = (Vec::new(), Vec::new());
    for (i, gx) in block.chunks_exact_mut(cols).enumerate() {
        let x = x.row(first_row + i, 0..cols, &mut x_scratch);
        let g = grad_y.row(first_row + i, 0..cols, &mut g_scratch);
        for (k, &act) in weights.pool.members().iter().enumerate() {
            specialise!(act, |a| {
                if let Some((columns, w)) = scattered.of(k) {
                    gather(x, columns, &mut xs);
                    gather(g, columns, &mut gs);
                    outs.resize(xs.len(), T::Acc::zero());
                    for (((out, &x), &g), &w) in outs.iter_mut().zip(&xs).zip(&gs).zip(w) {
                        *out = one_hot_grad_x(a, clamp, x, g, w);
                    }
                    scatter(&outs, columns, gx);
                } else {
                    for run in &weights.plan.runs[act.id()] {
                        for c in run.clone() {
                            gx[c] = T::narrow(one_hot_grad_x(
                                a,
                                clamp,
                                x[c].widen(),
                                g[c].widen(),
                                weights.of(c)[k],
                            ));
                        }
                    }
                }
            })
        }
        if !weights.plan.general.is_empty() {
            gather(x, &weights.plan.general, &mut xs);
            gather(g, &weights.plan.general, &mut gs);
            let pool = (weights.pool, general.as_slice());
            general_terms_dense(&xs, pool, clamp, &mut sums, Some(&mut slopes));
            outs.clear();
            outs.extend(
                gs.iter()
                    .zip(&sums)
                    .zip(&slopes)
                    .map(|((&g, &sum), &slope)| g * clamp.derivative(sum) * slope),
            );
            scatter(&outs, &weights.plan.general, gx);
        }
    }
}}

fn grad_w_cpu<T: KernelFloat>(
    x: &Matrix<T>,
    grad_y: &Matrix<T>,
    weights: &Weights<T::Acc>,
    clamp: Clamp<T::Acc>,
) -> Vec<T> {
    let (rows, cols, k) = (x.rows, x.cols, weights.pool.len());
    let mut out = vec![T::narrow(T::Acc::zero()); cols * k];
    for_each_column_block(&mut out, k, rows * k, |block_cols, block| {
        grad_w_columns(x, grad_y, weights, clamp, block_cols, block)
    });
    out
}

simd_variants! {
/// grad-w for the neurons `block_cols` (all rows, in order); multiversioned like
/// [`forward_rows`]. Each row is a few loops over the block's contiguous columns: the K clamped
/// values (one loop per pool member, specialised, so it vectorises), the pre-clamp sum, the
/// gate, then the K sums. Sums are f64 and run over the rows in order, so the result does not depend
/// on the thread count.
fn grad_w_columns<T: KernelFloat>(
    x: &Matrix<T>,
    grad_y: &Matrix<T>,
    weights: &Weights<T::Acc>,
    clamp: Clamp<T::Acc>,
    block_cols: std::ops::Range<usize>,
    block: &mut [T],
) {
    let n = block_cols.len();
    let zero = T::Acc::zero();
    let members = weights.pool.members();
    // The block's weights by pool member, so that every loop below runs over contiguous columns.
    let w: Vec<Vec<T::Acc>> = (0..members.len())
        .map(|k| block_cols.clone().map(|c| weights.of(c)[k]).collect())
        .collect();
    let mut values: Vec<Vec<T::Acc>> = vec![vec![zero; n]; members.len()];
    let (mut wide_x, mut pre_clamp, mut gate) = (vec![zero; n], vec![zero; n], vec![zero; n]);
    let mut sums: Vec<Vec<f64>> = vec![vec![0.0; n]; members.len()];
    let (mut x_scratch, mut g_scratch) = (Vec::new(), Vec::new());
    for row in 0..x.rows {
        let x_row = x.row(row, block_cols.clone(), &mut x_scratch);
        let g_row = grad_y.row(row, block_cols.clone(), &mut g_scratch);
        for (wide, v) in wide_x.iter_mut().zip(x_row) {
            *wide = v.widen();
        }
        pre_clamp.fill(zero);
        for (k, &act) in members.iter().enumerate() {
            specialise!(act, |a| {
                let columns = values[k].iter_mut().zip(&wide_x);
                for ((v, &x), (s, &w)) in columns.zip(pre_clamp.iter_mut().zip(&w[k])) {
                    *v = clamp.apply(a.value(x));
                    // Zero weights are skipped, as in the forward pass (0 * inf would be NaN).
                    *s = *s + if w != zero { w * *v } else { zero };
                }
            })
        }
        for ((gate, &s), g) in gate.iter_mut().zip(&pre_clamp).zip(g_row) {
            *gate = g.widen() * clamp.derivative(s);
        }
        for (sum, v) in sums.iter_mut().zip(&values) {
            for ((sum, &v), &gate) in sum.iter_mut().zip(v).zip(&gate) {
                *sum += (gate * v).to_f64().unwrap_or(f64::NAN);
            }
        }
    }
    for (j, dst) in block.chunks_exact_mut(members.len()).enumerate() {
        for (k, dst) in dst.iter_mut().enumerate() {
            *dst = T::narrow(T::Acc::constant(sums[k][j]));
        }
    }
}}
