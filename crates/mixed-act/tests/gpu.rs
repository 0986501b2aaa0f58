//! The CUDA and Metal kernels against the CPU ones (which tests/ops.rs checks against candle-op
//! references), built only with `--features cuda` or `--features metal`.
//!
//! Run on a GPU machine by `scripts/gpu-check.sh`. Without a device of the built-in kind every
//! test here prints "SKIPPED: no GPU" and passes; the script fails when it sees that line.
//!
//! Phase 2 runs every candidate function; the mixtures run with the paper's pool, the full pool
//! of eleven and a small pool out of id order. Each op also runs on a cohort of [`MODELS`]
//! stacked models (x `[M, B, N]` with ids `[M, N]` or weights `[M, N, K]` of their own, one
//! launch per kernel with the grid M deep), against the CPU op on the same stacked tensors and,
//! bit for bit, against one-model launches on each model's slice.
//!
//! Tolerances: |gpu - cpu| <= ATOL + RTOL * |cpu| with (1e-6, 1e-5) in f32 (the GPU's expf,
//! tanhf, erfcf and log1pf are within a few ulp, Metal's erfc is the CPU's fit; the CPU's
//! polynomials are within 3e-7 relative, its erfc within 1e-6 where GELU is not tiny) and
//! (1e-12, 1e-10) in f64; for grad_w, a sum over the batch in another order, ATOL is multiplied
//! by the rows.
#![cfg(any(feature = "cuda", feature = "metal"))]

use candle_core::{DType, Device, Tensor, Var};
use mixed_act::{mixture, mixture_grads, per_neuron, per_neuron_grad, Activation, Pool};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type TestResult = candle_core::Result<()>;

/// The models of the cohort cases.
const MODELS: usize = 3;

/// The GPU devices this build can use here.
fn gpu_devices() -> Vec<(Device, Vec<DType>)> {
    let mut devices = Vec::new();
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        devices.push((d, vec![DType::F32, DType::F64]));
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        devices.push((d, vec![DType::F32]));
    }
    if devices.is_empty() {
        println!("SKIPPED: no GPU device of the built-in kind");
    }
    devices
}

fn assert_close(gpu: &Tensor, cpu: &Tensor, what: &str, terms: usize) {
    assert_eq!(gpu.dims(), cpu.dims(), "{what}: shapes differ");
    let (atol, rtol) = match cpu.dtype() {
        DType::F64 => (1e-12, 1e-10),
        _ => (1e-6, 1e-5),
    };
    let atol = atol * terms as f64;
    // Metal has no f64: its reductions sum in f32 (the emulation tests allow the same).
    let rtol = if gpu.device().is_metal() && terms > 1 {
        1e-4
    } else {
        rtol
    };
    let flat = |t: &Tensor| -> Vec<f64> {
        let t = t
            .to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        t.flatten_all().unwrap().to_vec1().unwrap()
    };
    let (g, c) = (flat(gpu), flat(cpu));
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs();
        assert!(
            ok,
            "{what}[{i}]: gpu {a} vs cpu {b} (tolerance {atol} + {rtol} * |cpu|)"
        );
    }
}

/// [rows, cols] values: mostly normal with scale 3, plus the kinks and the tails (exact zeros,
/// tiny values of both signs, saturation of sigmoid/tanh/elu, softplus's threshold 20 and either
/// side of it, values beyond the clamp, |x| = 1e4). Every third row holds the special values,
/// shifted by one place per column, so that with 60 rows or more every column (every function,
/// every one-hot pool member) meets each of them.
fn inputs(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<f64> {
    const SPECIAL: [f64; 20] = [
        0.0, -0.0, 1e-7, -1e-7, 0.5, -0.5, 12.0, -12.0, 40.0, -40.0, 1e4, -1e4, 20.0, -20.0, 19.5,
        -19.5, 20.5, -20.5, -0.75, 3.0,
    ];
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            if r % 3 == 0 {
                SPECIAL[(r / 3 + c) % SPECIAL.len()]
            } else {
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                3.0 * (-2.0 * (u + 1e-12).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            }
        })
        .collect()
}

