//! CPU plumbing shared by the fused ops: element types, strided 2-D views, the per-column plan
//! that hoists the choice of function out of the inner loops, and the row-parallel driver.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::activation::{Activation, Real};

/// Storage element of a float tensor, with the type its arithmetic is done in.
/// Half types are computed in `f32` (as PyTorch does), then rounded once on the way out.
pub(crate) trait KernelFloat: Copy + Send + Sync + 'static {
    type Acc: Real;
    const DTYPE: DType;
    fn widen(self) -> Self::Acc;
    fn narrow(v: Self::Acc) -> Self;
    /// The storage's data when it holds this type.
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    /// The same slice as `Acc` when the types are the same (f32, f64): no conversion needed.
    fn as_acc(s: &[Self]) -> Option<&[Self::Acc]>;
    fn as_acc_mut(s: &mut [Self]) -> Option<&mut [Self::Acc]>;
}

macro_rules! kernel_float {
    ($t:ty, $variant:ident, $acc:ty, $widen:expr, $narrow:expr, $same:expr) => {
        impl KernelFloat for $t {
            type Acc = $acc;
            const DTYPE: DType = DType::$variant;
            #[inline(always)]
            fn widen(self) -> $acc {
                $widen(self)
            }
            #[inline(always)]
            fn narrow(v: $acc) -> Self {
                $narrow(v)
            }
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(data) => Some(data),
                    _ => None,
                }
            }
            #[inline(always)]
            fn as_acc(s: &[Self]) -> Option<&[$acc]> {
                $same(s)
            }
            #[inline(always)]
            fn as_acc_mut(s: &mut [Self]) -> Option<&mut [$acc]> {
                $same(s)
            }
        }
    };
}
kernel_float!(f32, F32, f32, |v| v, |v| v, Some);
kernel_float!(f64, F64, f64, |v| v, |v| v, Some);
kernel_float!(f16, F16, f32, f16::to_f32, f16::from_f32, |_| None);
kernel_float!(bf16, BF16, f32, bf16::to_f32, bf16::from_f32, |_| None);

/// Runs `$body` with `$data` bound to the storage's slice for each float dtype and wraps the
/// `Vec` it returns back into storage of the same dtype; other dtypes fail, naming `$what`.
macro_rules! float_dispatch {
    ($storage:expr, $what:expr, |$data:ident| $body:expr) => {
        match $storage {
            CpuStorage::F32($data) => CpuStorage::F32($body),
            CpuStorage::F64($data) => CpuStorage::F64($body),
            CpuStorage::F16($data) => CpuStorage::F16($body),
            CpuStorage::BF16($data) => CpuStorage::BF16($body),
            other => candle_core::bail!(
                "{} must be a float tensor (f32, f64, f16 or bf16), got {:?}",
                $what,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    };
}
pub(crate) use float_dispatch;

/// The data of a further operand (`w`, `grad_y`), which must have the dtype of `x`.
pub(crate) fn same_dtype<'a, T: KernelFloat>(
    storage: &'a CpuStorage,
    what: &str,
) -> Result<&'a [T]> {
    T::slice(storage).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{what} has dtype {:?} but x has {:?}",
            storage.dtype(),
            T::DTYPE
        ))
    })
}

/// A read-only view of a rank-2 tensor `[rows, cols]` with arbitrary strides (transposed,
/// narrowed and stride-0 broadcast tensors included).
pub(crate) struct Matrix<'a, T> {
    data: &'a [T],
    start: usize,
    pub rows: usize,
    pub cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Copy> Matrix<'a, T> {
    pub fn new(data: &'a [T], layout: &Layout, what: &str) -> Result<Self> {
        let (rows, cols) = match layout.dims() {
            &[rows, cols] => (rows, cols),
            dims => bail!("{what} must be a rank-2 tensor [batch, neurons], got shape {dims:?}"),
        };
        let stride = layout.stride();
        Ok(Self {
            data,
            start: layout.start_offset(),
            rows,
            cols,
            row_stride: stride[0],
            col_stride: stride[1],
        })
    }

    /// Rows `first_row..first_row + rows` as one slice, when the matrix is dense (rows packed
    /// one after another): a layer whose units share one function computes them as one run.
    #[inline]
    pub fn dense_rows(&self, first_row: usize, rows: usize) -> Option<&[T]> {
        (self.col_stride == 1 && self.row_stride == self.cols).then(|| {
            let base = self.start + first_row * self.cols;
            &self.data[base..base + rows * self.cols]
        })
    }

    /// Elements `cols` of row `row`: borrowed straight from storage when the row is contiguous,
    /// otherwise gathered into `scratch` (one row, never a whole tensor).
    #[inline]
    pub fn row<'s>(&'s self, row: usize, cols: Range<usize>, scratch: &'s mut Vec<T>) -> &'s [T] {
        let base = self.start + row * self.row_stride;
        if self.col_stride == 1 {
            &self.data[base + cols.start..base + cols.end]
        } else {
            scratch.clear();
            scratch.extend(cols.map(|c| self.data[base + c * self.col_stride]));
            scratch
        }
    }
}

