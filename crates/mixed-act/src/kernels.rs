//! The GPU kernel sources and the one list of their entry points.
//!
//! `kernels/mixed_act.cu` (CUDA, compiled at run time with NVRTC) and `kernels/mixed_act.metal`
//! (MSL, compiled at run time by Metal) hold the same eight kernels. [`KERNELS`] describes
//! each (name, operands, argument order); the launch code in `cuda.rs` and `metal.rs` is one
//! function per backend driven by it, which checks its argument count on every launch, and
//! the tests below check it against both sources, so a kernel renamed or given another
//! argument on one side only fails `make test` instead of failing on a user's GPU.

// Each GPU feature reads part of this, the tests all of it.
#![cfg_attr(not(all(feature = "cuda", feature = "metal")), allow(dead_code))]

use candle_core::backend::BackendStorage;
use candle_core::{bail, DType, Layout, Result, Shape};

use crate::learnable::Learnable;
use crate::pool::Pool;

/// CUDA C++ source of every kernel.
pub(crate) const CUDA_SOURCE: &str = include_str!("kernels/mixed_act.cu");
/// Metal Shading Language source of the same kernels.
pub(crate) const METAL_SOURCE: &str = include_str!("kernels/mixed_act.metal");

/// Which per-neuron operand a kernel reads besides `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Phase 2: `ids [N]` (u32), one function per neuron.
    PerNeuron,
    /// Phase 1: mixing weights `w [N, K]` (the dtype of x), a clamp limit and the pool
    /// ([`Pool::packed`](crate::Pool::packed)).
    Mixture,
    /// A learnable activation: `params [U, P]` (the dtype of x; U = N, a unit per neuron, or
    /// 1, one for the layer), the kind ([`Learnable::id`]) and U.
    Learnable,
}

/// One kernel. Every kernel takes its arguments in one order,
/// `(x, ids | w | params, [grad_y], out, [limit, pool | kind, units], rows, cols)`: grad_y for
/// the backward kernels, limit and pool for the mixture's, kind and units for the learnable
/// activations'. The tests check the parameter names of both sources against this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kernel {
    /// Base name; the entry point appends the element type, as in `mixture_fwd_f32`.
    pub name: &'static str,
    pub phase: Phase,
    /// Backward kernels read the incoming gradient.
    pub reads_grad: bool,
    /// grad-w and grad-p reduce over the batch into `[N, K]` or `[N, P]` (one sum per
    /// column); the others write `[rows, cols]`.
    pub reduces_batch: bool,
}

impl Kernel {
    /// The entry point for one element type (`"f32"`, `"f64"`).
    pub fn entry(self, dtype: &str) -> String {
        format!("{}_{dtype}", self.name)
    }

    /// How many arguments the host passes (buffers and scalars; Metal's thread positions
    /// are not passed by the host and not counted).
    pub fn args(self) -> usize {
        let grad = usize::from(self.reads_grad);
        // limit and pool, or kind and units.
        let scalars = 2 * usize::from(self.phase != Phase::PerNeuron);
        2 + grad + 1 + scalars + 2
    }

    /// Elements and shape of the output for an input `x` of `[rows, cols]` or
    /// `[models, rows, cols]` (and `width` sums per column for grad-w and grad-p, which reduce
    /// each model's rows: `[cols, width]` or `[models, cols, width]`).
    pub fn output(self, x: &Shape, width: usize) -> (usize, Shape) {
        if self.reduces_batch {
            let mut dims = x.dims().to_vec();
            dims.remove(dims.len().saturating_sub(2));
            dims.push(width);
            let shape = Shape::from(dims);
            (shape.elem_count(), shape)
        } else {
            (x.elem_count(), x.clone())
        }
    }
}

