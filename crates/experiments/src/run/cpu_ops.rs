//! Two candle ops that the explicit backward pass (`run::stack`) runs every
//! step, with CPU fast paths that give exactly candle's bits. candle 0.11 runs both through
//! generic per-element index arithmetic, which made each cost more than the optimizer step.
//! Other devices, dtypes and layouts go to candle's own ops.

use anyhow::Result;
use candle_core::{CpuStorage, Layout, Storage, Tensor};
use mixed_act::simd_variants;

/// The f32 data of a contiguous CPU tensor, or `None`.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout): (_, &Layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => Some(f(&data[start..end])),
        _ => None,
    }
}

/// `t.transpose(1, 2).contiguous()` for a stack `[M, rows, cols]` (a stack's weight gradients).
/// On the CPU a cache-blocked copy per matrix (the `transpose` crate) instead of candle's
/// element-by-element strided copy.
pub fn transposed_stack(t: &Tensor) -> Result<Tensor> {
    let (models, rows, cols) = t.dims3()?;
    let out = with_cpu_f32(t, |data| {
        let mut out = vec![0f32; data.len()];
        if rows * cols > 0 {
            for (src, dst) in data
                .chunks_exact(rows * cols)
                .zip(out.chunks_exact_mut(rows * cols))
            {
                transpose::transpose(src, dst, cols, rows);
            }
        }
        out
    });
    Ok(match out {
        Some(out) => Tensor::from_vec(out, (models, cols, rows), t.device())?,
        None => t.transpose(1, 2)?.contiguous()?,
    })
}

/// `t.sum_keepdim(1).squeeze(1)` for a stack `[M, rows, cols]`: `[M, cols]` (a stack's bias
/// gradients). Each column summed from 0 over the rows in order, as candle's reduction adds
/// them, but a row at a time (vectorised across columns) instead of one index computation per
/// element.
pub fn column_sums_stack(t: &Tensor) -> Result<Tensor> {
    let (models, rows, cols) = t.dims3()?;
    let sums = with_cpu_f32(t, |data| {
        let mut sums = vec![0f32; models * cols];
        if cols > 0 && rows > 0 {
            for (model, out) in data
                .chunks_exact(rows * cols)
                .zip(sums.chunks_exact_mut(cols))
            {
                for row in model.chunks_exact(cols) {
                    add_row(out, row);
                }
            }
        }
        sums
    });
    Ok(match sums {
        Some(sums) => Tensor::from_vec(sums, (models, cols), t.device())?,
        None => t.sum_keepdim(1)?.squeeze(1)?,
    })
}

simd_variants! {
fn add_row(sums: &mut [f32], row: &[f32]) {
    for (sum, &v) in sums.iter_mut().zip(row) {
        *sum += v;
    }
}}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    /// One matrix through the stacked ops.
    fn column_sums(t: &Tensor) -> Result<Tensor> {
        Ok(column_sums_stack(&t.unsqueeze(0)?)?.squeeze(0)?)
    }

    fn transposed(t: &Tensor) -> Result<Tensor> {
        Ok(transposed_stack(&t.unsqueeze(0)?)?.squeeze(0)?)
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Values of mixed magnitude and sign, so that the order of a sum shows in its rounding.
    fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let data: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.random::<f32>() - 0.5) * 10f32.powi(rng.random_range(-4..4)))
            .collect();
        Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap()
    }

    #[test]
    fn fast_paths_give_candles_bits() {
        for (rows, cols) in [(1, 1), (128, 10), (128, 512), (37, 300), (1000, 3)] {
            let t = random(rows, cols, (rows * cols) as u64);
            let want = t.sum_keepdim(0).unwrap().squeeze(0).unwrap();
            assert_eq!(
                bits(&column_sums(&t).unwrap()),
                bits(&want),
                "{rows}x{cols}"
            );
            let want = t.t().unwrap().contiguous().unwrap();
            let got = transposed(&t).unwrap();
            assert_eq!(got.dims(), want.dims());
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols}");
        }
    }

    /// Non-contiguous inputs and other dtypes take candle's own path.
    #[test]
    fn other_layouts_and_dtypes_fall_back() {
        let t = random(20, 30, 1);
        let strided = t.t().unwrap();
        let want = strided.sum_keepdim(0).unwrap().squeeze(0).unwrap();
        assert_eq!(bits(&column_sums(&strided).unwrap()), bits(&want));
        assert_eq!(bits(&transposed(&strided).unwrap()), bits(&t));
        let wide = t.to_dtype(candle_core::DType::F64).unwrap();
        let sums = column_sums(&wide).unwrap();
        assert_eq!(sums.dtype(), candle_core::DType::F64);
        assert_eq!(sums.dims(), &[30]);
        assert_eq!(transposed(&wide).unwrap().dims(), &[30, 20]);
    }
}