/// The models of a stacked operand, each as a rank-2 view into the same storage: `[rows, cols]`
/// is one model, `[M, rows, cols]` is M of them (a cohort: every model its own batch rows and
/// its own per-neuron ids or weights). `what` names the operand in errors.
pub(crate) fn model_views(layout: &Layout, what: &str) -> Result<Vec<Layout>> {
    match *layout.dims() {
        [_, _] => Ok(vec![layout.clone()]),
        [models, rows, cols] => {
            let stride = layout.stride();
            Ok((0..models)
                .map(|m| {
                    let start = layout.start_offset() + m * stride[0];
                    Layout::new((rows, cols).into(), vec![stride[1], stride[2]], start)
                })
                .collect())
        }
        ref dims => {
            bail!("{what} must be [batch, neurons] or [models, batch, neurons], got shape {dims:?}")
        }
    }
}

/// The per-model rows of a per-neuron operand of `models` models: `ids` `[N]` for one model or
/// `[M, N]`, each as a rank-1 view.
pub(crate) fn model_rows(layout: &Layout, models: usize, what: &str) -> Result<Vec<Layout>> {
    match *layout.dims() {
        [_] if models == 1 => Ok(vec![layout.clone()]),
        [m, n] if m == models => {
            let stride = layout.stride();
            Ok((0..m)
                .map(|i| {
                    let start = layout.start_offset() + i * stride[0];
                    Layout::new(n.into(), vec![stride[1]], start)
                })
                .collect())
        }
        ref dims => bail!(
            "{what} must be [neurons] for x [batch, neurons] or [models, neurons] for x [models, batch, neurons] ({models} models), got shape {dims:?}"
        ),
    }
}

/// The per-model `[N, K]` views of mixing weights `[N, K]` (one model) or `[M, N, K]`.
pub(crate) fn model_matrices(layout: &Layout, models: usize, what: &str) -> Result<Vec<Layout>> {
    match *layout.dims() {
        [_, _] if models == 1 => Ok(vec![layout.clone()]),
        [m, _, _] if m == models => model_views(layout, what),
        ref dims => bail!(
            "{what} must be [neurons, pool size] for x [batch, neurons] or [models, neurons, pool size] for x [models, batch, neurons] ({models} models), got shape {dims:?}"
        ),
    }
}

/// Reads the per-neuron activation ids (`[neurons]`, any integer dtype) and checks each one.
pub(crate) fn read_ids(
    storage: &CpuStorage,
    layout: &Layout,
    neurons: usize,
) -> Result<Vec<Activation>> {
    let len = match layout.dims() {
        &[len] => len,
        dims => bail!("ids must be a rank-1 tensor [neurons], got shape {dims:?}"),
    };
    if len != neurons {
        bail!("ids has {len} entries but x has {neurons} neurons (columns)");
    }
    fn collect<I: Copy + Into<i128>>(data: &[I], layout: &Layout) -> Result<Vec<Activation>> {
        let (start, stride) = (layout.start_offset(), layout.stride()[0]);
        (0..layout.dims()[0])
            .map(|n| {
                let id: i128 = data[start + n * stride].into();
                u64::try_from(id)
                    .ok()
                    .and_then(|id| Activation::from_id(id).ok())
                    .ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "ids[{n}] = {id} is not an activation id (valid ids are 0..={})",
                            Activation::COUNT - 1
                        ))
                    })
            })
            .collect()
    }
    match storage {
        CpuStorage::U8(d) => collect(d, layout),
        CpuStorage::U32(d) => collect(d, layout),
        CpuStorage::I16(d) => collect(d, layout),
        CpuStorage::I32(d) => collect(d, layout),
        CpuStorage::I64(d) => collect(d, layout),
        other => bail!(
            "ids must have an integer dtype (u8, u32, i64), got {:?}",
            other.dtype()
        ),
    }
}

/// Columns grouped by the function they apply, as runs of consecutive columns. Each row then
/// makes six passes, one per function, with the function fixed for the whole inner loop (no
/// per-element dispatch); when neurons are grouped by function the runs are long and the inner
/// loops are plain slice loops.
#[derive(Debug, Default)]
pub(crate) struct ColumnPlan {
    /// `runs[k]`: runs of columns that use only activation `k`.
    pub runs: [Vec<Range<usize>>; Activation::COUNT],
    /// `columns[k]`: the same columns one by one.
    pub columns: [Vec<u32>; Activation::COUNT],
    /// Columns that need the general path (mixtures with zero or several non-zero weights).
    pub general: Vec<usize>,
}