pub(crate) const PER_NEURON_FWD: Kernel = Kernel {
    name: "per_neuron_fwd",
    phase: Phase::PerNeuron,
    reads_grad: false,
    reduces_batch: false,
};
pub(crate) const PER_NEURON_GRAD_X: Kernel = Kernel {
    name: "per_neuron_grad_x",
    reads_grad: true,
    ..PER_NEURON_FWD
};
pub(crate) const MIXTURE_FWD: Kernel = Kernel {
    name: "mixture_fwd",
    phase: Phase::Mixture,
    ..PER_NEURON_FWD
};
pub(crate) const MIXTURE_GRAD_X: Kernel = Kernel {
    name: "mixture_grad_x",
    reads_grad: true,
    ..MIXTURE_FWD
};
pub(crate) const MIXTURE_GRAD_W: Kernel = Kernel {
    name: "mixture_grad_w",
    reduces_batch: true,
    ..MIXTURE_GRAD_X
};

pub(crate) const LEARNABLE_FWD: Kernel = Kernel {
    name: "learnable_fwd",
    phase: Phase::Learnable,
    ..PER_NEURON_FWD
};
pub(crate) const LEARNABLE_GRAD_X: Kernel = Kernel {
    name: "learnable_grad_x",
    reads_grad: true,
    ..LEARNABLE_FWD
};
pub(crate) const LEARNABLE_GRAD_P: Kernel = Kernel {
    name: "learnable_grad_p",
    reduces_batch: true,
    ..LEARNABLE_GRAD_X
};

/// Every kernel, in source order.
pub(crate) const KERNELS: [Kernel; 8] = [
    PER_NEURON_FWD,
    PER_NEURON_GRAD_X,
    MIXTURE_FWD,
    MIXTURE_GRAD_X,
    MIXTURE_GRAD_W,
    LEARNABLE_FWD,
    LEARNABLE_GRAD_X,
    LEARNABLE_GRAD_P,
];

/// The parameters every mixture kernel takes besides its tensors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MixtureParams {
    pub clamp: Option<f64>,
    pub pool: Pool,
}

/// What a kernel takes besides its tensors: nothing (phase 2), the mixture's clamp and pool,
/// or the learnable activation's kind.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scalars {
    None,
    Mixture(MixtureParams),
    Learnable(Learnable),
}

/// The tensors one launch reads, each with its layout, and the kernel's scalars.
pub(crate) struct Operands<'a, S> {
    pub x: (&'a S, &'a Layout),
    /// `ids` for phase-2 kernels, `w` for phase-1 kernels, `params` for learnable ones.
    pub per_neuron: (&'a S, &'a Layout),
    pub grad_y: Option<(&'a S, &'a Layout)>,
    pub scalars: Scalars,
}

impl<'a, S: BackendStorage> Operands<'a, S> {
    pub fn new(x: (&'a S, &'a Layout), per_neuron: (&'a S, &'a Layout)) -> Self {
        Self {
            x,
            per_neuron,
            grad_y: None,
            scalars: Scalars::None,
        }
    }

    pub fn with_grad(self, grad_y: (&'a S, &'a Layout)) -> Self {
        Self {
            grad_y: Some(grad_y),
            ..self
        }
    }

    pub fn with_scalars(self, scalars: Scalars) -> Self {
        Self { scalars, ..self }
    }

    /// Values per neuron of the per-neuron operand: the pool's size (w and grad-w), the
    /// parameters per unit (params and grad-p), 1 for phase 2's ids.
    pub fn width(&self) -> usize {
        match self.scalars {
            Scalars::None => 1,
            Scalars::Mixture(m) => m.pool.len(),
            Scalars::Learnable(kind) => kind.params(),
        }
    }

    /// The units of a learnable activation's params `[.., U, P]`: 1 (one for the layer) or
    /// the neurons (checked by [`Operands::check`]).
    pub fn units(&self) -> usize {
        let dims = self.per_neuron.1.dims();
        dims.len().checked_sub(2).map_or(0, |at| dims[at])
    }