/// Every function at least once (all eleven when cols >= 11), the rest random, in random order.
fn ids(rng: &mut ChaCha8Rng, cols: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..cols)
        .map(|n| {
            if n < Activation::COUNT {
                n as u32
            } else {
                rng.random_range(0..Activation::COUNT as u32)
            }
        })
        .collect();
    for i in (1..cols).rev() {
        ids.swap(i, rng.random_range(0..=i));
    }
    ids
}

/// `(y, grad_x, grad_w)` of `sum(op(x, w) * r)` on `device`.
fn run(
    op: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &[f64],
    w: &Tensor,
    r: &[f64],
    shape: (usize, usize),
    dtype: DType,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
    let x = Var::from_tensor(&Tensor::from_slice(x, shape, device)?.to_dtype(dtype)?)?;
    // Mixing weights get a gradient; integer ids do not.
    let w = w.to_device(device)?;
    let w = if w.dtype().is_float() {
        Var::from_tensor(&w)?.as_tensor().clone()
    } else {
        w
    };
    let r = Tensor::from_slice(r, shape, device)?.to_dtype(dtype)?;
    let y = op(x.as_tensor(), &w)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let gx = grads.get(x.as_tensor()).expect("grad x").clone();
    let gw = grads.get(&w).cloned();
    Ok((y, gx, gw))
}

#[test]
fn per_neuron_on_gpu_matches_cpu() -> TestResult {
    for (device, dtypes) in gpu_devices() {
        for dtype in dtypes {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let shape = (257, 70);
            let x = inputs(&mut rng, shape.0, shape.1);
            let r: Vec<f64> = (0..x.len()).map(|_| rng.random::<f64>() - 0.5).collect();
            let ids = Tensor::new(ids(&mut rng, shape.1), &Device::Cpu)?;
            let op = |x: &Tensor, ids: &Tensor| per_neuron(x, &ids.to_device(x.device())?);
            let cpu = run(&op, &x, &ids, &r, shape, dtype, &Device::Cpu)?;
            let gpu = run(&op, &x, &ids, &r, shape, dtype, &device)?;
            assert_close(&gpu.0, &cpu.0, &format!("{dtype:?} per_neuron y"), 1);
            assert_close(&gpu.1, &cpu.1, &format!("{dtype:?} per_neuron grad_x"), 1);
            // u8 ids are converted on the device.
            let ids_u8 = ids.to_dtype(DType::U8)?.to_device(&device)?;
            let xd = Tensor::from_slice(&x, shape, &device)?.to_dtype(dtype)?;
            assert_close(&per_neuron(&xd, &ids_u8)?, &cpu.0, "u8 ids", 1);
        }
    }
    Ok(())
}

/// The pools the mixtures run with: the paper's six (the default), all eleven, and a small one
/// out of id order (its columns are not its ids).
fn pools() -> [Pool; 3] {
    [Pool::paper(), Pool::all(), "gelu,relu,elu".parse().unwrap()]
}

