//! CUDA launches of the kernels in `kernels/mixed_act.cu` (behind the `cuda` feature).
//!
//! The source is compiled once per process with NVRTC and loaded once per device through
//! candle's custom-module cache. Each function here is the `cuda_fwd` of one op in
//! `per_neuron.rs` / `mixture.rs`: inputs stay on the device, one kernel writes a fresh output,
//! nothing is copied to the host.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result};

use crate::kernels::{
    Kernel, CUDA_SOURCE, ELEMENTWISE_THREADS, GRAD_W_COLS, GRAD_W_ROW_GROUPS, MIXTURE_FWD,
    MIXTURE_GRAD_W, MIXTURE_GRAD_X, PER_NEURON_FWD, PER_NEURON_GRAD_X,
};
use crate::Activation;

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
        if self.pushed != self.kernel.args {
            bail!(
                "internal error: kernel {} takes {} arguments but the host passed {}",
                self.kernel.name,
                self.kernel.args,
                self.pushed
            );
        }
        // SAFETY: the argument count and order match the kernel's signature (checked above and
        // by the kernel-list tests), every buffer holds rows * cols (or cols * 6) elements of
        // the kernel's element type, and outputs are fresh allocations.
        unsafe { self.builder.launch(config) }.w()?;
        Ok(())
    }
}

/// One thread per element, in blocks of ELEMENTWISE_THREADS (the kernels loop if the grid is
/// capped).
fn elementwise_config(elements: usize) -> LaunchConfig {
    let blocks = elements
        .div_ceil(ELEMENTWISE_THREADS as usize)
        .clamp(1, 1 << 20);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (ELEMENTWISE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `(rows, cols)` of a `[rows, cols]` input, as the kernels' u32 arguments.
fn dims(layout: &Layout, what: &str) -> Result<(u32, u32)> {
    let (rows, cols) = layout.shape().dims2()?;
    match (u32::try_from(rows), u32::try_from(cols)) {
        (Ok(r), Ok(c)) => Ok((r, c)),
        _ => bail!("{what} of shape [{rows}, {cols}] is too large for the CUDA kernels"),
    }
}

/// A contiguous view of a float input. The public ops make GPU inputs contiguous first.
fn view<'a, T: GpuFloat>(
    s: &'a CudaStorage,
    layout: &Layout,
    what: &str,
) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(s.as_cuda_slice::<T>()?.slice(start..end)),
        None => bail!("{what} must be contiguous for the CUDA kernels"),
    }
}

/// The ids as a contiguous u32 view of `cols` entries.
fn ids_view<'a>(ids: &'a CudaStorage, layout: &Layout, cols: u32) -> Result<CudaView<'a, u32>> {
    if ids.dtype() != DType::U32 {
        bail!("ids must be u32 on CUDA, got {:?}", ids.dtype());
    }
    if layout.dims() != [cols as usize] {
        bail!(
            "ids must have shape [{cols}] (one id per neuron), got {:?}",
            layout.dims()
        );
    }
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(ids.as_cuda_slice::<u32>()?.slice(start..end)),
        None => bail!("ids must be contiguous for the CUDA kernels"),
    }
}

fn check_w(layout: &Layout, cols: u32) -> Result<()> {
    if layout.dims() != [cols as usize, Activation::COUNT] {
        bail!(
            "w must have shape [neurons, 6] = [{cols}, 6], got {:?}",
            layout.dims()
        );
    }
    Ok(())
}

fn check_same_dtype(a: &CudaStorage, b: &CudaStorage, what: &str) -> Result<()> {
    if a.dtype() != b.dtype() {
        bail!("{what} has dtype {:?} but x has {:?}", b.dtype(), a.dtype());
    }
    Ok(())
}

fn output<T: GpuFloat>(dev: &CudaDevice, elements: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every element is written by the kernel before anything reads it.
    unsafe { dev.alloc::<T>(elements) }
}

