//! Metal launches of the kernels in `kernels/mixed_act.metal` (behind the `metal` feature).
//!
//! The MSL source is compiled once per device with `new_library_with_source`, and its
//! pipelines are cached per device. Each function here is the `metal_fwd` of one op in
//! `per_neuron.rs` / `mixture.rs`, encoded on candle's current command encoder (outputs bound
//! with `set_output_buffer`, so candle inserts the barriers later kernels need). Metal has no
//! f64: the kernels take f32.
//!
//! This file cannot be compiled on Linux (objc2 refuses non-Apple targets); it mirrors
//! `cuda.rs` so that a reviewer can compare the two.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::metal_backend::DeviceId;
use candle_core::{bail, DType, Layout, MetalDevice, MetalStorage, Result};
use candle_metal_kernels::metal::{Buffer, ComputeCommandEncoder, ComputePipeline};
use objc2_metal::MTLSize;

use crate::kernels::{
    Kernel, ELEMENTWISE_THREADS, GRAD_W_COLS, GRAD_W_ROW_GROUPS, KERNELS, METAL_DTYPES,
    METAL_SOURCE, MIXTURE_FWD, MIXTURE_GRAD_W, MIXTURE_GRAD_X, PER_NEURON_FWD, PER_NEURON_GRAD_X,
};
use crate::Activation;

/// Every pipeline of our library on one device, by entry-point name.
type Pipelines = HashMap<String, ComputePipeline>;

/// The pipeline of `kernel` for f32 on `device`; the first call on a device compiles the MSL
/// source and builds every pipeline.
fn pipeline(device: &MetalDevice, kernel: Kernel) -> Result<ComputePipeline> {
    static CACHE: OnceLock<Mutex<HashMap<DeviceId, Arc<Pipelines>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    let pipelines = match cache.get(&device.id()) {
        Some(p) => p.clone(),
        None => {
            let metal = device.metal_device();
            let library = metal
                .new_library_with_source(METAL_SOURCE, None)
                .map_err(|e| {
                    candle_core::Error::Msg(format!("Metal could not compile mixed_act.metal: {e}"))
                })?;
            let mut pipelines = Pipelines::new();
            for k in KERNELS {
                for dtype in METAL_DTYPES {
                    let name = k.entry(dtype);
                    let function = library
                        .get_function(&name, None)
                        .map_err(candle_core::Error::wrap)?;
                    let pipeline = metal
                        .new_compute_pipeline_state_with_function(&function)
                        .map_err(candle_core::Error::wrap)?;
                    pipelines.insert(name, pipeline);
                }
            }
            let pipelines = Arc::new(pipelines);
            cache.insert(device.id(), pipelines.clone());
            pipelines
        }
    };
    let name = kernel.entry("f32");
    match pipelines.get(&name) {
        Some(p) => Ok(p.clone()),
        None => bail!("internal error: no Metal pipeline {name}"),
    }
}

/// Binds a kernel's arguments in order (buffer index = position), counting them, and refuses
/// to dispatch when the count differs from [`Kernel::args`] (the list the tests check against
/// the source).
struct Launch<'a> {
    kernel: Kernel,
    encoder: &'a ComputeCommandEncoder,
    bound: usize,
}

impl<'a> Launch<'a> {
    fn new(kernel: Kernel, encoder: &'a ComputeCommandEncoder, pipeline: &ComputePipeline) -> Self {
        encoder.set_compute_pipeline_state(pipeline);
        Self {
            kernel,
            encoder,
            bound: 0,
        }
    }

    /// An input tensor: its buffer and the byte offset of its first element.
    fn input(&mut self, storage: &MetalStorage, layout: &Layout) -> &mut Self {
        let offset = layout.start_offset() * storage.dtype().size_in_bytes();
        self.encoder
            .set_input_buffer(self.bound, Some(storage.buffer()), offset);
        self.bound += 1;
        self
    }

    fn output(&mut self, buffer: &Buffer) -> &mut Self {
        self.encoder.set_output_buffer(self.bound, Some(buffer), 0);
        self.bound += 1;
        self
    }

    fn scalar<T>(&mut self, value: &T) -> &mut Self {
        self.encoder.set_bytes(self.bound, value);
        self.bound += 1;
        self
    }

    fn dispatch(&self, groups: MTLSize, threads_per_group: MTLSize) -> Result<()> {
        if self.bound != self.kernel.args {
            bail!(
                "internal error: kernel {} takes {} arguments but the host bound {}",
                self.kernel.name,
                self.kernel.args,
                self.bound
            );
        }
        self.encoder
            .dispatch_thread_groups(groups, threads_per_group);
        Ok(())
    }
}