/// Mixing weights `[cols, K]` for `pool`: neurons 0..35 one-hot (the training case), every
/// member in turn, 35..55 dense soft weights, the rest soft weights with some exact zeros.
fn weights(
    rng: &mut ChaCha8Rng,
    cols: usize,
    pool: Pool,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    let k = pool.len();
    let first = rng.random_range(0..k);
    let w: Vec<f64> = (0..cols * k)
        .map(|i| {
            let (n, j) = (i / k, i % k);
            if n < 35 {
                f64::from((n + first) % k == j)
            } else if n < 55 || rng.random_range(0..3) > 0 {
                rng.random::<f64>() * 2.0 - 0.5
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(w, (cols, k), &Device::Cpu)?.to_dtype(dtype)
}

#[test]
fn mixture_on_gpu_matches_cpu_for_one_hot_and_soft_weights() -> TestResult {
    for (device, dtypes) in gpu_devices() {
        for dtype in dtypes {
            for pool in pools() {
                for clamp in [Some(10.0), None] {
                    let mut rng = ChaCha8Rng::seed_from_u64(6);
                    let shape = (257, 70);
                    let x = inputs(&mut rng, shape.0, shape.1);
                    let r: Vec<f64> = (0..x.len()).map(|_| rng.random::<f64>() - 0.5).collect();
                    let w = weights(&mut rng, shape.1, pool, dtype)?;
                    let op = |x: &Tensor, w: &Tensor| mixture(x, w, pool, clamp);
                    let cpu = run(&op, &x, &w, &r, shape, dtype, &Device::Cpu)?;
                    let gpu = run(&op, &x, &w, &r, shape, dtype, &device)?;
                    let what = format!("{dtype:?} pool {pool} clamp {clamp:?} mixture");
                    assert_close(&gpu.0, &cpu.0, &format!("{what} y"), 1);
                    assert_close(&gpu.1, &cpu.1, &format!("{what} grad_x"), 1);
                    let (gw, cw) = (gpu.2.unwrap(), cpu.2.unwrap());
                    assert_close(&gw, &cw, &format!("{what} grad_w"), shape.0);
                    // The batch reduction uses no atomics: the same inputs give the same bits.
                    let again = run(&op, &x, &w, &r, shape, dtype, &device)?.2.unwrap();
                    let same = (gw.to_dtype(DType::F64)? - again.to_dtype(DType::F64)?)?
                        .abs()?
                        .max_all()?
                        .to_scalar::<f64>()?;
                    assert_eq!(same, 0.0, "{what}: grad_w differs between two runs");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn gpu_kernels_handle_non_contiguous_inputs_and_bad_ids() -> TestResult {
    for (device, _) in gpu_devices() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let x = inputs(&mut rng, 40, 33);
        let xt = Tensor::from_slice(&x, (40, 33), &Device::Cpu)?.to_dtype(DType::F32)?;
        let ids = Tensor::new(ids(&mut rng, 40), &Device::Cpu)?;
        // A transposed view: the op makes it contiguous on the GPU.
        let cpu = per_neuron(&xt.t()?, &ids)?;
        let gpu = per_neuron(&xt.to_device(&device)?.t()?, &ids.to_device(&device)?)?;
        assert_close(&gpu, &cpu, "transposed x", 1);
        // An id out of range cannot be reported by a kernel: it shows as NaN in that column.
        // (11 is the first id past the candidates; the op checks ids only on the CPU.)
        let mut bad: Vec<u32> = ids.to_vec1()?;
        bad[3] = Activation::COUNT as u32;
        let y = per_neuron(&xt.t()?.to_device(&device)?, &Tensor::new(bad, &device)?)?
            .to_device(&Device::Cpu)?
            .to_vec2::<f32>()?;
        assert!(y.iter().all(|row| row[3].is_nan()), "bad id not NaN");
        assert!(y.iter().all(|row| row[4].is_finite()));
    }
    Ok(())
}

/// Every element's bits (widened to f64, which keeps them apart), for exact comparisons.
fn bits(t: &Tensor) -> candle_core::Result<Vec<u64>> {
    let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    Ok(t.flatten_all()?
        .to_vec1::<f64>()?
        .iter()
        .map(|v| v.to_bits())
        .collect())
}

/// A cohort's per-neuron operands differ between its models (else the cases below would not
/// see a kernel that gives every model the first one's).
fn assert_models_differ(per_model: &Tensor) -> TestResult {
    let first = bits(&per_model.get(0)?)?;
    for m in 1..per_model.dim(0)? {
        assert_ne!(
            bits(&per_model.get(m)?)?,
            first,
            "model {m} has model 0's operand"
        );
    }
    Ok(())
}

/// Phase 2 on a cohort: x `[M, B, N]`, ids `[M, N]` (each model its own functions), one launch
/// per kernel, against the CPU op on the same tensors; then each model's layer against a
/// one-model launch on its slice (the same code with another grid z: the same bits).
#[test]
fn per_neuron_cohort_on_gpu_matches_cpu() -> TestResult {
    for (device, dtypes) in gpu_devices() {
        for dtype in dtypes {
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let (rows, cols) = (257, 70);
            let shape = (MODELS, rows, cols);
            let x: Vec<f64> = (0..MODELS)
                .flat_map(|_| inputs(&mut rng, rows, cols))
                .collect();
            let r: Vec<f64> = (0..x.len()).map(|_| rng.random::<f64>() - 0.5).collect();
            let ids: Vec<u32> = (0..MODELS).flat_map(|_| ids(&mut rng, cols)).collect();
            let ids = Tensor::from_vec(ids, (MODELS, cols), &Device::Cpu)?;
            assert_models_differ(&ids)?;
            let on = |d: &Device| -> candle_core::Result<(Tensor, Tensor, Tensor)> {
                let x = Tensor::from_slice(&x, shape, d)?.to_dtype(dtype)?;
                let r = Tensor::from_slice(&r, shape, d)?.to_dtype(dtype)?;
                Ok((x, ids.to_device(d)?, r))
            };
            let (cx, cids, cr) = on(&Device::Cpu)?;
            let (gx, gids, gr) = on(&device)?;
            let cpu = (per_neuron(&cx, &cids)?, per_neuron_grad(&cx, &cids, &cr)?);
            let gpu = (per_neuron(&gx, &gids)?, per_neuron_grad(&gx, &gids, &gr)?);
            let what = format!("{dtype:?} cohort of {MODELS} per_neuron");
            assert_close(&gpu.0, &cpu.0, &format!("{what} y"), 1);
            assert_close(&gpu.1, &cpu.1, &format!("{what} grad_x"), 1);
            for m in 0..MODELS {
                let (x, ids, r) = (gx.get(m)?, gids.get(m)?, gr.get(m)?);
                let y = per_neuron(&x, &ids)?;
                assert_eq!(bits(&y)?, bits(&gpu.0.get(m)?)?, "{what} y: model {m}");
                let g = per_neuron_grad(&x, &ids, &r)?;
                assert_eq!(bits(&g)?, bits(&gpu.1.get(m)?)?, "{what} grad_x: model {m}");
            }
        }
    }
    Ok(())
}

/// Phase 1 on a cohort: x `[M, B, N]`, w `[M, N, K]` (each model its own weights), one launch
/// per kernel; grad_w `[M, N, K]` sums each model's own B rows. Against the CPU op on the same
/// tensors, then each model's layer against a one-model launch on its slice (the same bits).
#[test]
fn mixture_cohort_on_gpu_matches_cpu() -> TestResult {
    for (device, dtypes) in gpu_devices() {
        for dtype in dtypes {
            for pool in pools() {
                for clamp in [Some(10.0), None] {
                    let mut rng = ChaCha8Rng::seed_from_u64(9);
                    let (rows, cols) = (257, 70);
                    let shape = (MODELS, rows, cols);
                    let x: Vec<f64> = (0..MODELS)
                        .flat_map(|_| inputs(&mut rng, rows, cols))
                        .collect();
                    let r: Vec<f64> = (0..x.len()).map(|_| rng.random::<f64>() - 0.5).collect();
                    let w = (0..MODELS)
                        .map(|_| weights(&mut rng, cols, pool, dtype))
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    let w = Tensor::stack(&w, 0)?;
                    assert_models_differ(&w)?;
                    let on = |d: &Device| -> candle_core::Result<(Tensor, Tensor, Tensor)> {
                        let x = Tensor::from_slice(&x, shape, d)?.to_dtype(dtype)?;
                        let r = Tensor::from_slice(&r, shape, d)?.to_dtype(dtype)?;
                        Ok((x, w.to_device(d)?, r))
                    };
                    let (cx, cw, cr) = on(&Device::Cpu)?;
                    let (gx, gw, gr) = on(&device)?;
                    let (cpu_y, (cpu_gx, cpu_gw)) = (
                        mixture(&cx, &cw, pool, clamp)?,
                        mixture_grads(&cx, &cw, pool, clamp, &cr)?,
                    );
                    let (gpu_y, (gpu_gx, gpu_gw)) = (
                        mixture(&gx, &gw, pool, clamp)?,
                        mixture_grads(&gx, &gw, pool, clamp, &gr)?,
                    );
                    let what =
                        format!("{dtype:?} pool {pool} clamp {clamp:?} cohort of {MODELS} mixture");
                    assert_eq!(gpu_gw.dims(), [MODELS, cols, pool.len()], "{what} grad_w");
                    assert_close(&gpu_y, &cpu_y, &format!("{what} y"), 1);
                    assert_close(&gpu_gx, &cpu_gx, &format!("{what} grad_x"), 1);
                    assert_close(&gpu_gw, &cpu_gw, &format!("{what} grad_w"), rows);
                    for m in 0..MODELS {
                        let (x, w, r) = (gx.get(m)?, gw.get(m)?, gr.get(m)?);
                        let y = mixture(&x, &w, pool, clamp)?;
                        let (g_x, g_w) = mixture_grads(&x, &w, pool, clamp, &r)?;
                        for (name, one, all) in [
                            ("y", y, &gpu_y),
                            ("grad_x", g_x, &gpu_gx),
                            ("grad_w", g_w, &gpu_gw),
                        ] {
                            assert_eq!(
                                bits(&one)?,
                                bits(&all.get(m)?)?,
                                "{what} {name}: model {m}"
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The learnable activations (PReLU, Swish-beta, PAU per neuron and shared) on the GPU, their
/// three kernels, against the CPU's fused ops: values, input and parameter gradients (sums over
/// the batch: the tolerance scales with the rows), for a cohort of two and for one model alone,
/// at the kinks and tails of [`inputs`], with zero slopes and zero PAU denominator coefficients
/// (whose sign counts as +1).
#[test]
fn learnable_activations_match_the_cpu() -> TestResult {
    use mixed_act::{learnable, learnable_grads, Learnable, PAU_LEAKY_RELU_INIT};
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (models, rows, cols) = (2, 96, 40);
    for (device, dtypes) in gpu_devices() {
        for dtype in dtypes {
            for (kind, units) in [
                (Learnable::Prelu, cols),
                (Learnable::SwishBeta, cols),
                (Learnable::Pau, cols),
                (Learnable::Pau, 1),
            ] {
                let k = kind.params();
                let x = inputs(&mut rng, models * rows, cols);
                let g: Vec<f64> = (0..models * rows * cols)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let p: Vec<f64> = (0..models * units * k)
                    .map(|i| {
                        let base = match kind {
                            Learnable::Prelu => 0.25,
                            Learnable::SwishBeta => 1.0,
                            Learnable::Pau => PAU_LEAKY_RELU_INIT[i % k],
                        };
                        let zero = i % 5 == 2
                            && (kind == Learnable::Prelu || (kind == Learnable::Pau && i % k >= 6));
                        if zero {
                            0.0
                        } else {
                            base + rng.random_range(-0.2..0.2)
                        }
                    })
                    .collect();
                let cpu = |v: Vec<f64>, shape: (usize, usize, usize)| {
                    Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
                };
                let x = cpu(x, (models, rows, cols))?;
                let g = cpu(g, (models, rows, cols))?;
                let p = cpu(p, (models, units, k))?;
                let (xd, gd, pd) = (
                    x.to_device(&device)?,
                    g.to_device(&device)?,
                    p.to_device(&device)?,
                );
                let what = format!("{kind:?} units {units} {dtype:?}");
                assert_close(
                    &learnable(kind, &xd, &pd)?,
                    &learnable(kind, &x, &p)?,
                    &what,
                    1,
                );
                let (gx, gp) = learnable_grads(kind, &xd, &pd, &gd)?;
                let (cx, cp) = learnable_grads(kind, &x, &p, &g)?;
                assert_close(&gx, &cx, &format!("{what} grad x"), 1);
                let terms = rows * if units == 1 { cols } else { 1 };
                assert_close(&gp, &cp, &format!("{what} grad params"), terms);
                // One model alone: x [B, N] with params [U, P].
                let (x0, g0, p0) = (x.get(0)?, g.get(0)?, p.get(0)?);
                let (x0d, g0d, p0d) = (
                    x0.to_device(&device)?,
                    g0.to_device(&device)?,
                    p0.to_device(&device)?,
                );
                assert_close(
                    &learnable(kind, &x0d, &p0d)?,
                    &learnable(kind, &x0, &p0)?,
                    &format!("{what} alone"),
                    1,
                );
                let (gx, gp) = learnable_grads(kind, &x0d, &p0d, &g0d)?;
                let (cx, cp) = learnable_grads(kind, &x0, &p0, &g0)?;
                assert_close(&gx, &cx, &format!("{what} alone grad x"), 1);
                assert_close(&gp, &cp, &format!("{what} alone grad params"), terms);
            }
        }
    }
    Ok(())
}