impl ColumnPlan {
    /// The one function of every column, when a single run of it covers all `cols` columns.
    pub fn uniform(&self, cols: usize) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| {
            let runs = &self.runs[a.id()];
            runs.len() == 1 && runs[0] == (0..cols)
        })
    }

    /// `choice[c]`: the single activation column `c` uses, or `None` for the general path.
    pub fn new(choice: impl IntoIterator<Item = Option<Activation>>) -> Self {
        let mut plan = ColumnPlan::default();
        for (c, act) in choice.into_iter().enumerate() {
            match act {
                Some(a) => {
                    plan.columns[a.id()].push(c as u32);
                    let runs = &mut plan.runs[a.id()];
                    match runs.last_mut() {
                        Some(last) if last.end == c => last.end = c + 1,
                        _ => runs.push(c..c + 1),
                    }
                }
                None => plan.general.push(c),
            }
        }
        plan
    }
}

impl ColumnPlan {
    /// Whether any function's columns are scattered (see [`ColumnPlan::scattered`]).
    pub fn any_scattered(&self) -> bool {
        (0..Activation::COUNT).any(|k| self.scattered(k))
    }

    /// Whether function `k`'s columns are scattered (runs shorter than 16 on average, as with
    /// neurons in random order): then per-function loops over runs are too short to pay.
    pub fn scattered(&self, k: usize) -> bool {
        self.runs[k].len() * 16 > self.columns[k].len()
    }
}

/// Element count below which threads cost more than they save.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;
/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const ELEMENTS_PER_TASK: usize = 1 << 14;

/// Calls `f(first_row, block)` over blocks of whole rows of `out` (`[rows, cols]`, row-major),
/// in parallel for large tensors. Each element is written by exactly one call, so the result is
/// the same for any thread count.
pub(crate) fn for_each_row_block<T: Send>(
    out: &mut [T],
    cols: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if cols == 0 || out.is_empty() {
        return;
    }
    if out.len() < PARALLEL_MIN_ELEMENTS {
        f(0, out);
        return;
    }
    let rows_per_task = (ELEMENTS_PER_TASK / cols).max(1);
    out.par_chunks_mut(rows_per_task * cols)
        .enumerate()
        .for_each(|(i, block)| f(i * rows_per_task, block));
}

/// [`for_each_row_block`] over two outputs of the same shape at once: `f(first_row, a, b)`
/// gets the same rows of both.
pub(crate) fn for_each_row_block_pair<T: Send>(
    a: &mut [T],
    b: &mut [T],
    cols: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    debug_assert_eq!(a.len(), b.len());
    if cols == 0 || a.is_empty() {
        return;
    }
    if a.len() < PARALLEL_MIN_ELEMENTS {
        f(0, a, b);
        return;
    }
    let rows_per_task = (ELEMENTS_PER_TASK / cols).max(1);
    a.par_chunks_mut(rows_per_task * cols)
        .zip(b.par_chunks_mut(rows_per_task * cols))
        .enumerate()
        .for_each(|(i, (a, b))| f(i * rows_per_task, a, b));
}

/// Like [`for_each_row_block`] over blocks of columns of a `[cols, width]` output (one row of
/// `width` values per column of the input), used for reductions over the batch. Each column's sum
/// runs over the rows in order inside one task, so it does not depend on the thread count.
pub(crate) fn for_each_column_block<T: Send>(
    out: &mut [T],
    width: usize,
    work_per_column: usize,
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    let cols = out.len() / width.max(1);
    if cols == 0 {
        return;
    }
    if cols * work_per_column < PARALLEL_MIN_ELEMENTS {
        f(0..cols, out);
        return;
    }
    // Blocks of at least 64 columns keep each row read a contiguous piece of whole cache lines
    // and give the per-row vector loops enough length.
    let cols_per_task = (ELEMENTS_PER_TASK / work_per_column.max(1)).clamp(64, cols.max(64));
    out.par_chunks_mut(cols_per_task * width)
        .enumerate()
        .for_each(|(i, block)| {
            let first = i * cols_per_task;
            f(first..first + block.len() / width, block)
        });
}

/// The clamp `C` of the mixture, and its derivative as PyTorch's `clamp` defines it (1 on the
/// closed interval [-c, c], 0 outside). `c = +inf` is the identity. NaN passes through both, so
/// a diverging run stays visibly NaN.
#[derive(Clone, Copy)]
pub(crate) struct Clamp<A> {
    pub limit: A,
}

impl<A: Real> Clamp<A> {
    pub fn new(limit: Option<f64>) -> Self {
        Self {
            limit: limit.map_or(A::infinity(), A::constant),
        }
    }

    #[inline(always)]
    pub fn apply(self, v: A) -> A {
        if v < -self.limit {
            -self.limit
        } else if v > self.limit {
            self.limit
        } else {
            v
        }
    }

    #[inline(always)]
    pub fn derivative(self, v: A) -> A {
        if v < -self.limit || v > self.limit {
            A::zero()
        } else {
            A::one()
        }
    }
}
