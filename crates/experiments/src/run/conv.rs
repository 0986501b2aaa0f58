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
//! their own; the products are the linear layers' ([`crate::run::products`]). On the CPU the
//! gather, the fold and max pooling run as plain loops over the examples in parallel (an
//! example's rows are its own), which give candle's bits: the gather and the maxima copy, and
//! every sum adds in candle's order (index order, from zero).

use std::sync::Mutex;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::run::cpu_ops::{add_row, with_cpu_f32};
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
    /// The same as runs of neighbouring taps that read neighbouring positions (a kernel row
    /// inside the input): (first slot, first position, length), in slot order, padding left
    /// out. The CPU paths copy and add whole runs.
    runs: Vec<(usize, usize, usize)>,
    cache: Mutex<Vec<(Device, Tensor)>>,
}

impl Clone for Windows {
    fn clone(&self) -> Self {
        Windows {
            input: self.input.clone(),
            output_positions: self.output_positions,
            taps: self.taps,
            local: self.local.clone(),
            runs: self.runs.clone(),
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
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for (slot, &p) in local.iter().enumerate() {
            let p = p as usize;
            if p == positions {
                continue;
            }
            match runs.last_mut() {
                Some((first, start, len)) if *first + *len == slot && *start + *len == p => {
                    *len += 1
                }
                _ => runs.push((slot, p, 1)),
            }
        }
        Windows {
            input: input.clone(),
            output_positions,
            taps,
            local,
            runs,
            cache: Mutex::new(Vec::new()),
        }
    }

    pub fn taps(&self) -> usize {
        self.taps
    }

    pub fn output_positions(&self) -> usize {
        self.output_positions
    }

    /// One example's gather index on `device`: per output position and tap, the position read
    /// (`input positions` for padding: the zero position appended to every example). Its size
    /// is the layer's, not the batch's, so a large evaluation batch or cohort costs nothing
    /// here.
    fn index(&self, device: &Device) -> Result<Tensor> {
        let mut cache = self.cache.lock().expect("no panic while holding the cache");
        if let Some((_, t)) = cache.iter().find(|(d, _)| d.same_device(device)) {
            return Ok(t.clone());
        }
        let t = Tensor::from_vec(self.local.clone(), self.local.len(), device)?;
        cache.push((device.clone(), t.clone()));
        Ok(t)
    }

    /// `x [M, B, positions x channels]` as `[examples, positions + 1, channels]`: each example's
    /// positions and a zero position after them, which padding reads.
    fn padded_examples(&self, x: &Tensor) -> Result<(Tensor, usize)> {
        let (m, b, features) = x.dims3()?;
        anyhow::ensure!(
            features == self.input.features(),
            "an input of {features} features where the layer expects {}",
            self.input
        );
        let examples = m * b;
        let (positions, channels) = (self.input.positions(), self.input.channels);
        let rows = x.reshape((examples, positions, channels))?;
        let zero = Tensor::zeros((examples, 1, channels), rows.dtype(), rows.device())?;
        Ok((Tensor::cat(&[&rows, &zero], 1)?, examples))
    }

    /// im2col: `x [M, B, positions x channels]` to `[M, B x output positions, taps x channels]`.
    pub fn unfold(&self, x: &Tensor) -> Result<Tensor> {
        let (m, b, features) = x.dims3()?;
        anyhow::ensure!(
            features == self.input.features(),
            "an input of {features} features where the layer expects {}",
            self.input
        );
        let (c, positions) = (self.input.channels, self.input.positions());
        let window = self.output_positions * self.taps * c;
        let cpu = with_cpu_f32(x, |data| {
            let mut cols = vec![0f32; m * b * window];
            cols.par_chunks_mut(window)
                .zip(data.par_chunks(positions * c))
                .for_each(|(dst, src)| {
                    for &(slot, p, len) in &self.runs {
                        dst[slot * c..][..len * c].copy_from_slice(&src[p * c..][..len * c]);
                    }
                });
            cols
        });
        if let Some(cols) = cpu {
            let shape = (m, b * self.output_positions, self.taps * c);
            return Ok(Tensor::from_vec(cols, shape, x.device())?);
        }
        let (padded, _) = self.padded_examples(x)?;
        let cols = padded.index_select(&self.index(x.device())?, 1)?;
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
        anyhow::ensure!(
            cols.dims3()? == (m, b * self.output_positions, self.taps * self.input.channels),
            "window gradients {:?} where the layer has {m} x {b} examples of {} windows of {} taps x {} channels",
            cols.dims(),
            self.output_positions,
            self.taps,
            self.input.channels
        );
        let channels = self.input.channels;
        let (c, positions) = (channels, self.input.positions());
        let window = self.output_positions * self.taps * c;
        let cpu = with_cpu_f32(cols, |data| {
            let mut x = vec![0f32; examples * positions * c];
            x.par_chunks_mut(positions * c)
                .zip(data.par_chunks(window))
                .for_each(|(dst, src)| {
                    // Runs in slot order: every input element gets its windows' gradients in
                    // the order index_add adds them.
                    for &(slot, p, len) in &self.runs {
                        add_row(&mut dst[p * c..][..len * c], &src[slot * c..][..len * c]);
                    }
                });
            x
        });
        if let Some(x) = cpu {
            return Ok(Tensor::from_vec(
                x,
                (m, b, self.input.features()),
                cols.device(),
            )?);
        }
        let cols = cols.reshape((examples, self.output_positions * self.taps, channels))?;
        let positions = self.input.positions();
        let sum = Tensor::zeros(
            (examples, positions + 1, channels),
            cols.dtype(),
            cols.device(),
        )?
        .index_add(&self.index(cols.device())?, &cols, 1)?;
        Ok(sum
            .narrow(1, 0, positions)?
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
    if max {
        if let Some(pooled) = max_pool_cpu(windows, x) {
            return pooled;
        }
    }
    let (padded, examples) = windows.padded_examples(x)?;
    let cols = padded
        .index_select(&windows.index(x.device())?, 1)?
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
    if let PoolSaved::Max(argmax) = saved {
        if let Some(grad_x) = max_pool_backward_cpu(windows, argmax, grad, (m, b)) {
            return grad_x;
        }
    }
    let channels = windows.input.channels;
    let examples = m * b;
    let (outputs, taps) = (windows.output_positions, windows.taps);
    let positions = windows.input.positions();
    let zeros = Tensor::zeros(
        (examples, positions + 1, channels),
        grad.dtype(),
        grad.device(),
    )?;
    let index = windows.index(grad.device())?;
    let sum = match saved {
        PoolSaved::Max(argmax) => {
            // The position of each output's maximum, per example and channel.
            let grad = grad.reshape((examples, outputs, channels))?;
            let argmax = argmax
                .to_dtype(DType::U32)?
                .reshape((examples, outputs, channels))?;
            let source = index
                .reshape((1, outputs, taps))?
                .broadcast_as((examples, outputs, taps))?
                .contiguous()?
                .gather(&argmax.contiguous()?, 2)?;
            zeros.scatter_add(&source, &grad, 1)?
        }
        PoolSaved::Average => {
            let share = (grad.reshape((examples, outputs, channels))? / taps as f64)?
                .unsqueeze(2)?
                .broadcast_as((examples, outputs, taps, channels))?
                .contiguous()?
                .reshape((examples, outputs * taps, channels))?;
            zeros.index_add(&index, &share, 1)?
        }
    };
    Ok(sum
        .narrow(1, 0, positions)?
        .reshape((m, b, windows.input.features()))?)
}

/// Max pooling on the CPU: per output and channel the first maximum over the taps, as candle's
/// `max` and `argmax` find it (a later tap replaces it only when strictly greater).
fn max_pool_cpu(windows: &Windows, x: &Tensor) -> Option<Result<(Tensor, PoolSaved)>> {
    let (m, b, features) = x.dims3().ok()?;
    if features != windows.input.features() {
        return None; // the device path names the mismatch
    }
    let (c, positions, taps) = (
        windows.input.channels,
        windows.input.positions(),
        windows.taps,
    );
    let outputs = windows.output_positions;
    let (values, argmax) = with_cpu_f32(x, |data| {
        let mut values = vec![0f32; m * b * outputs * c];
        let mut argmax = vec![0u32; m * b * outputs * c];
        values
            .par_chunks_mut(outputs * c)
            .zip(argmax.par_chunks_mut(outputs * c))
            .zip(data.par_chunks(positions * c))
            .for_each(|((values, argmax), src)| {
                for o in 0..outputs {
                    let window = &windows.local[o * taps..][..taps];
                    for ch in 0..c {
                        let mut best = src[window[0] as usize * c + ch];
                        let mut at = 0;
                        for (t, &p) in window.iter().enumerate().skip(1) {
                            let v = src[p as usize * c + ch];
                            if best < v {
                                best = v;
                                at = t;
                            }
                        }
                        values[o * c + ch] = best;
                        argmax[o * c + ch] = at as u32;
                    }
                }
            });
        (values, argmax)
    })?;
    let pooled = (|| {
        let y = Tensor::from_vec(values, (m, b, outputs * c), x.device())?;
        let argmax = Tensor::from_vec(argmax, (m * b * outputs, c), x.device())?;
        Ok((y, PoolSaved::Max(argmax)))
    })();
    Some(pooled)
}

/// Max pooling's gradient on the CPU: each output's gradient added to its maximum's input, in
/// output order (as candle's `scatter_add` adds them).
fn max_pool_backward_cpu(
    windows: &Windows,
    argmax: &Tensor,
    grad: &Tensor,
    (m, b): (usize, usize),
) -> Option<Result<Tensor>> {
    let (c, positions, taps) = (
        windows.input.channels,
        windows.input.positions(),
        windows.taps,
    );
    let outputs = windows.output_positions;
    if !grad.device().is_cpu() {
        return None;
    }
    let argmax: Vec<u32> = argmax.flatten_all().ok()?.to_vec1().ok()?;
    let grad_x = with_cpu_f32(grad, |g| {
        let mut grad_x = vec![0f32; m * b * positions * c];
        grad_x
            .par_chunks_mut(positions * c)
            .zip(g.par_chunks(outputs * c))
            .zip(argmax.par_chunks(outputs * c))
            .for_each(|((dst, g), argmax)| {
                for o in 0..outputs {
                    for ch in 0..c {
                        let p = windows.local[o * taps + argmax[o * c + ch] as usize] as usize;
                        dst[p * c + ch] += g[o * c + ch];
                    }
                }
            });
        grad_x
    })?;
    let features = windows.input.features();
    Some(Tensor::from_vec(grad_x, (m, b, features), grad.device()).map_err(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand_chacha::ChaCha8Rng, dims: (usize, usize, usize)) -> Tensor {
        let v: Vec<f32> = (0..dims.0 * dims.1 * dims.2)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    /// The same values in a strided layout (a slice of a wider tensor), which the CPU loops
    /// decline: candle's ops then run them, as on a GPU.
    fn strided(t: &Tensor) -> Tensor {
        let pad = Tensor::zeros(
            (t.dim(0).unwrap(), t.dim(1).unwrap(), 3),
            DType::F32,
            &Device::Cpu,
        );
        let wide = Tensor::cat(&[t, &pad.unwrap()], 2).unwrap();
        let s = wide.narrow(2, 0, t.dim(2).unwrap()).unwrap();
        assert!(!s.is_contiguous());
        s
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The device path (candle's gather, index_add, max, argmax and scatter_add) and the CPU
    /// loops give the same bits: what a GPU runs is what the CPU runs, here emulated on the CPU.
    #[test]
    fn the_device_path_equals_the_cpu_loops_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (spatial, c, k, s, p) in [
            (vec![9, 8], 3, 3, 1, 1),
            (vec![8, 8], 2, 2, 2, 0),
            (vec![40], 1, 5, 2, 1),
            (vec![10], 4, 3, 2, 1),
        ] {
            let input = Shape {
                spatial: spatial.clone(),
                channels: c,
            };
            let out: Vec<usize> = spatial.iter().map(|n| (n + 2 * p - k) / s + 1).collect();
            let windows = Windows::new(&input, &out, k, s, p);
            let (m, b) = (2, 3);
            let x = random(&mut rng, (m, b, input.features()));
            let cols = windows.unfold(&x).unwrap();
            assert_eq!(bits(&windows.unfold(&strided(&x)).unwrap()), bits(&cols));
            let g = random(&mut rng, cols.dims3().unwrap());
            let folded = windows.fold(&g, m, b).unwrap();
            assert_eq!(
                bits(&windows.fold(&strided(&g), m, b).unwrap()),
                bits(&folded)
            );
            if p == 0 && spatial.iter().all(|n| (n - k) % s == 0) {
                let (y, saved) = pool_forward(&windows, true, &x).unwrap();
                let (y_ops, saved_ops) = pool_forward(&windows, true, &strided(&x)).unwrap();
                assert_eq!(bits(&y_ops), bits(&y));
                let g = random(&mut rng, y.dims3().unwrap());
                let grad = pool_backward(&windows, &saved, &g).unwrap();
                let grad_ops = pool_backward(&windows, &saved_ops, &strided(&g)).unwrap();
                assert_eq!(bits(&grad_ops), bits(&grad));
            }
        }
    }
}
