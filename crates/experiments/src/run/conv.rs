//! Convolution and pooling as gathers of windows, on any device: a convolution is a linear
//! layer over its input unfolded into windows (im2col), channels-last: the input's rows
//! `[examples x positions, channels]` (plus one row of zeros that padding reads) gathered into
//! `[examples x output positions, taps x channels]` by one `index_select`. Its input gradient
//! folds the windows back with one `index_add` in index order (deterministic, and a model of a
//! stack gets the bits it gets alone: its rows' contributions arrive in the same order).
//! Pooling gathers the same way and reduces over the taps; max pooling's backward sends each
//! gradient to its window's first maximum (`scatter_add`), average pooling's to every tap.
//!
//! These are candle's own device ops (CPU, CUDA, Metal), so the layers need no kernel of
//! their own; the products are the linear layers' ([`crate::run::products`]).

use std::sync::Mutex;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use crate::run::net::Shape;

/// The windows of a convolution or pooling layer over one input shape, and the gather index
/// for each number of examples seen (batches of training and evaluation differ).
#[derive(Debug)]
pub struct Windows {
    input: Shape,
    output_positions: usize,
    /// Kernel taps per window (kernel^dims).
    taps: usize,
    /// One example's index: per output position and tap, the input position read, or
    /// `input positions` for padding.
    local: Vec<u32>,
    cache: Mutex<Vec<(usize, Device, Tensor)>>,
}

impl Clone for Windows {
    fn clone(&self) -> Self {
        Windows {
            input: self.input.clone(),
            output_positions: self.output_positions,
            taps: self.taps,
            local: self.local.clone(),
            cache: Mutex::new(Vec::new()),
        }
    }
}

impl Windows {
    /// Windows of `kernel` with `stride` and `padding` over every spatial dimension of `input`,
    /// giving `output` positions (as [`crate::run::net::plan`] computed them).
    pub fn new(
        input: &Shape,
        output: &[usize],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        let dims = input.spatial.len();
        let taps = kernel.pow(dims as u32);
        let positions = input.positions();
        let output_positions: usize = output.iter().product();
        let mut local = Vec::with_capacity(output_positions * taps);
        let unravel = |mut i: usize, sizes: &[usize]| -> Vec<usize> {
            let mut at = vec![0; sizes.len()];
            for d in (0..sizes.len()).rev() {
                at[d] = i % sizes[d];
                i /= sizes[d];
            }
            at
        };
        let kernel_sizes = vec![kernel; dims];
        for o in 0..output_positions {
            let out_at = unravel(o, output);
            for t in 0..taps {
                let tap_at = unravel(t, &kernel_sizes);
                let mut flat = 0usize;
                let mut inside = true;
                for d in 0..dims {
                    let p = (out_at[d] * stride + tap_at[d]) as isize - padding as isize;
                    if p < 0 || p as usize >= input.spatial[d] {
                        inside = false;
                        break;
                    }
                    flat = flat * input.spatial[d] + p as usize;
                }
                local.push(if inside { flat } else { positions } as u32);
            }
        }
        Windows {
            input: input.clone(),
            output_positions,
            taps,
            local,
            cache: Mutex::new(Vec::new()),
        }
    }

    pub fn taps(&self) -> usize {
        self.taps
    }

    pub fn output_positions(&self) -> usize {
        self.output_positions
    }

    /// The gather index over `examples` examples: `[examples x output positions x taps]`, into
    /// `examples x input positions` rows and the zero row after them.
    fn index(&self, examples: usize, device: &Device) -> Result<Tensor> {
        let mut cache = self.cache.lock().expect("no panic while holding the cache");
        if let Some((_, _, t)) = cache
            .iter()
            .find(|(e, d, _)| *e == examples && d.same_device(device))
        {
            return Ok(t.clone());
        }
        let positions = self.input.positions();
        let zero_row = (examples * positions) as u32;
        let mut index = Vec::with_capacity(examples * self.local.len());
        for e in 0..examples {
            let base = (e * positions) as u32;
            index.extend(self.local.iter().map(|&p| match p as usize == positions {
                true => zero_row,
                false => base + p,
            }));
        }
        let t = Tensor::from_vec(index, examples * self.local.len(), device)?;
        // A handful of batch sizes occur (training, its last batch, evaluation).
        if cache.len() >= 8 {
            cache.remove(0);
        }
        cache.push((examples, device.clone(), t.clone()));
        Ok(t)
    }