    /// Checks what the GPU kernels assume (the public ops arrange it: contiguous inputs, u32
    /// ids) and returns `(models, rows, cols)`: x is `[rows, cols]` (one model) or
    /// `[models, rows, cols]` (a cohort; the kernels take model m from the grid's z index), rows
    /// and cols being the kernels' u32 arguments. `floats` are the element types the backend's
    /// kernels take.
    pub fn check(
        &self,
        kernel: Kernel,
        backend: &str,
        floats: &[DType],
    ) -> Result<(u32, u32, u32)> {
        let (x, x_layout) = self.x;
        let (models, rows, cols, stacked) = match *x_layout.dims() {
            [rows, cols] => (1, rows, cols, false),
            [models, rows, cols] => (models, rows, cols, true),
            ref dims => {
                bail!("x must be [batch, neurons] or [models, batch, neurons], got shape {dims:?}")
            }
        };
        if !floats.contains(&x.dtype()) {
            bail!(
                "the {backend} activation kernels take {floats:?} tensors, x is {:?}",
                x.dtype()
            );
        }
        let (p, p_layout) = self.per_neuron;
        let (what, dtype, mut dims) = match (kernel.phase, self.scalars) {
            (Phase::PerNeuron, _) => ("ids", DType::U32, vec![cols]),
            (Phase::Mixture, Scalars::Mixture(m)) => ("w", x.dtype(), vec![cols, m.pool.len()]),
            (Phase::Learnable, Scalars::Learnable(kind)) => {
                let units = if self.units() == 1 { 1 } else { cols };
                ("params", x.dtype(), vec![units, kind.params()])
            }
            (Phase::Mixture, _) => bail!("internal error: {} needs a pool", kernel.name),
            (Phase::Learnable, _) => bail!("internal error: {} needs a kind", kernel.name),
        };
        if stacked {
            dims.insert(0, models);
        }
        if p.dtype() != dtype || p_layout.dims() != dims.as_slice() {
            bail!(
                "{what} must be {dtype:?} of shape {dims:?} for x of shape {:?}, got {:?} {:?}",
                x_layout.dims(),
                p.dtype(),
                p_layout.dims()
            );
        }
        let mut inputs = vec![("x", x_layout), (what, p_layout)];
        match (kernel.reads_grad, self.grad_y) {
            (true, Some((g, g_layout))) => {
                if g.dtype() != x.dtype() || g_layout.dims() != x_layout.dims() {
                    bail!(
                        "grad_y must match x ({:?} {:?}), got {:?} {:?}",
                        x.dtype(),
                        x_layout.dims(),
                        g.dtype(),
                        g_layout.dims()
                    );
                }
                inputs.push(("grad_y", g_layout));
            }
            (true, None) => bail!("internal error: {} needs grad_y", kernel.name),
            (false, _) => {}
        }
        for (what, layout) in inputs {
            if !layout.is_contiguous() {
                bail!("{what} must be contiguous for the {backend} kernels");
            }
        }
        match (
            u32::try_from(models),
            u32::try_from(rows),
            u32::try_from(cols),
            u32::try_from(models * rows * cols),
        ) {
            (Ok(m), Ok(r), Ok(c), Ok(_)) if m <= CUDA_MAX_GRID_Y => Ok((m, r, c)),
            (Ok(m), _, _, Ok(_)) if m > CUDA_MAX_GRID_Y => bail!(
                "x of shape {:?} stacks {m} models; the {backend} kernels take at most {CUDA_MAX_GRID_Y} (one grid layer each)",
                x_layout.dims()
            ),
            _ => bail!(
                "x of shape {:?} is too large for the {backend} kernels",
                x_layout.dims()
            ),
        }
    }
}

