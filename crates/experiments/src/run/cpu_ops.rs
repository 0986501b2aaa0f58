//! Candle ops that every training step runs, with CPU fast paths that give exactly candle's
//! bits: the transpose and the column sums of the explicit backward pass (`run::stack`), which
//! candle 0.11 runs through generic per-element index arithmetic (each cost more than the
//! optimizer step), and the squared norm of the gradient clipping, which candle computes as a
//! squared copy of every gradient and then its sum (two extra passes over the gradients and a
//! buffer as large). Other devices, dtypes and layouts go to candle's own ops.

use anyhow::Result;
use candle_core::{CpuStorage, Layout, Storage, Tensor};
use mixed_act::simd_variants;

/// The f32 data of a contiguous CPU tensor, or `None`.
pub(crate) fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
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

/// `t.sqr()?.sum_all()`: the sum of the squares of every element, a scalar tensor. On the CPU
/// one pass without the squared copy, summed in the order of candle 0.11's `sum_all` for f32
/// (`candle_core::cpu::vec_sum`): on x86 CPUs with AVX2, 32 running sums (four 8-lane
/// registers) over blocks of 32, folded pairwise and then across lanes, and the remainder
/// added one by one; elsewhere on x86, one running sum. Other targets take candle's ops.
pub fn sum_of_squares(t: &Tensor) -> Result<Tensor> {
    #[cfg(target_arch = "x86_64")]
    {
        let lanes = std::arch::is_x86_feature_detected!("avx2");
        let sum = with_cpu_f32(t, |data| match lanes {
            true => sum_of_squares_in_lanes(data),
            false => data.iter().fold(0f32, |sum, &v| sum + v * v),
        });
        if let Some(sum) = sum {
            return Ok(Tensor::new(sum, t.device())?);
        }
    }
    Ok(t.sqr()?.sum_all()?)
}

simd_variants! {
/// candle's AVX2 `vec_sum` of `v * v` (see [`sum_of_squares`]).
fn sum_of_squares_in_lanes(data: &[f32]) -> f32 {
    const LANES: usize = 8;
    const BLOCK: usize = 4 * LANES;
    let mut sums = [[0f32; LANES]; 4];
    let blocks = data.chunks_exact(BLOCK);
    let rest = blocks.remainder();
    for block in blocks {
        for (register, values) in sums.iter_mut().zip(block.chunks_exact(LANES)) {
            for (sum, &v) in register.iter_mut().zip(values) {
                *sum += v * v;
            }
        }
    }
    let add = |a: [f32; LANES], b: [f32; LANES]| -> [f32; LANES] {
        std::array::from_fn(|l| a[l] + b[l])
    };
    // x0 + x1, x2 + x3, then the two; then the register's halves; then two horizontal adds.
    let folded = add(add(sums[0], sums[1]), add(sums[2], sums[3]));
    let half: [f32; 4] = std::array::from_fn(|l| folded[l] + folded[l + 4]);
    let mut total = (half[0] + half[1]) + (half[2] + half[3]);
    for &v in rest {
        total += v * v;
    }
    total
}}

simd_variants! {
/// `sums[i] += row[i]`.
pub fn add_row(sums: &mut [f32], row: &[f32]) {
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

    /// The clipping norm's sum of squares gives candle's `sqr().sum_all()` bits, at lengths
    /// around the blocks of 32, with an offset view, and for a matrix.
    #[test]
    fn sum_of_squares_gives_candles_bits() {
        for len in [0, 1, 7, 31, 32, 33, 64, 95, 1000, 4097, 100_003] {
            let t = random(1, len, len as u64 + 7).squeeze(0).unwrap();
            let want = t.sqr().unwrap().sum_all().unwrap();
            assert_eq!(
                bits(&sum_of_squares(&t).unwrap()),
                bits(&want),
                "length {len}"
            );
        }
        let m = random(300, 70, 3);
        let row = m.get(17).unwrap();
        for t in [&m, &row] {
            let want = t.sqr().unwrap().sum_all().unwrap();
            assert_eq!(
                bits(&sum_of_squares(t).unwrap()),
                bits(&want),
                "{:?}",
                t.dims()
            );
        }
        let strided = m.t().unwrap();
        let want = strided.sqr().unwrap().sum_all().unwrap();
        assert_eq!(bits(&sum_of_squares(&strided).unwrap()), bits(&want));
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