    /// `x [M, B, positions x channels]` as rows of channels, with the zero row appended.
    fn padded_rows(&self, x: &Tensor) -> Result<(Tensor, usize)> {
        let (m, b, features) = x.dims3()?;
        anyhow::ensure!(
            features == self.input.features(),
            "an input of {features} features where the layer expects {}",
            self.input
        );
        let examples = m * b;
        let rows = x.reshape((examples * self.input.positions(), self.input.channels))?;
        let zero = Tensor::zeros((1, self.input.channels), rows.dtype(), rows.device())?;
        Ok((Tensor::cat(&[&rows, &zero], 0)?, examples))
    }

    /// im2col: `x [M, B, positions x channels]` to `[M, B x output positions, taps x channels]`.
    pub fn unfold(&self, x: &Tensor) -> Result<Tensor> {
        let (m, b, _) = x.dims3()?;
        let (rows, examples) = self.padded_rows(x)?;
        let cols = rows.index_select(&self.index(examples, x.device())?, 0)?;
        Ok(cols.reshape((
            m,
            b * self.output_positions,
            self.taps * self.input.channels,
        ))?)
    }

    /// The adjoint of [`Windows::unfold`]: each window's gradient added back to the input
    /// positions it read, `[M, B x output positions, taps x channels]` to `[M, B, positions x
    /// channels]`.
    pub fn fold(&self, cols: &Tensor, m: usize, b: usize) -> Result<Tensor> {
        let examples = m * b;
        let channels = self.input.channels;
        let cols = cols.reshape((examples * self.output_positions * self.taps, channels))?;
        let rows = examples * self.input.positions();
        let sum = Tensor::zeros((rows + 1, channels), cols.dtype(), cols.device())?.index_add(
            &self.index(examples, cols.device())?,
            &cols,
            0,
        )?;
        Ok(sum
            .narrow(0, 0, rows)?
            .reshape((m, b, self.input.features()))?)
    }
}

/// What a pooling layer's forward pass keeps: the tap of each output's maximum.
pub enum PoolSaved {
    Max(Tensor),
    Average,
}

/// Max or average pooling over `windows` (no padding): `x [M, B, positions x channels]` to
/// `[M, B, output positions x channels]`.
pub fn pool_forward(windows: &Windows, max: bool, x: &Tensor) -> Result<(Tensor, PoolSaved)> {
    let (m, b, _) = x.dims3()?;
    let channels = windows.input.channels;
    let (rows, examples) = windows.padded_rows(x)?;
    let cols = rows
        .index_select(&windows.index(examples, x.device())?, 0)?
        .reshape((examples * windows.output_positions, windows.taps, channels))?;
    let (y, saved) = match max {
        true => (cols.max(1)?, PoolSaved::Max(cols.argmax(1)?)),
        false => (cols.mean(1)?, PoolSaved::Average),
    };
    let y = y.reshape((m, b, windows.output_positions * channels))?;
    Ok((y, saved))
}

/// The gradient to a pooling layer's input from the gradient to its output.
pub fn pool_backward(windows: &Windows, saved: &PoolSaved, grad: &Tensor) -> Result<Tensor> {
    let (m, b, _) = grad.dims3()?;
    let channels = windows.input.channels;
    let examples = m * b;
    let outputs = examples * windows.output_positions;
    let grad = grad.reshape((outputs, channels))?;
    let index = windows.index(examples, grad.device())?;
    let rows = examples * windows.input.positions();
    let zeros = Tensor::zeros((rows + 1, channels), grad.dtype(), grad.device())?;
    let sum = match saved {
        PoolSaved::Max(argmax) => {
            // The input row of each output's maximum, per channel.
            let source_rows = index
                .reshape((outputs, windows.taps))?
                .gather(&argmax.to_dtype(DType::U32)?.contiguous()?, 1)?;
            zeros.scatter_add(&source_rows, &grad, 0)?
        }
        PoolSaved::Average => {
            let share = (grad / windows.taps as f64)?
                .unsqueeze(1)?
                .broadcast_as((outputs, windows.taps, channels))?
                .contiguous()?
                .reshape((outputs * windows.taps, channels))?;
            zeros.index_add(&index, &share, 0)?
        }
    };
    Ok(sum
        .narrow(0, 0, rows)?
        .reshape((m, b, windows.input.features()))?)
}