/// The `cuda_fwd` and `metal_fwd` of an op, each one launch of `$kernel`: for a CustomOp2
/// `(x, ids | w | params)` (`op2`) or a CustomOp3 `(x, ids | w | params, grad_y)` (`op3`).
/// `$params` maps the op to its [`Scalars`]. Used inside the op's `impl`, next to its `cpu_fwd`.
macro_rules! gpu_paths {
    (op2, $kernel:expr, $params:expr) => {
        $crate::kernels::gpu_paths!(@one feature = "cuda", cuda, cuda_fwd, CudaStorage, $kernel, $params);
        $crate::kernels::gpu_paths!(@one feature = "metal", metal, metal_fwd, MetalStorage, $kernel, $params);
    };
    (op3, $kernel:expr, $params:expr) => {
        $crate::kernels::gpu_paths!(@three feature = "cuda", cuda, cuda_fwd, CudaStorage, $kernel, $params);
        $crate::kernels::gpu_paths!(@three feature = "metal", metal, metal_fwd, MetalStorage, $kernel, $params);
    };
    (@one $cfg:meta, $backend:ident, $method:ident, $storage:ident, $kernel:expr, $params:expr) => {
        #[cfg($cfg)]
        fn $method(
            &self,
            x: &candle_core::$storage,
            x_layout: &candle_core::Layout,
            p: &candle_core::$storage,
            p_layout: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::$storage, candle_core::Shape)> {
            let ops = $crate::kernels::Operands::new((x, x_layout), (p, p_layout))
                .with_scalars(($params)(self));
            $crate::$backend::launch($kernel, ops)
        }
    };
    (@three $cfg:meta, $backend:ident, $method:ident, $storage:ident, $kernel:expr, $params:expr) => {
        #[cfg($cfg)]
        fn $method(
            &self,
            x: &candle_core::$storage,
            x_layout: &candle_core::Layout,
            p: &candle_core::$storage,
            p_layout: &candle_core::Layout,
            grad_y: &candle_core::$storage,
            grad_layout: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::$storage, candle_core::Shape)> {
            let ops = $crate::kernels::Operands::new((x, x_layout), (p, p_layout))
                .with_grad((grad_y, grad_layout))
                .with_scalars(($params)(self));
            $crate::$backend::launch($kernel, ops)
        }
    };
}
pub(crate) use gpu_paths;

/// Element types with CUDA entry points.
pub(crate) const CUDA_DTYPES: [&str; 2] = ["f32", "f64"];
/// Element types with Metal entry points (Metal has no f64).
pub(crate) const METAL_DTYPES: [&str; 1] = ["f32"];

/// grad-w launch geometry: a block (threadgroup) of `GRAD_W_COLS x GRAD_W_ROW_GROUPS` threads
/// per `GRAD_W_COLS` neurons. Both sources `#define` the same values (tested below).
pub(crate) const GRAD_W_COLS: u32 = 32;
pub(crate) const GRAD_W_ROW_GROUPS: u32 = 16;

/// Threads per block for the element-wise kernels.
pub(crate) const ELEMENTWISE_THREADS: u32 = 256;
/// CUDA's limit on grid.y; the CUDA kernels loop over the rows beyond it.
pub(crate) const CUDA_MAX_GRID_Y: u32 = 65_535;

