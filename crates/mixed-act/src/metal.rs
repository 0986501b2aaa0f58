//! Metal launches of the kernels in `kernels/mixed_act.metal` (behind the `metal` feature).
//!
//! The MSL source is compiled once per device with `new_library_with_source`, and its
//! pipelines are cached per device. [`launch`] is the `metal_fwd` of every op in
//! `per_neuron.rs`, `mixture.rs` and `learnable.rs`, encoded on candle's current command encoder (outputs bound
//! with `set_output_buffer`, so candle inserts the barriers later kernels need). Metal has no
//! f64: the kernels take f32.
//!
//! This file cannot be compiled on Linux (objc2 refuses non-Apple targets); it mirrors
//! `cuda.rs` so that a reviewer can compare the two.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::metal_backend::DeviceId;
use candle_core::{bail, DType, Layout, MetalDevice, MetalStorage, Result, Shape};
use candle_metal_kernels::metal::{Buffer, ComputeCommandEncoder, ComputePipeline};
use objc2_metal::MTLSize;

use crate::kernels::{
    elementwise_geometry, Kernel, Operands, Scalars, GRAD_W_COLS, GRAD_W_ROW_GROUPS, KERNELS,
    METAL_DTYPES, METAL_SOURCE,
};

/// Every pipeline of our library on one device, by entry-point name.
type Pipelines = HashMap<String, ComputePipeline>;

/// The pipeline of `kernel` for f32 on `device`; the first call on a device compiles the MSL
/// source and builds every pipeline.
fn pipeline(device: &MetalDevice, kernel: Kernel) -> Result<ComputePipeline> {
    static CACHE: OnceLock<Mutex<HashMap<DeviceId, Arc<Pipelines>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    let pipelines = match cache.entry(device.id()) {
        Entry::Occupied(entry) => entry.get().clone(),
        Entry::Vacant(entry) => entry.insert(Arc::new(build_pipelines(device)?)).clone(),
    };
    let name = kernel.entry("f32");
    match pipelines.get(&name) {
        Some(p) => Ok(p.clone()),
        None => bail!("internal error: no Metal pipeline {name}"),
    }
}

/// Compiles the MSL source on `device` and builds a pipeline for every entry point.
fn build_pipelines(device: &MetalDevice) -> Result<Pipelines> {
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
    Ok(pipelines)
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
    fn input(&mut self, (storage, layout): (&MetalStorage, &Layout)) -> &mut Self {
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
        if self.bound != self.kernel.args() {
            bail!(
                "internal error: kernel {} takes {} arguments but the host bound {}",
                self.kernel.name,
                self.kernel.args(),
                self.bound
            );
        }
        self.encoder
            .dispatch_thread_groups(groups, threads_per_group);
        Ok(())
    }
}

fn size(width: usize, height: usize, depth: usize) -> MTLSize {
    MTLSize {
        width,
        height,
        depth,
    }
}

/// Launches `kernel` on `ops` and returns its fresh output: the Metal twin of
/// `cuda::launch`, one function for all eight kernels.
pub(crate) fn launch(kernel: Kernel, ops: Operands<MetalStorage>) -> Result<(MetalStorage, Shape)> {
    let (models, rows, cols) = ops.check(kernel, "Metal", &[DType::F32])?;
    let device = ops.x.0.device();
    let (elements, shape) = kernel.output(ops.x.1.shape(), ops.width());
    let out = device
        .new_buffer_builder()
        .with_size_for(elements, DType::F32)
        .with_label(kernel.name)
        .build()?;
    if elements > 0 {
        let pipeline = pipeline(device, kernel)?;
        let encoder = device.command_encoder()?;
        let mut launch = Launch::new(kernel, encoder.as_ref(), &pipeline);
        launch.input(ops.x).input(ops.per_neuron);
        if let Some(grad_y) = ops.grad_y {
            launch.input(grad_y);
        }
        launch.output(&out);
        match ops.scalars {
            Scalars::None => {}
            Scalars::Mixture(mixture) => {
                launch
                    .scalar(&mixture.clamp.map_or(f32::INFINITY, |c| c as f32))
                    .scalar(&mixture.pool.packed());
            }
            Scalars::Learnable(kind) => {
                launch.scalar(&kind.id()).scalar(&(ops.units() as u32));
            }
        }
        launch.scalar(&rows).scalar(&cols);
        if kernel.reduces_batch {
            // See the comment above mixture_grad_w in the .metal file (learnable_grad_p's is the same).
            launch.dispatch(
                size(cols.div_ceil(GRAD_W_COLS) as usize, 1, models as usize),
                size(GRAD_W_COLS as usize, GRAD_W_ROW_GROUPS as usize, 1),
            )?;
        } else {
            // One thread per element (no cap on the grid: the kernels bounds-check), one grid
            // layer per model of a cohort.
            let ((gx, gy), (bx, by)) = elementwise_geometry(rows, cols, u32::MAX);
            launch.dispatch(
                size(gx as usize, gy as usize, models as usize),
                size(bx as usize, by as usize, 1),
            )?;
        }
    }
    Ok((
        MetalStorage::new(out, device.clone(), elements, DType::F32),
        shape,
    ))
}