/// Phase 2 forward: `y = f_{ids[n]}(x)`.
pub(crate) fn per_neuron_fwd(
    x: &CudaStorage,
    x_layout: &Layout,
    ids: &CudaStorage,
    ids_layout: &Layout,
) -> Result<CudaStorage> {
    let (rows, cols) = dims(x_layout, "x")?;
    let ids = ids_view(ids, ids_layout, cols)?;
    with_float_type!(x.dtype(), |T| {
        let dev = &x.device;
        let x = view::<T>(x, x_layout, "x")?;
        let n = rows as usize * cols as usize;
        let mut y = output::<T>(dev, n)?;
        if n > 0 {
            let func =
                dev.get_or_load_custom_func(&PER_NEURON_FWD.entry(T::SUFFIX), MODULE, cuda_ptx()?)?;
            let mut launch = Launch::new(PER_NEURON_FWD, func.builder());
            launch.arg(&x).arg(&ids).arg(&mut y).arg(&rows).arg(&cols);
            launch.run(elementwise_config(n))?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
    })
}

/// Phase 2 backward: `grad_x = grad_y * f'_{ids[n]}(x)`.
pub(crate) fn per_neuron_grad_x(
    x: &CudaStorage,
    x_layout: &Layout,
    ids: &CudaStorage,
    ids_layout: &Layout,
    grad_y: &CudaStorage,
    grad_layout: &Layout,
) -> Result<CudaStorage> {
    let (rows, cols) = dims(x_layout, "x")?;
    let ids = ids_view(ids, ids_layout, cols)?;
    check_same_dtype(x, grad_y, "grad_y")?;
    with_float_type!(x.dtype(), |T| {
        let dev = &x.device;
        let x = view::<T>(x, x_layout, "x")?;
        let grad_y = view::<T>(grad_y, grad_layout, "grad_y")?;
        let n = rows as usize * cols as usize;
        let mut grad_x = output::<T>(dev, n)?;
        if n > 0 {
            let func = dev.get_or_load_custom_func(
                &PER_NEURON_GRAD_X.entry(T::SUFFIX),
                MODULE,
                cuda_ptx()?,
            )?;
            let mut launch = Launch::new(PER_NEURON_GRAD_X, func.builder());
            launch
                .arg(&x)
                .arg(&ids)
                .arg(&grad_y)
                .arg(&mut grad_x)
                .arg(&rows)
                .arg(&cols);
            launch.run(elementwise_config(n))?;
        }
        Ok(CudaStorage::wrap_cuda_slice(grad_x, dev.clone()))
    })
}

/// Phase 1 forward: `y = C(sum_k w[n, k] C(f_k(x)))`.
pub(crate) fn mixture_fwd(
    x: &CudaStorage,
    x_layout: &Layout,
    w: &CudaStorage,
    w_layout: &Layout,
    clamp: Option<f64>,
) -> Result<CudaStorage> {
    let (rows, cols) = dims(x_layout, "x")?;
    check_w(w_layout, cols)?;
    check_same_dtype(x, w, "w")?;
    with_float_type!(x.dtype(), |T| {
        let dev = &x.device;
        let x = view::<T>(x, x_layout, "x")?;
        let w = view::<T>(w, w_layout, "w")?;
        let limit = T::limit(clamp);
        let n = rows as usize * cols as usize;
        let mut y = output::<T>(dev, n)?;
        if n > 0 {
            let func =
                dev.get_or_load_custom_func(&MIXTURE_FWD.entry(T::SUFFIX), MODULE, cuda_ptx()?)?;
            let mut launch = Launch::new(MIXTURE_FWD, func.builder());
            launch
                .arg(&x)
                .arg(&w)
                .arg(&mut y)
                .arg(&limit)
                .arg(&rows)
                .arg(&cols);
            launch.run(elementwise_config(n))?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
    })
}

/// Phase 1 backward to x.
pub(crate) fn mixture_grad_x(
    x: &CudaStorage,
    x_layout: &Layout,
    w: &CudaStorage,
    w_layout: &Layout,
    grad_y: &CudaStorage,
    grad_layout: &Layout,
    clamp: Option<f64>,
) -> Result<CudaStorage> {
    let (rows, cols) = dims(x_layout, "x")?;
    check_w(w_layout, cols)?;
    check_same_dtype(x, w, "w")?;
    check_same_dtype(x, grad_y, "grad_y")?;
    with_float_type!(x.dtype(), |T| {
        let dev = &x.device;
        let x = view::<T>(x, x_layout, "x")?;
        let w = view::<T>(w, w_layout, "w")?;
        let grad_y = view::<T>(grad_y, grad_layout, "grad_y")?;
        let limit = T::limit(clamp);
        let n = rows as usize * cols as usize;
        let mut grad_x = output::<T>(dev, n)?;
        if n > 0 {
            let func =
                dev.get_or_load_custom_func(&MIXTURE_GRAD_X.entry(T::SUFFIX), MODULE, cuda_ptx()?)?;
            let mut launch = Launch::new(MIXTURE_GRAD_X, func.builder());
            launch
                .arg(&x)
                .arg(&w)
                .arg(&grad_y)
                .arg(&mut grad_x)
                .arg(&limit)
                .arg(&rows)
                .arg(&cols);
            launch.run(elementwise_config(n))?;
        }
        Ok(CudaStorage::wrap_cuda_slice(grad_x, dev.clone()))
    })
}

/// Phase 1 backward to w: a batch reduction laid out so that it needs no atomics (see the
/// comment above `mixture_grad_w` in the .cu file), hence bitwise reproducible.
pub(crate) fn mixture_grad_w(
    x: &CudaStorage,
    x_layout: &Layout,
    w: &CudaStorage,
    w_layout: &Layout,
    grad_y: &CudaStorage,
    grad_layout: &Layout,
    clamp: Option<f64>,
) -> Result<CudaStorage> {
    let (rows, cols) = dims(x_layout, "x")?;
    check_w(w_layout, cols)?;
    check_same_dtype(x, w, "w")?;
    check_same_dtype(x, grad_y, "grad_y")?;
    with_float_type!(x.dtype(), |T| {
        let dev = &x.device;
        let x = view::<T>(x, x_layout, "x")?;
        let w = view::<T>(w, w_layout, "w")?;
        let grad_y = view::<T>(grad_y, grad_layout, "grad_y")?;
        let limit = T::limit(clamp);
        let mut grad_w = output::<T>(dev, cols as usize * Activation::COUNT)?;
        if cols > 0 {
            let func =
                dev.get_or_load_custom_func(&MIXTURE_GRAD_W.entry(T::SUFFIX), MODULE, cuda_ptx()?)?;
            let mut launch = Launch::new(MIXTURE_GRAD_W, func.builder());
            launch
                .arg(&x)
                .arg(&w)
                .arg(&grad_y)
                .arg(&mut grad_w)
                .arg(&limit)
                .arg(&rows)
                .arg(&cols);
            launch.run(LaunchConfig {
                grid_dim: (cols.div_ceil(GRAD_W_COLS), 1, 1),
                block_dim: (GRAD_W_COLS, GRAD_W_ROW_GROUPS, 1),
                shared_mem_bytes: 0,
            })?;
        }
        Ok(CudaStorage::wrap_cuda_slice(grad_w, dev.clone()))
    })
}