fn size(width: usize, height: usize) -> MTLSize {
    MTLSize {
        width,
        height,
        depth: 1,
    }
}

/// One thread per element in groups of ELEMENTWISE_THREADS (the kernels bounds-check).
fn elementwise_groups(elements: usize) -> (MTLSize, MTLSize) {
    let threads = ELEMENTWISE_THREADS as usize;
    (size(elements.div_ceil(threads), 1), size(threads, 1))
}

/// `(rows, cols)` of a `[rows, cols]` input, checked: f32 only, contiguous, and few enough
/// elements for the kernels' u32 indices.
fn check_input(storage: &MetalStorage, layout: &Layout, what: &str) -> Result<(u32, u32)> {
    if storage.dtype() != DType::F32 {
        bail!(
            "the Metal activation kernels take f32 tensors, {what} is {:?}",
            storage.dtype()
        );
    }
    if !layout.is_contiguous() {
        bail!("{what} must be contiguous for the Metal kernels");
    }
    let (rows, cols) = layout.shape().dims2()?;
    if rows.checked_mul(cols).is_none_or(|n| n > u32::MAX as usize) {
        bail!("{what} of shape [{rows}, {cols}] is too large for the Metal kernels");
    }
    Ok((rows as u32, cols as u32))
}

fn check_ids(ids: &MetalStorage, layout: &Layout, cols: u32) -> Result<()> {
    if ids.dtype() != DType::U32 {
        bail!("ids must be u32 on Metal, got {:?}", ids.dtype());
    }
    if layout.dims() != [cols as usize] || !layout.is_contiguous() {
        bail!(
            "ids must be a contiguous [{cols}] tensor (one id per neuron), got {:?}",
            layout.dims()
        );
    }
    Ok(())
}

fn check_w(w: &MetalStorage, layout: &Layout, cols: u32) -> Result<()> {
    if w.dtype() != DType::F32 || !layout.is_contiguous() {
        bail!("w must be a contiguous f32 tensor on Metal");
    }
    if layout.dims() != [cols as usize, Activation::COUNT] {
        bail!(
            "w must have shape [neurons, 6] = [{cols}, 6], got {:?}",
            layout.dims()
        );
    }
    Ok(())
}

fn limit(clamp: Option<f64>) -> f32 {
    clamp.map_or(f32::INFINITY, |c| c as f32)
}

fn new_output(device: &MetalDevice, elements: usize, label: &str) -> Result<Arc<Buffer>> {
    device
        .new_buffer_builder()
        .with_size_for(elements, DType::F32)
        .with_label(label)
        .build()
}

fn storage(buffer: Arc<Buffer>, device: &MetalDevice, elements: usize) -> MetalStorage {
    MetalStorage::new(buffer, device.clone(), elements, DType::F32)
}

/// Phase 2 forward: `y = f_{ids[n]}(x)`.
pub(crate) fn per_neuron_fwd(
    x: &MetalStorage,
    x_layout: &Layout,
    ids: &MetalStorage,
    ids_layout: &Layout,
) -> Result<MetalStorage> {
    let (rows, cols) = check_input(x, x_layout, "x")?;
    check_ids(ids, ids_layout, cols)?;
    let device = x.device();
    let n = rows as usize * cols as usize;
    let y = new_output(device, n, "per-neuron-fwd")?;
    if n > 0 {
        let pipeline = pipeline(device, PER_NEURON_FWD)?;
        let encoder = device.command_encoder()?;
        let mut launch = Launch::new(PER_NEURON_FWD, encoder.as_ref(), &pipeline);
        launch.input(x, x_layout).input(ids, ids_layout).output(&y);
        launch.scalar(&rows).scalar(&cols);
        let (groups, threads) = elementwise_groups(n);
        launch.dispatch(groups, threads)?;
    }
    Ok(storage(y, device, n))
}

