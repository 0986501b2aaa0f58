//! CUDA launches of the kernels in `kernels/mixed_act.cu` (behind the `cuda` feature).
//!
//! The source is compiled once per process with NVRTC and loaded once per device through
//! candle's custom-module cache. [`launch`] is the `cuda_fwd` of every op in `per_neuron.rs`,
//! `mixture.rs` and `learnable.rs`: inputs stay on the device, one kernel writes a fresh output, nothing is
//! copied to the host.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaView, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{bail, CudaStorage, DType, Layout, Result, Shape};

use crate::kernels::{
    elementwise_geometry, Kernel, Operands, Phase, Scalars, CUDA_MAX_GRID_Y, CUDA_SOURCE,
    GRAD_W_COLS, GRAD_W_ROW_GROUPS,
};

/// Name under which candle caches our module on each device.
const MODULE: &str = "smartmixed_mixed_act";

/// The PTX of `mixed_act.cu`, compiled with NVRTC on first use. Public so that a GPU-less
/// machine with libnvrtc can check that the source compiles (`scripts/gpu-check.sh` does).
pub fn cuda_ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        let options = CompileOptions {
            name: Some("mixed_act.cu".into()),
            ..Default::default()
        };
        compile_ptx_with_opts(CUDA_SOURCE, options)
            .map(|ptx| ptx.to_src())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(format!("NVRTC could not compile mixed_act.cu: {e}")))
}

/// Element types the CUDA kernels take, with their entry-point suffix.
trait GpuFloat: CudaDType + DeviceRepr + Copy {
    const SUFFIX: &'static str;
    /// The clamp limit as a kernel argument: +inf for no clamp.
    fn limit(clamp: Option<f64>) -> Self;
}

impl GpuFloat for f32 {
    const SUFFIX: &'static str = "f32";
    fn limit(clamp: Option<f64>) -> Self {
        clamp.map_or(f32::INFINITY, |c| c as f32)
    }
}

impl GpuFloat for f64 {
    const SUFFIX: &'static str = "f64";
    fn limit(clamp: Option<f64>) -> Self {
        clamp.unwrap_or(f64::INFINITY)
    }
}

/// Runs `$body` with `$t` bound to the Rust type of `$dtype` (f32 or f64), else a clear error.
macro_rules! with_float_type {
    ($dtype:expr, |$t:ident| $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            other => bail!("the CUDA activation kernels take f32 or f64 tensors, got {other:?}"),
        }
    };
}

/// A kernel launch that counts its arguments and refuses to launch when the count differs
/// from [`Kernel::args`] (the list the tests check against the source).
struct Launch<'a> {
    kernel: Kernel,
    builder: LaunchArgs<'a>,
    pushed: usize,
}

impl<'a> Launch<'a> {
    fn new(kernel: Kernel, builder: LaunchArgs<'a>) -> Self {
        Self {
            kernel,
            builder,
            pushed: 0,
        }
    }

    fn arg<A>(&mut self, arg: A) -> &mut Self
    where
        LaunchArgs<'a>: PushKernelArg<A>,
    {
        self.builder.arg(arg);
        self.pushed += 1;
        self
    }

    fn run(mut self, config: LaunchConfig) -> Result<()> {
        if self.pushed != self.kernel.args() {
            bail!(
                "internal error: kernel {} takes {} arguments but the host passed {}",
                self.kernel.name,
                self.kernel.args(),
                self.pushed
            );
        }
        // SAFETY: the argument count and order match the kernel's signature (checked above and
        // by the kernel-list tests), every buffer holds models * rows * cols (or models * cols * K) elements of
        // the kernel's element type, and outputs are fresh allocations.
        unsafe { self.builder.launch(config) }.w()?;
        Ok(())
    }
}

/// Launches `kernel` on `ops` and returns its fresh output. Every kernel takes its arguments
/// in the order [`Kernel`] documents, so this one function serves all eight.
pub(crate) fn launch(kernel: Kernel, ops: Operands<CudaStorage>) -> Result<(CudaStorage, Shape)> {
    let (models, rows, cols) = ops.check(kernel, "CUDA", &[DType::F32, DType::F64])?;
    with_float_type!(ops.x.0.dtype(), |T| launch_typed::<T>(
        kernel, &ops, models, rows, cols
    ))
}

fn launch_typed<T: GpuFloat>(
    kernel: Kernel,
    ops: &Operands<CudaStorage>,
    models: u32,
    rows: u32,
    cols: u32,
) -> Result<(CudaStorage, Shape)> {
    let dev = &ops.x.0.device;
    let (elements, shape) = kernel.output(ops.x.1.shape(), ops.width());
    // SAFETY: the kernel writes every element before anything reads it.
    let mut out = unsafe { dev.alloc::<T>(elements) }?;
    if elements > 0 {
        let x = view::<T>(ops.x)?;
        let grad_y = ops.grad_y.map(view::<T>).transpose()?;
        // Declared before the launch, which borrows them.
        let (ids, floats, limit, pool, kind, units);
        let func = dev.get_or_load_custom_func(&kernel.entry(T::SUFFIX), MODULE, cuda_ptx()?)?;
        let mut launch = Launch::new(kernel, func.builder());
        launch.arg(&x);
        match kernel.phase {
            Phase::PerNeuron => {
                ids = view::<u32>(ops.per_neuron)?;
                launch.arg(&ids);
            }
            Phase::Mixture | Phase::Learnable => {
                floats = view::<T>(ops.per_neuron)?;
                launch.arg(&floats);
            }
        }
        if let Some(grad_y) = &grad_y {
            launch.arg(grad_y);
        }
        launch.arg(&mut out);
        match ops.scalars {
            Scalars::None => {}
            Scalars::Mixture(m) => {
                (limit, pool) = (T::limit(m.clamp), m.pool.packed());
                launch.arg(&limit).arg(&pool);
            }
            Scalars::Learnable(k) => {
                (kind, units) = (k.id(), ops.units() as u32);
                launch.arg(&kind).arg(&units);
            }
        }
        launch.arg(&rows).arg(&cols);
        launch.run(if kernel.reduces_batch {
            // See the comment above mixture_grad_w in the .cu file (learnable_grad_p's is the same).
            LaunchConfig {
                grid_dim: (cols.div_ceil(GRAD_W_COLS), 1, models),
                block_dim: (GRAD_W_COLS, GRAD_W_ROW_GROUPS, 1),
                shared_mem_bytes: 0,
            }
        } else {
            let ((gx, gy), (bx, by)) = elementwise_geometry(rows, cols, CUDA_MAX_GRID_Y);
            // One grid layer per model of a cohort (blockIdx.z).
            LaunchConfig {
                grid_dim: (gx, gy, models),
                block_dim: (bx, by, 1),
                shared_mem_bytes: 0,
            }
        })?;
    }
    Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), shape))
}

/// The contiguous device view of an operand ([`Operands::check`] made sure it is contiguous
/// and of the right dtype).
fn view<'a, T: CudaDType>(
    (storage, layout): (&'a CudaStorage, &Layout),
) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(storage.as_cuda_slice::<T>()?.slice(start..end)),
        None => bail!("internal error: operand not contiguous"),
    }
}