/// Launch geometry of the element-wise kernels over `[rows, cols]`, as
/// `((grid x, grid y), (block x, block y))`: blocks of ELEMENTWISE_THREADS threads, x over
/// columns (a power of two from 32, so that warps read whole runs of a row), y over rows, the grid's
/// y capped at `max_grid_rows` (the CUDA kernels loop over the rows beyond it). Public (hidden)
/// for the emulation tests, which launch the kernel sources with it.
#[doc(hidden)]
pub fn elementwise_geometry(rows: u32, cols: u32, max_grid_rows: u32) -> ((u32, u32), (u32, u32)) {
    let block_x = cols.next_power_of_two().clamp(32, ELEMENTWISE_THREADS);
    let block_y = ELEMENTWISE_THREADS / block_x;
    let grid_x = cols.div_ceil(block_x).max(1);
    let grid_y = rows.div_ceil(block_y).clamp(1, max_grid_rows.max(1));
    ((grid_x, grid_y), (block_x, block_y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, parameter list)` of every entry point: in CUDA the functions after
    /// `extern "C" __global__ void`, in Metal after `kernel void`.
    fn entry_points<'a>(source: &'a str, marker: &str) -> Vec<(&'a str, &'a str)> {
        source
            .match_indices(marker)
            .map(|(at, _)| {
                let rest = &source[at + marker.len()..];
                let open = rest.find('(').expect("entry point without '('");
                // The list ends at the ')' that balances the first '('.
                let mut depth = 0;
                let close = rest[open..]
                    .char_indices()
                    .find_map(|(i, ch)| {
                        depth += match ch {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        (depth == 0).then_some(open + i)
                    })
                    .expect("entry point without a closing ')'");
                (rest[..open].trim(), &rest[open + 1..close])
            })
            .collect()
    }

    /// Top-level comma-separated parameters of a parameter list.
    fn parameters(list: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, ch) in list.char_indices() {
            match ch {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(list[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(list[start..].trim());
        out
    }

    fn expected_entries(dtypes: &[&str]) -> Vec<(String, usize)> {
        KERNELS
            .iter()
            .flat_map(|k| dtypes.iter().map(move |d| (k.entry(d), k.args())))
            .collect()
    }

    #[test]
    fn cuda_source_has_exactly_the_listed_kernels_with_their_argument_counts() {
        let found: Vec<(String, usize)> = entry_points(CUDA_SOURCE, "extern \"C\" __global__ void")
            .into_iter()
            .map(|(name, list)| (name.to_string(), parameters(list).len()))
            .collect();
        assert_eq!(found, expected_entries(&CUDA_DTYPES));
    }

    #[test]
    fn metal_source_has_exactly_the_listed_kernels_with_their_buffer_counts() {
        let found: Vec<(String, usize)> = entry_points(METAL_SOURCE, "\nkernel void")
            .into_iter()
            .map(|(name, list)| {
                // Host-bound parameters carry [[buffer(i)]], numbered 0, 1, ... in order.
                let buffers: Vec<&str> = parameters(list)
                    .into_iter()
                    .filter(|p| p.contains("[[buffer("))
                    .collect();
                for (i, p) in buffers.iter().enumerate() {
                    assert!(
                        p.contains(&format!("[[buffer({i})]]")),
                        "{name}: parameter {i} is bound as {p}"
                    );
                }
                (name.to_string(), buffers.len())
            })
            .collect();
        assert_eq!(found, expected_entries(&METAL_DTYPES));
    }

    /// The parameter names the host's argument order implies.
    fn expected_names(k: Kernel) -> Vec<&'static str> {
        let mut names = vec!["x"];
        names.push(match k.phase {
            Phase::PerNeuron => "ids",
            Phase::Mixture => "w",
            Phase::Learnable => "params",
        });
        if k.reads_grad {
            names.push("grad_y");
        }
        names.push(match (k.reads_grad, k.reduces_batch, k.phase) {
            (_, true, Phase::Learnable) => "grad_p",
            (_, true, _) => "grad_w",
            (true, false, _) => "grad_x",
            (false, false, _) => "y",
        });
        match k.phase {
            Phase::PerNeuron => {}
            Phase::Mixture => names.extend(["limit", "pool"]),
            Phase::Learnable => names.extend(["kind", "units"]),
        }
        names.extend(["rows", "cols"]);
        names
    }

    /// The last identifier of a parameter, attributes (`[[buffer(0)]]`) removed.
    fn parameter_name(p: &str) -> &str {
        let p = p.split("[[").next().unwrap().trim_end();
        let start = p
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        &p[start..]
    }

    #[test]
    fn both_sources_take_the_arguments_in_the_hosts_order() {
        for (source, marker, file) in [
            (CUDA_SOURCE, "extern \"C\" __global__ void", "mixed_act.cu"),
            (METAL_SOURCE, "\nkernel void", "mixed_act.metal"),
        ] {
            for (name, list) in entry_points(source, marker) {
                let kernel = KERNELS
                    .into_iter()
                    .find(|k| name.rsplit_once('_').map(|(base, _)| base) == Some(k.name))
                    .unwrap_or_else(|| panic!("{file}: {name} is not in KERNELS"));
                let names: Vec<&str> = parameters(list)
                    .into_iter()
                    .filter(|p| marker.contains("extern") || p.contains("[[buffer("))
                    .map(parameter_name)
                    .collect();
                assert_eq!(names, expected_names(kernel), "{file}: {name}");
            }
        }
    }

    #[test]
    fn elementwise_geometry_covers_every_element_with_full_warps() {
        for (rows, cols) in [
            (1, 1),
            (128, 64),
            (128, 512),
            (75, 70),
            (8192, 8192),
            (200_000, 10),
        ] {
            let ((gx, gy), (bx, by)) = elementwise_geometry(rows, cols, CUDA_MAX_GRID_Y);
            assert_eq!(bx * by, ELEMENTWISE_THREADS, "[{rows}, {cols}]");
            assert_eq!(bx % 32, 0);
            assert!(
                gx * bx >= cols && (gx - 1) * bx < cols,
                "[{rows}, {cols}] columns"
            );
            assert!(gy <= CUDA_MAX_GRID_Y);
            // Rows are covered directly, or by the kernels' loop once grid.y is capped.
            assert!(
                gy * by >= rows || gy == CUDA_MAX_GRID_Y,
                "[{rows}, {cols}] rows"
            );
        }
        assert_eq!(
            elementwise_geometry(200_000, 10, u32::MAX).0 .1,
            200_000 / 8
        );
    }

    #[test]
    fn operands_are_checked_before_any_launch() {
        use candle_core::{CpuStorage, Shape};
        let x = CpuStorage::F32(vec![0.0; 12]);
        let x_layout = Layout::contiguous(Shape::from((3, 4)));
        let ids = CpuStorage::U32(vec![0; 4]);
        let ids_layout = Layout::contiguous(Shape::from(4));
        let ok = Operands::new((&x, &x_layout), (&ids, &ids_layout));
        assert_eq!(
            ok.check(PER_NEURON_FWD, "CUDA", &[DType::F32]).unwrap(),
            (1, 3, 4)
        );
        // A cohort: x [2, 3, 2] with ids [2, 2] (each model its own).
        let cohort = Layout::contiguous(Shape::from((2, 3, 2)));
        let ids_2x2 = Layout::contiguous(Shape::from((2, 2)));
        let ops = Operands::new((&x, &cohort), (&ids, &ids_2x2));
        assert_eq!(
            ops.check(PER_NEURON_FWD, "CUDA", &[DType::F32]).unwrap(),
            (2, 3, 2)
        );
        let e = Operands::new((&x, &cohort), (&ids, &ids_layout))
            .check(PER_NEURON_FWD, "CUDA", &[DType::F32])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ids") && e.contains("[2, 2]"), "{e}");
        assert_eq!(
            MIXTURE_GRAD_W.output(&Shape::from((2, 3, 5)), 4).1.dims(),
            [2, 5, 4]
        );
        assert_eq!(
            MIXTURE_GRAD_W.output(&Shape::from((3, 5)), 4).1.dims(),
            [5, 4]
        );
        assert_eq!(
            MIXTURE_FWD.output(&Shape::from((2, 3, 5)), 4).1.dims(),
            [2, 3, 5]
        );
        let err = |ops: Operands<CpuStorage>, k: Kernel| {
            ops.check(k, "CUDA", &[DType::F32]).unwrap_err().to_string()
        };
        // ids of another length, ids of another dtype, f64 where only f32 is taken.
        let short_layout = Layout::contiguous(Shape::from(3));
        let e = err(
            Operands::new((&x, &x_layout), (&ids, &short_layout)),
            PER_NEURON_FWD,
        );
        assert!(e.contains("ids") && e.contains("[3]"), "{e}");
        let ids64 = CpuStorage::I64(vec![0; 4]);
        let e = err(
            Operands::new((&x, &x_layout), (&ids64, &ids_layout)),
            PER_NEURON_FWD,
        );
        assert!(e.contains("U32"), "{e}");
        let x64 = CpuStorage::F64(vec![0.0; 12]);
        let e = err(
            Operands::new((&x64, &x_layout), (&ids, &ids_layout)),
            PER_NEURON_FWD,
        );
        assert!(e.contains("F64"), "{e}");
        // A mixture needs w [4, K]; a transposed x is not contiguous; grad_y must match x.
        let paper = Scalars::Mixture(MixtureParams {
            clamp: None,
            pool: Pool::paper(),
        });
        let e = err(
            Operands::new((&x, &x_layout), (&ids, &ids_layout)).with_scalars(paper),
            MIXTURE_FWD,
        );
        assert!(e.contains("w must be") && e.contains("[4, 6]"), "{e}");
        let e = err(
            Operands::new((&x, &x_layout), (&ids, &ids_layout)),
            MIXTURE_FWD,
        );
        assert!(e.contains("needs a pool"), "{e}");
        let t_layout = Layout::contiguous(Shape::from((4, 3)))
            .transpose(0, 1)
            .unwrap();
        let e = err(
            Operands::new((&x, &t_layout), (&ids, &ids_layout)),
            PER_NEURON_FWD,
        );
        assert!(e.contains("contiguous"), "{e}");
        let g_layout = Layout::contiguous(Shape::from((4, 3)));
        let ops = Operands::new((&x, &x_layout), (&ids, &ids_layout)).with_grad((&x, &g_layout));
        assert!(err(ops, PER_NEURON_GRAD_X).contains("grad_y"));
        // Learnable params: [cols, P] or [1, P] in the dtype of x, nothing else; grad-p sums
        // per column.
        let pau = Scalars::Learnable(Learnable::Pau);
        let params = CpuStorage::F32(vec![0.0; 40]);
        for (units, ok) in [(4, true), (1, true), (2, false), (3, false)] {
            let layout = Layout::contiguous(Shape::from((units, 10)));
            let ops = Operands::new((&x, &x_layout), (&params, &layout)).with_scalars(pau);
            assert_eq!(
                ops.check(LEARNABLE_FWD, "CUDA", &[DType::F32]).is_ok(),
                ok,
                "U = {units}"
            );
            if ok {
                assert_eq!((ops.units(), ops.width()), (units, 10));
            }
        }
        let e = err(
            Operands::new((&x, &x_layout), (&ids, &ids_layout))
                .with_scalars(Scalars::Learnable(Learnable::Prelu)),
            LEARNABLE_FWD,
        );
        assert!(e.contains("params must be F32 of shape [4, 1]"), "{e}");
        assert_eq!(
            LEARNABLE_GRAD_P
                .output(&Shape::from((2, 3, 5)), 10)
                .1
                .dims(),
            [2, 5, 10]
        );
    }

    #[test]
    fn both_sources_use_the_hosts_grad_w_geometry_and_constants() {
        for (source, file) in [
            (CUDA_SOURCE, "mixed_act.cu"),
            (METAL_SOURCE, "mixed_act.metal"),
        ] {
            for (name, value) in [
                ("GRAD_W_COLS", GRAD_W_COLS.to_string()),
                ("GRAD_W_ROW_GROUPS", GRAD_W_ROW_GROUPS.to_string()),
                ("ACT_COUNT", crate::Activation::COUNT.to_string()),
                ("PAU_NUMERATOR", crate::PAU_NUMERATOR.to_string()),
                ("PAU_DENOMINATOR", crate::PAU_DENOMINATOR.to_string()),
                (
                    "LEARNABLE_MAX_PARAMS",
                    crate::Learnable::Pau.params().to_string(),
                ),
            ] {
                let line = format!("#define {name} {value}\n");
                assert!(source.contains(&line), "{file} lacks `{}`", line.trim());
            }
            // The formulas' constants, as written in activation.rs (Metal's carry an f suffix).
            for (name, value) in [
                ("LEAKY_RELU_SLOPE", crate::LEAKY_RELU_SLOPE),
                ("SELU_ALPHA", crate::SELU_ALPHA),
                ("SELU_LAMBDA", crate::SELU_LAMBDA),
                ("ELU_ALPHA", crate::ELU_ALPHA),
                ("SOFTPLUS_THRESHOLD", crate::SOFTPLUS_THRESHOLD),
            ] {
                let prefix = format!("#define {name} ");
                let at = source.find(&prefix).expect(&prefix) + prefix.len();
                let text = source[at..].lines().next().unwrap().trim_end_matches('f');
                assert_eq!(text.parse::<f64>().unwrap(), value, "{file}: {name}");
            }
        }
    }

    #[test]
    fn the_checks_above_see_a_renamed_or_widened_kernel() {
        // A kernel renamed in one source, or given one more argument, must not pass.
        let renamed = CUDA_SOURCE.replace("void mixture_fwd_f32(", "void mixture_forward_f32(");
        let names: Vec<&str> = entry_points(&renamed, "extern \"C\" __global__ void")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!names.contains(&"mixture_fwd_f32"));
        let widened = METAL_SOURCE.replace(
            "constant uint& cols [[buffer(4)]],",
            "constant uint& cols [[buffer(4)]],\n constant uint& extra [[buffer(5)]],",
        );
        let (_, list) = entry_points(&widened, "\nkernel void")[0];
        assert_eq!(parameters(list).len(), 7);
    }
}