/// Phase 2 backward: `grad_x = grad_y * f'_{ids[n]}(x)`.
pub(crate) fn per_neuron_grad_x(
    x: &MetalStorage,
    x_layout: &Layout,
    ids: &MetalStorage,
    ids_layout: &Layout,
    grad_y: &MetalStorage,
    grad_layout: &Layout,
) -> Result<MetalStorage> {
    let (rows, cols) = check_input(x, x_layout, "x")?;
    check_ids(ids, ids_layout, cols)?;
    check_input(grad_y, grad_layout, "grad_y")?;
    let device = x.device();
    let n = rows as usize * cols as usize;
    let grad_x = new_output(device, n, "per-neuron-grad-x")?;
    if n > 0 {
        let pipeline = pipeline(device, PER_NEURON_GRAD_X)?;
        let encoder = device.command_encoder()?;
        let mut launch = Launch::new(PER_NEURON_GRAD_X, encoder.as_ref(), &pipeline);
        launch
            .input(x, x_layout)
            .input(ids, ids_layout)
            .input(grad_y, grad_layout);
        launch.output(&grad_x).scalar(&rows).scalar(&cols);
        let (groups, threads) = elementwise_groups(n);
        launch.dispatch(groups, threads)?;
    }
    Ok(storage(grad_x, device, n))
}

/// Phase 1 forward: `y = C(sum_k w[n, k] C(f_k(x)))`.
pub(crate) fn mixture_fwd(
    x: &MetalStorage,
    x_layout: &Layout,
    w: &MetalStorage,
    w_layout: &Layout,
    clamp: Option<f64>,
) -> Result<MetalStorage> {
    let (rows, cols) = check_input(x, x_layout, "x")?;
    check_w(w, w_layout, cols)?;
    let device = x.device();
    let n = rows as usize * cols as usize;
    let y = new_output(device, n, "mixture-fwd")?;
    if n > 0 {
        let pipeline = pipeline(device, MIXTURE_FWD)?;
        let encoder = device.command_encoder()?;
        let mut launch = Launch::new(MIXTURE_FWD, encoder.as_ref(), &pipeline);
        launch.input(x, x_layout).input(w, w_layout).output(&y);
        launch.scalar(&limit(clamp)).scalar(&rows).scalar(&cols);
        let (groups, threads) = elementwise_groups(n);
        launch.dispatch(groups, threads)?;
    }
    Ok(storage(y, device, n))
}

/// Phase 1 backward to x.
pub(crate) fn mixture_grad_x(
    x: &MetalStorage,
    x_layout: &Layout,
    w: &MetalStorage,
    w_layout: &Layout,
    grad_y: &MetalStorage,
    grad_layout: &Layout,
    clamp: Option<f64>,
) -> Result<MetalStorage> {
    let (rows, cols) = check_input(x, x_layout, "x")?;
    check_w(w, w_layout, cols)?;
    check_input(grad_y, grad_layout, "grad_y")?;
    let device = x.device();
    let n = rows as usize * cols as usize;
    let grad_x = new_output(device, n, "mixture-grad-x")?;
    if n > 0 {
        let pipeline = pipeline(device, MIXTURE_GRAD_X)?;
        let encoder = device.command_encoder()?;
        let mut launch = Launch::new(MIXTURE_GRAD_X, encoder.as_ref(), &pipeline);
        launch
            .input(x, x_layout)
            .input(w, w_layout)
            .input(grad_y, grad_layout);
        launch
            .output(&grad_x)
            .scalar(&limit(clamp))
            .scalar(&rows)
            .scalar(&cols);
        let (groups, threads) = elementwise_groups(n);
        launch.dispatch(groups, threads)?;
    }
    Ok(storage(grad_x, device, n))
}

/// Phase 1 backward to w: the atomics-free batch reduction described in the .metal file.
pub(crate) fn mixture_grad_w(
    x: &MetalStorage,
    x_layout: &Layout,
    w: &MetalStorage,
    w_layout: &Layout,
    grad_y: &MetalStorage,
    grad_layout: &Layout,
    clamp: Option<f64>,
) -> Result<MetalStorage> {
    let (rows, cols) = check_input(x, x_layout, "x")?;
    check_w(w, w_layout, cols)?;
    check_input(grad_y, grad_layout, "grad_y")?;
    let device = x.device();
    let n = cols as usize * Activation::COUNT;
    let grad_w = new_output(device, n, "mixture-grad-w")?;
    if cols > 0 {
        let pipeline = pipeline(device, MIXTURE_GRAD_W)?;
        let encoder = device.command_encoder()?;
        let mut launch = Launch::new(MIXTURE_GRAD_W, encoder.as_ref(), &pipeline);
        launch
            .input(x, x_layout)
            .input(w, w_layout)
            .input(grad_y, grad_layout);
        launch
            .output(&grad_w)
            .scalar(&limit(clamp))
            .scalar(&rows)
            .scalar(&cols);
        launch.dispatch(
            size(cols.div_ceil(GRAD_W_COLS) as usize, 1),
            size(GRAD_W_COLS as usize, GRAD_W_ROW_GROUPS as usize),
        )?;
    }
    Ok(storage(grad_w, device, n))
}
