//! The fused ops against candle-op references, finite differences and the scalar formulas.
//!
//! Tolerances: |fused - reference| <= ATOL + RTOL * |reference|, with (1e-6, 1e-5) in f32 and
//! (1e-12, 1e-10) in f64; for grad_w, a sum over the batch, ATOL is multiplied by the number of
//! rows summed (rounding grows with the terms, and cancellation can make the sum small). The references differ from the fused kernels only in rounding (for
//! example candle's elu forms e^x - 1 where we use exp_m1), so these bounds are loose enough for
//! rounding and far too tight for a wrong formula, a wrong neuron or a missed clamp.

// Index loops mirror the math (w[n][k], row[k]) more plainly than iterator chains here.
#![allow(clippy::needless_range_loop)]

use candle_core::{DType, Device, Tensor, Var};
use mixed_act::gumbel::{gumbel_noise, straight_through};
use mixed_act::{
    freeze, mixture, mixture_grads, mixture_slow, per_neuron, per_neuron_grad, per_neuron_slow,
    per_neuron_with_slope, Activation, Pool, Selection, SelectionLayer, ELU_ALPHA, SELU_ALPHA,
    SELU_LAMBDA,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type TestResult = candle_core::Result<()>;

fn tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-12, 1e-10),
        _ => (1e-6, 1e-5),
    }
}

/// Asserts element-wise closeness and reports the worst error with its position.
fn assert_close(actual: &Tensor, expected: &Tensor, what: &str) {
    assert_close_summed(actual, expected, what, 1)
}

/// [`assert_close`] for values that are sums of `terms` terms.
fn assert_close_summed(actual: &Tensor, expected: &Tensor, what: &str, terms: usize) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    let (atol, rtol) = tolerance(expected.dtype());
    let atol = atol * terms as f64;
    let a = actual
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let e = expected
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let mut worst = (0.0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert!(x.is_finite() == y.is_finite(), "{what}[{i}]: {x} vs {y}");
        let excess = (x - y).abs() - (atol + rtol * y.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}[{i}]: fused {} vs reference {} (tolerance {atol} + {rtol} * |ref|)",
        a[i],
        e[i]
    );
}

/// Normal-ish values with scale `scale`, never exactly zero (candle's relu has gradient 1 at 0,
/// PyTorch's and ours 0, so exact zeros are tested apart).
fn random_matrix(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    scale: f64,
    dtype: DType,
) -> Tensor {
    let data: Vec<f64> = (0..rows * cols)
        .map(|_| {
            let v: f64 = (0..4).map(|_| rng.random::<f64>() - 0.5).sum::<f64>() * scale;
            if v.abs() < 1e-6 {
                0.5
            } else {
                v
            }
        })
        .collect();
    Tensor::from_vec(data, (rows, cols), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Every candidate there is, uniformly.
fn random_ids(rng: &mut ChaCha8Rng, n: usize) -> Vec<Activation> {
    (0..n)
        .map(|_| Activation::ALL[rng.random_range(0..Activation::COUNT)])
        .collect()
}

fn paper() -> Pool {
    Pool::paper()
}

/// The pools the mixture tests run: the paper's six, every candidate, and a small pool out of
/// id order (so that column k and id k differ).
fn pools() -> [Pool; 3] {
    [paper(), Pool::all(), "gelu,relu,elu".parse().unwrap()]
}

fn ids_tensor(ids: &[Activation]) -> Tensor {
    Tensor::new(
        ids.iter().map(|a| a.id() as u32).collect::<Vec<_>>(),
        &Device::Cpu,
    )
    .unwrap()
}

/// Value and gradients of `sum(op(x, ...) * r)` for a random `r`, so every output element's
/// gradient is distinct.
fn value_and_grads(
    op: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    r: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let y = op(xv.as_tensor(), wv.as_tensor()).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = grads.get(xv.as_tensor()).unwrap().clone();
    let gw = grads
        .get(wv.as_tensor())
        .cloned()
        .unwrap_or_else(|| w.zeros_like().unwrap());
    (y, gx, gw)
}

const SHAPES: [(usize, usize); 5] = [(1, 1), (7, 13), (64, 300), (300, 257), (2, 4096)];

#[test]
fn per_neuron_matches_candle_reference() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for dtype in [DType::F32, DType::F64] {
        for (rows, cols) in SHAPES {
            let x = random_matrix(&mut rng, rows, cols, 6.0, dtype);
            let r = random_matrix(&mut rng, rows, cols, 2.0, dtype);
            let ids = random_ids(&mut rng, cols);
            let (ids_t, dummy) = (ids_tensor(&ids), Tensor::zeros(1, dtype, &Device::Cpu)?);
            let (y, gx, _) = value_and_grads(|x, _| per_neuron(x, &ids_t), &x, &dummy, &r);
            let (y_ref, gx_ref, _) =
                value_and_grads(|x, _| per_neuron_slow(x, &ids), &x, &dummy, &r);
            let what = format!("{dtype:?} [{rows}, {cols}]");
            assert_close(&y, &y_ref, &format!("per_neuron {what}"));
            assert_close(&gx, &gx_ref, &format!("per_neuron grad_x {what}"));
        }
    }
    Ok(())
}

/// One-hot weights (training), general real weights with zeros, with and without the clamp;
/// x is scaled so that many values cross the clamp at 10.
#[test]
fn mixture_matches_candle_reference() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (dtype, pool) in [DType::F32, DType::F64]
        .into_iter()
        .flat_map(|d| pools().map(|p| (d, p)))
    {
        let k = pool.len();
        for (rows, cols) in SHAPES {
            for one_hot in [true, false] {
                for clamp in [Some(10.0), None, Some(0.7)] {
                    let x = random_matrix(&mut rng, rows, cols, 30.0, dtype);
                    let r = random_matrix(&mut rng, rows, cols, 2.0, dtype);
                    let w: Vec<f64> = (0..cols * k)
                        .map(|i| match one_hot {
                            true => 0.0,
                            false if i % 3 == 0 => 0.0,
                            false => rng.random::<f64>() * 2.0 - 0.5,
                        })
                        .collect();
                    let mut w = w;
                    if one_hot {
                        for n in 0..cols {
                            w[n * k + rng.random_range(0..k)] = 1.0;
                        }
                    }
                    let w = Tensor::from_vec(w, (cols, k), &Device::Cpu)?.to_dtype(dtype)?;
                    let (y, gx, gw) =
                        value_and_grads(|x, w| mixture(x, w, pool, clamp), &x, &w, &r);
                    let (y_ref, gx_ref, gw_ref) =
                        value_and_grads(|x, w| mixture_slow(x, w, pool, clamp), &x, &w, &r);
                    let what = format!(
                        "{dtype:?} [{rows}, {cols}] pool {pool} one_hot={one_hot} clamp={clamp:?}"
                    );
                    assert_close(&y, &y_ref, &format!("mixture {what}"));
                    assert_close(&gx, &gx_ref, &format!("mixture grad_x {what}"));
                    assert_close_summed(&gw, &gw_ref, &format!("mixture grad_w {what}"), rows);
                }
            }
        }
    }
    Ok(())
}

/// The bits of every element, widened to f64 (exactly) so that any dtype compares.
fn bits(t: &Tensor) -> Vec<u64> {
    let v = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let v = v.to_vec1::<f64>().unwrap();
    v.iter().map(|f| f.to_bits()).collect()
}

/// The forward pass with slopes gives per_neuron's values, and grad_y * slope per_neuron_grad's
/// gradient, bit for bit, with the functions scattered (lanes) or grouped (runs); half types get
/// no slope.
#[test]
fn slopes_give_the_bits_of_the_gradient_op() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for dtype in [DType::F32, DType::F64] {
        let (rows, cols) = (300, 130);
        let scattered = random_ids(&mut rng, cols);
        let mut grouped = scattered.clone();
        grouped.sort_by_key(|a| a.id());
        for ids in [scattered, grouped] {
            let ids = ids_tensor(&ids);
            let x = random_matrix(&mut rng, rows, cols, 8.0, dtype);
            let g = random_matrix(&mut rng, rows, cols, 2.0, dtype);
            let (y, slope) = per_neuron_with_slope(&x, &ids)?;
            let slope = slope.expect("f32 and f64 get a slope on the CPU");
            assert_eq!(bits(&y), bits(&per_neuron(&x, &ids)?), "{dtype:?} values");
            let want = per_neuron_grad(&x, &ids, &g)?;
            assert_eq!(bits(&(&g * &slope)?), bits(&want), "{dtype:?} gradient");
        }
    }
    let x = random_matrix(&mut rng, 4, 6, 1.0, DType::BF16);
    let (y, slope) = per_neuron_with_slope(&x, &ids_tensor(&random_ids(&mut rng, 6)))?;
    assert!(slope.is_none() && y.dtype() == DType::BF16);
    Ok(())
}

/// The dense paths against the row loop: a dense block whose units share one function takes
/// one loop, and narrow rows of mixed functions (a conv layer's channels) go several rows per
/// lanes loop, while a strided view of the same values goes row by row. The same bits, values
/// and slopes, for every function alone and for random mixes, at widths below, at and above
/// the tiling width (301 rows: whole tiles and a remainder).
#[test]
fn dense_blocks_give_the_row_loops_bits() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for dtype in [DType::F32, DType::F64] {
        for cols in [1, 5, 6, 25, 37, 63, 64, 70] {
            let mixes = [random_ids(&mut rng, cols), random_ids(&mut rng, cols)];
            let uniform = Activation::ALL.map(|act| vec![act; cols]);
            for ids in mixes.iter().chain(&uniform) {
                let what = format!("{dtype:?} {cols} columns, {:?}...", ids[0]);
                let ids = ids_tensor(ids);
                let x = random_matrix(&mut rng, 301, cols + 3, 8.0, dtype);
                let strided = x.narrow(1, 0, cols)?;
                let dense = strided.contiguous()?;
                assert_eq!(
                    bits(&per_neuron(&dense, &ids)?),
                    bits(&per_neuron(&strided, &ids)?),
                    "{what}"
                );
                let (y, slope) = per_neuron_with_slope(&dense, &ids)?;
                let (y_rows, slope_rows) = per_neuron_with_slope(&strided, &ids)?;
                assert_eq!(bits(&y), bits(&y_rows), "{what} values");
                assert_eq!(
                    bits(&slope.unwrap()),
                    bits(&slope_rows.unwrap()),
                    "{what} slopes"
                );
            }
        }
    }
    Ok(())
}

/// A one-hot mixture gives the same bits whether each function's neurons sit together (loops
/// over runs of columns) or are scattered (gathered per function): permuting the neurons so that
/// they group by function permutes the results and nothing else.
#[test]
fn one_hot_mixture_bits_do_not_depend_on_neuron_order() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for dtype in [DType::F32, DType::F64, DType::BF16] {
        let (rows, cols) = (37, 300);
        let ids: Vec<Activation> = (0..cols)
            .map(|_| Activation::PAPER[rng.random_range(0..6)])
            .collect();
        // Grouped order: neurons sorted by function (long runs).
        let mut order: Vec<u32> = (0..cols as u32).collect();
        order.sort_by_key(|&c| ids[c as usize].id());
        let order = Tensor::new(order, &Device::Cpu)?;
        let mut w = vec![0f64; cols * 6];
        for (n, a) in ids.iter().enumerate() {
            w[n * 6 + a.id()] = 1.0;
        }
        let w = Tensor::from_vec(w, (cols, 6), &Device::Cpu)?.to_dtype(dtype)?;
        let x = random_matrix(&mut rng, rows, cols, 30.0, dtype);
        let g = random_matrix(&mut rng, rows, cols, 2.0, dtype);
        for clamp in [Some(10.0), None] {
            let y = mixture(&x, &w, paper(), clamp)?;
            let (gx, gw) = mixture_grads(&x, &w, paper(), clamp, &g)?;
            let (xs, gs, ws) = (
                x.index_select(&order, 1)?,
                g.index_select(&order, 1)?,
                w.index_select(&order, 0)?,
            );
            let y_grouped = mixture(&xs, &ws, paper(), clamp)?;
            let (gx_grouped, gw_grouped) = mixture_grads(&xs, &ws, paper(), clamp, &gs)?;
            let what = format!("{dtype:?} clamp={clamp:?}");
            assert_eq!(
                bits(&y.index_select(&order, 1)?),
                bits(&y_grouped),
                "y {what}"
            );
            assert_eq!(
                bits(&gx.index_select(&order, 1)?),
                bits(&gx_grouped),
                "grad_x {what}"
            );
            assert_eq!(
                bits(&gw.index_select(&order, 0)?),
                bits(&gw_grouped),
                "grad_w {what}"
            );
        }
    }
    Ok(())
}

/// Central differences in f64 at points away from the kinks and the clamp bounds.
#[test]
fn gradients_match_finite_differences() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (rows, cols, h) = (5, 12, 1e-6);
    let x: Vec<f64> = (0..rows * cols)
        .map(|_| {
            let v = rng.random::<f64>() * 8.0 - 4.0;
            if v.abs() < 0.05 {
                0.3
            } else {
                v
            }
        })
        .collect();
    let x = Tensor::from_vec(x, (rows, cols), &Device::Cpu)?;
    let r = random_matrix(&mut rng, rows, cols, 2.0, DType::F64);
    // Every candidate in the mixture, so that each one's derivative is checked here.
    let pool = Pool::all();
    let k = pool.len();
    let w: Vec<f64> = (0..cols * k)
        .map(|i| {
            if i % 4 == 1 {
                0.0
            } else {
                rng.random::<f64>() - 0.3
            }
        })
        .collect();
    let w = Tensor::from_vec(w, (cols, k), &Device::Cpu)?;
    let ids = random_ids(&mut rng, cols);
    let ids_t = ids_tensor(&ids);

    // clamp 2.5 so that some values are clamped, none within 1e-3 of the bound (checked below).
    let clamp = Some(2.5);
    let loss_mix = |x: &Tensor, w: &Tensor| {
        (mixture(x, w, pool, clamp).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let loss_pn = |x: &Tensor| {
        (per_neuron(x, &ids_t).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let pre = mixture(&x, &w, pool, None)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    assert!(
        pre.iter().all(|s| (s.abs() - 2.5).abs() > 1e-3),
        "a point sits on the clamp bound"
    );

    let (_, gx, gw) = value_and_grads(|x, w| mixture(x, w, pool, clamp), &x, &w, &r);
    let (_, gx_pn, _) = value_and_grads(|x, _| per_neuron(x, &ids_t), &x, &w, &r);
    let (gx, gw, gx_pn) = (
        gx.to_vec2::<f64>()?,
        gw.to_vec2::<f64>()?,
        gx_pn.to_vec2::<f64>()?,
    );
    let bump = |t: &Tensor, i: usize, j: usize, d: f64| -> Tensor {
        let mut v = t.to_vec2::<f64>().unwrap();
        v[i][j] += d;
        Tensor::new(v, &Device::Cpu).unwrap()
    };
    for i in 0..rows {
        for j in 0..cols {
            let numeric =
                (loss_mix(&bump(&x, i, j, h), &w) - loss_mix(&bump(&x, i, j, -h), &w)) / (2.0 * h);
            assert!(
                (numeric - gx[i][j]).abs() < 1e-6,
                "mixture grad_x[{i}][{j}] {} vs {numeric}",
                gx[i][j]
            );
            let numeric = (loss_pn(&bump(&x, i, j, h)) - loss_pn(&bump(&x, i, j, -h))) / (2.0 * h);
            assert!(
                (numeric - gx_pn[i][j]).abs() < 1e-6,
                "per_neuron grad_x[{i}][{j}] {} vs {numeric}",
                gx_pn[i][j]
            );
        }
    }
    for n in 0..cols {
        for k in 0..k {
            let numeric =
                (loss_mix(&x, &bump(&w, n, k, h)) - loss_mix(&x, &bump(&w, n, k, -h))) / (2.0 * h);
            assert!(
                (numeric - gw[n][k]).abs() < 1e-6,
                "mixture grad_w[{n}][{k}] {} vs {numeric}",
                gw[n][k]
            );
        }
    }
    Ok(())
}

/// The fused phase-2 op on one row laid out as `(function, x)` pairs, against the scalar
/// formulas: bit for bit on the per-function path (`exact`), else within rounding (the lane
/// path writes tanh from e^(-2|x|); see lanes.rs) and exactly at 0.
fn kinks_and_tails(layout: &[(Activation, f64)], exact: bool) -> TestResult {
    let cols = layout.len();
    let ids: Vec<Activation> = layout.iter().map(|p| p.0).collect();
    let x: Vec<f64> = layout.iter().map(|p| p.1).collect();
    for dtype in [DType::F32, DType::F64] {
        let (rtol, atol) = match dtype {
            DType::F32 => (1e-6, 3e-7),
            _ => (1e-14, 1e-15),
        };
        let x_t = Tensor::from_vec(x.clone(), (1, cols), &Device::Cpu)?.to_dtype(dtype)?;
        let (y, gx, _) = value_and_grads(
            |x, _| per_neuron(x, &ids_tensor(&ids)),
            &x_t,
            &Tensor::zeros(1, dtype, &Device::Cpu)?,
            &Tensor::ones((1, cols), dtype, &Device::Cpu)?,
        );
        let (y, gx) = (
            y.to_dtype(DType::F64)?.to_vec2::<f64>()?,
            gx.to_dtype(DType::F64)?.to_vec2::<f64>()?,
        );
        let xs = x_t.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        for c in 0..cols {
            let (a, xv) = (ids[c], xs[0][c]);
            let (ev, ed) = match dtype {
                DType::F32 => (a.value(xv as f32) as f64, a.derivative(xv as f32) as f64),
                _ => (a.value(xv), a.derivative(xv)),
            };
            assert!(
                y[0][c].is_finite() && gx[0][c].is_finite(),
                "{a}({xv}) not finite"
            );
            if exact || xv == 0.0 {
                assert_eq!(y[0][c], ev, "{dtype:?} {a}({xv})");
                assert_eq!(gx[0][c], ed, "{dtype:?} {a}'({xv})");
            } else {
                for (got, want, what) in [(y[0][c], ev, ""), (gx[0][c], ed, "'")] {
                    assert!(
                        (got - want).abs() <= atol + rtol * want.abs(),
                        "{dtype:?} {a}{what}({xv}): lanes {got} vs formula {want}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// At and next to the kinks and far in the tails, the fused ops equal the scalar formulas
/// (which follow PyTorch at x = 0), with no NaN or inf, on both CPU paths.
#[test]
fn kinks_and_tails_follow_the_scalar_formulas() -> TestResult {
    let points = [
        0.0, 1e-30, -1e-30, 1e-7, -1e-7, 1e-3, -1e-3, 1e4, -1e4, 80.0, -80.0, 700.0, -700.0,
    ];
    // Each function's points twice in a row (a run of 26 neurons, the per-function path), then
    // the same points with the functions interleaved (scattered neurons, the lane path).
    let grouped: Vec<(Activation, f64)> = Activation::ALL
        .iter()
        .flat_map(|&a| points.iter().chain(&points).map(move |&p| (a, p)))
        .collect();
    let interleaved: Vec<(Activation, f64)> = points
        .iter()
        .flat_map(|&p| Activation::ALL.map(|a| (a, p)))
        .collect();
    for (layout, exact) in [(&grouped, true), (&interleaved, false)] {
        kinks_and_tails(layout, exact)?;
    }
    // The limits themselves.
    let at = |a: Activation, v: f64| -> f64 {
        let x = Tensor::new(&[[v]], &Device::Cpu).unwrap();
        per_neuron(&x, &Tensor::new(&[a.id() as u32], &Device::Cpu).unwrap())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap()[0][0]
    };
    assert_eq!(at(Activation::Sigmoid, 1e4), 1.0);
    assert_eq!(at(Activation::Sigmoid, -1e4), 0.0);
    assert_eq!(at(Activation::Tanh, -1e4), -1.0);
    assert_eq!(at(Activation::Elu, -1e4), -ELU_ALPHA);
    assert_eq!(at(Activation::Selu, -1e4), -SELU_LAMBDA * SELU_ALPHA);
    assert_eq!(at(Activation::Relu, 0.0), 0.0);

    // The later candidates' limits: 0 and x for GELU, SiLU and Mish, 0 and the linear tail
    // for Softplus.
    for a in [
        Activation::Gelu,
        Activation::Silu,
        Activation::Mish,
        Activation::Softplus,
    ] {
        assert_eq!(at(a, 1e4), 1e4, "{a}(1e4)");
        assert_eq!(at(a, -1e4), 0.0, "{a}(-1e4)");
    }
    assert_eq!(at(Activation::Identity, -1e4), -1e4);

    // PyTorch's derivatives at 0, through the op.
    let zero = Var::from_tensor(&Tensor::zeros((1, 11), DType::F64, &Device::Cpu)?)?;
    let ids = Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &Device::Cpu)?;
    let g = per_neuron(zero.as_tensor(), &ids)?.sum_all()?.backward()?;
    let g = g.get(zero.as_tensor()).unwrap().to_vec2::<f64>()?;
    assert_eq!(
        g[0],
        vec![
            0.0,
            0.25,
            1.0,
            0.01,
            ELU_ALPHA,
            SELU_LAMBDA * SELU_ALPHA,
            0.5,
            0.5,
            0.6,
            0.5,
            1.0
        ]
    );
    Ok(())
}

/// The clamp's derivative is 1 on the closed interval (PyTorch), 0 outside, for both clamps.
#[test]
fn clamp_bounds_follow_pytorch() -> TestResult {
    let x = Var::new(&[[10.0f64, 10.5, -10.0, 9.5, 20.0]], &Device::Cpu)?;
    // relu for the first two, leaky_relu (slope .01: -0.1 inside) for the third, selu, elu.
    let w = Tensor::new(
        &[
            [1.0f64, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0, 2.0, 0.0],
        ],
        &Device::Cpu,
    )?;
    let y = mixture(x.as_tensor(), &w, paper(), Some(10.0))?;
    assert_eq!(
        y.to_vec2::<f64>()?[0],
        vec![10.0, 10.0, -0.1, SELU_LAMBDA * 9.5, 10.0]
    );
    let g = y.sum_all()?.backward()?;
    // 10: on the bound, passes; 10.5: clamped; -10 * 0.01 inside; selu(9.5) = 9.98 inside, then
    // lambda; elu(20) clamped to 10 inside the inner clamp.
    assert_eq!(
        g.get(x.as_tensor()).unwrap().to_vec2::<f64>()?[0],
        vec![1.0, 0.0, 0.01, SELU_LAMBDA, 0.0]
    );
    Ok(())
}

/// Transposed, narrowed and broadcast (stride-0) operands give the contiguous result.
#[test]
fn non_contiguous_inputs_match_contiguous() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let base = random_matrix(&mut rng, 40, 300, 8.0, DType::F32);
    let transposed = base.t()?; // [300, 40], column stride 300
    let narrowed = base.narrow(1, 17, 200)?; // [40, 200], row stride 300
    for x in [transposed, narrowed] {
        assert!(!x.is_contiguous());
        let cols = x.dim(1)?;
        let ids = ids_tensor(&random_ids(&mut rng, cols));
        let w = random_matrix(&mut rng, cols, 6, 1.0, DType::F32);
        let contiguous = x.contiguous()?;
        assert_eq!(
            per_neuron(&x, &ids)?.to_vec2::<f32>()?,
            per_neuron(&contiguous, &ids)?.to_vec2::<f32>()?
        );
        assert_eq!(
            mixture(&x, &w.t()?.contiguous()?.t()?, paper(), Some(10.0))?.to_vec2::<f32>()?,
            mixture(&contiguous, &w, paper(), Some(10.0))?.to_vec2::<f32>()?
        );
        // sum_all's gradient reaches the ops as a broadcast of one scalar (stride 0).
        type Grads = (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>);
        let grads = |x: &Tensor| -> Grads {
            let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(&w).unwrap());
            let g = per_neuron(xv.as_tensor(), &ids)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g_mix = mixture(xv.as_tensor(), wv.as_tensor(), paper(), None)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            (
                g.get(xv.as_tensor()).unwrap().to_vec2().unwrap(),
                g_mix.get(xv.as_tensor()).unwrap().to_vec2().unwrap(),
                g_mix.get(wv.as_tensor()).unwrap().to_vec2().unwrap(),
            )
        };
        assert_eq!(grads(&x), grads(&contiguous));
    }
    Ok(())
}

#[test]
fn half_precision_is_computed_in_f32() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random_matrix(&mut rng, 8, 30, 4.0, DType::F32);
    let ids = ids_tensor(&random_ids(&mut rng, 30));
    let exact = per_neuron(&x, &ids)?;
    for dtype in [DType::BF16, DType::F16] {
        let y = per_neuron(&x.to_dtype(dtype)?, &ids)?;
        assert_eq!(y.dtype(), dtype);
        let err = (y.to_dtype(DType::F32)? - &exact)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(err < 0.05, "{dtype:?} max error {err}");
    }
    Ok(())
}

#[test]
fn bad_shapes_and_values_are_clear_errors() -> TestResult {
    let dev = Device::Cpu;
    let x = Tensor::zeros((4, 3), DType::F32, &dev)?;
    let err = |r: candle_core::Result<Tensor>| r.expect_err("expected an error").to_string();

    let e = err(per_neuron(&x, &Tensor::new(&[0u32, 1], &dev)?));
    assert!(
        e.contains("ids has 2 entries") && e.contains("3 neurons"),
        "{e}"
    );
    let e = err(per_neuron(&x, &Tensor::new(&[0u32, 11, 1], &dev)?));
    assert!(e.contains("ids[1] = 11") && e.contains("0..=10"), "{e}");
    let e = err(per_neuron(&x, &Tensor::new(&[0i64, -1, 1], &dev)?));
    assert!(e.contains("ids[1] = -1"), "{e}");
    let e = err(per_neuron(&x, &Tensor::new(&[0f32, 1.0, 1.0], &dev)?));
    assert!(e.contains("ids must have an integer dtype"), "{e}");
    let e = err(per_neuron(
        &Tensor::zeros((4, 3), DType::U32, &dev)?,
        &Tensor::new(&[0u32, 1, 2], &dev)?,
    ));
    assert!(e.contains("x must be a float tensor"), "{e}");
    let e = err(per_neuron(
        &Tensor::zeros((5, 2, 4, 3), DType::F32, &dev)?,
        &Tensor::new(&[0u32, 1, 2], &dev)?,
    ));
    assert!(e.contains("[models, batch, neurons]"), "{e}");

    let e = err(mixture(
        &x,
        &Tensor::zeros((3, 5), DType::F32, &dev)?,
        paper(),
        None,
    ));
    assert!(
        e.contains("w must have shape [neurons, pool size] = [3, 6]"),
        "{e}"
    );
    let small: Pool = "relu,gelu".parse().unwrap();
    let e = err(mixture(
        &x,
        &Tensor::zeros((3, 6), DType::F32, &dev)?,
        small,
        None,
    ));
    assert!(e.contains("[3, 2] (pool relu,gelu)"), "{e}");
    let e = err(mixture(
        &x,
        &Tensor::zeros((3, 6), DType::F64, &dev)?,
        paper(),
        None,
    ));
    assert!(e.contains("w has dtype F64 but x has F32"), "{e}");
    let e = err(mixture(
        &x,
        &Tensor::zeros((3, 6), DType::F32, &dev)?,
        paper(),
        Some(-1.0),
    ));
    assert!(e.contains("clamp must be a positive"), "{e}");
    Ok(())
}

/// grad_w reduces over the batch; its order must not depend on the number of threads.
#[test]
fn results_do_not_depend_on_thread_count() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = random_matrix(&mut rng, 512, 256, 5.0, DType::F32);
    let r = random_matrix(&mut rng, 512, 256, 1.0, DType::F32);
    let w = random_matrix(&mut rng, 256, 6, 1.0, DType::F32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (y, gx, gw) =
                value_and_grads(|x, w| mixture(x, w, paper(), Some(10.0)), &x, &w, &r);
            (
                y.to_vec2::<f32>().unwrap(),
                gx.to_vec2::<f32>().unwrap(),
                gw.to_vec2::<f32>().unwrap(),
            )
        })
    };
    assert_eq!(run(1), run(3));
    Ok(())
}

#[test]
fn gumbel_value_is_exactly_one_hot_and_gradient_is_the_softmax_jacobian() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, tau) = (50, 0.3);
    let logits: Vec<f64> = (0..n * 6)
        .map(|_| rng.random::<f64>() * 4.0 - 2.0)
        .collect();
    let logits = Var::from_tensor(&Tensor::from_vec(logits, (n, 6), &Device::Cpu)?)?;
    let noise: Vec<f64> = gumbel_noise(&mut rng, n * 6)
        .into_iter()
        .map(f64::from)
        .collect();
    let noise = Tensor::from_vec(noise, (n, 6), &Device::Cpu)?;
    let r = random_matrix(&mut rng, n, 6, 2.0, DType::F64);
    let w = straight_through(logits.as_tensor(), &noise, tau)?;
    let grad = (&w * &r)?.sum_all()?.backward()?;
    let grad = grad.get(logits.as_tensor()).unwrap().to_vec2::<f64>()?;

    let (l, g, r) = (
        logits.to_vec2::<f64>()?,
        noise.to_vec2::<f64>()?,
        r.to_vec2::<f64>()?,
    );
    for (i, row) in w.to_vec2::<f64>()?.iter().enumerate() {
        // Value: exactly one 1.0 at the argmax of the perturbed logits, zeros elsewhere.
        let z: Vec<f64> = (0..6).map(|k| (l[i][k] + g[i][k]) / tau).collect();
        let best = (0..6).fold(0, |b, k| if z[k] > z[b] { k } else { b });
        for k in 0..6 {
            assert_eq!(row[k], if k == best { 1.0 } else { 0.0 }, "row {i}");
        }
        // Gradient: d/dl of r . softmax(z) = s * (r - s . r) / tau.
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
        let sr: f64 = (0..6).map(|k| s[k] * r[i][k]).sum();
        for k in 0..6 {
            let expected = s[k] * (r[i][k] - sr) / tau;
            assert!(
                (grad[i][k] - expected).abs() < 1e-12,
                "grad[{i}][{k}] {} vs {expected}",
                grad[i][k]
            );
        }
    }
    Ok(())
}

#[test]
fn gumbel_ties_go_to_the_lowest_id() -> TestResult {
    let logits = Tensor::new(&[[1f32, 3.0, 3.0, 0.0, 3.0, 0.0]], &Device::Cpu)?;
    let w = straight_through(&logits, &logits.zeros_like()?, 0.3)?;
    assert_eq!(w.to_vec2::<f32>()?[0], vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    Ok(())
}

#[test]
fn gumbel_is_seeded_and_selects_with_softmax_probabilities() -> TestResult {
    // Same seed, same noise; another seed, other noise.
    let a = gumbel_noise(&mut ChaCha8Rng::seed_from_u64(9), 100);
    assert_eq!(a, gumbel_noise(&mut ChaCha8Rng::seed_from_u64(9), 100));
    assert_ne!(a, gumbel_noise(&mut ChaCha8Rng::seed_from_u64(10), 100));
    assert!(a.iter().all(|v| v.is_finite()));

    // Gumbel-max: argmax(l + g) ~ softmax(l), whatever tau. 40,000 draws put the standard error
    // of each frequency below 0.0025; 0.012 is about five of them, while softmax(l / tau) or
    // uniform noise would miss by more than 0.1.
    let probe = [0.5f64, -1.0, 2.0, 0.0, 1.0, -0.5];
    let neurons = 2000;
    let logits = Tensor::from_vec(probe.repeat(neurons), (neurons, 6), &Device::Cpu)?
        .to_dtype(DType::F32)?;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut counts = [0usize; Activation::COUNT];
    for _ in 0..20 {
        let w =
            mixed_act::gumbel::sample_straight_through(&logits, 0.3, &mut rng)?.to_vec2::<f32>()?;
        for row in w {
            counts[row.iter().position(|&v| v == 1.0).unwrap()] += 1;
        }
    }
    let total: f64 = probe.iter().map(|l| l.exp()).sum();
    for k in 0..6 {
        let expected = probe[k].exp() / total;
        let seen = counts[k] as f64 / (neurons * 20) as f64;
        assert!(
            (seen - expected).abs() < 0.012,
            "candidate {k}: {seen} vs softmax {expected}"
        );
    }
    Ok(())
}

#[test]
fn selection_layer_initialises_as_the_reference() -> TestResult {
    let layer = SelectionLayer::new(
        300,
        0.3,
        Some(10.0),
        &Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(12),
    )?;
    let logits = layer.logits().to_vec2::<f32>()?;
    let mut counts = [0usize; Activation::COUNT];
    for row in &logits {
        let raised: Vec<usize> = (0..6).filter(|&k| row[k] != 0.0).collect();
        assert_eq!(raised.len(), 1);
        assert_eq!(row[raised[0]], mixed_act::INITIAL_PREFERENCE);
        counts[raised[0]] += 1;
    }
    // Uniform over the paper's 6 candidates: each gets 50 of 300 on average; all must appear.
    assert!(counts[..6].iter().all(|&c| c > 20), "{counts:?}");
    assert_eq!(layer.counts()?, counts);
    Ok(())
}

#[test]
fn freeze_keeps_the_argmax_and_matches_evaluation_output() -> TestResult {
    let dev = Device::Cpu;
    // Ties go to the lowest id.
    let logits = Tensor::new(
        &[
            [0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 2.0, 2.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
        ],
        &dev,
    )?;
    let layer = SelectionLayer::from_logits(Var::from_tensor(&logits)?, paper(), 0.3, None)?;
    let fixed = freeze(&layer)?;
    assert_eq!(
        fixed.activations(),
        &[Activation::Relu, Activation::Sigmoid, Activation::Selu]
    );
    assert_eq!(fixed.counts(), [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);

    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let trained: Vec<f32> = (0..64 * 6).map(|_| rng.random::<f32>()).collect();
    let logits = Var::from_tensor(&Tensor::from_vec(trained, (64, 6), &dev)?)?;
    let x = random_matrix(&mut rng, 32, 64, 30.0, DType::F32);
    for clamp in [None, Some(10.0)] {
        let layer = SelectionLayer::from_logits(logits.clone(), paper(), 0.3, clamp)?;
        let fixed = freeze(&layer)?;
        let eval = layer
            .forward(&x, Selection::Argmax, &mut rng)?
            .to_vec2::<f32>()?;
        let frozen = fixed.forward(&x)?.to_vec2::<f32>()?;
        for (e_row, f_row) in eval.iter().zip(&frozen) {
            for (e, f) in e_row.iter().zip(f_row) {
                // Phase 2 has no clamp, so the outputs agree where the clamp is inactive: to
                // rounding, since the frozen layer's scattered neurons take the lane path.
                if clamp.is_none() || f.abs() < 10.0 {
                    assert!((e - f).abs() <= 1e-6 * (1.0 + f.abs()), "{e} vs {f}");
                } else {
                    assert_eq!(e.abs(), 10.0);
                }
            }
        }
    }
    Ok(())
}

/// A subset pool: the initial preferences, every Gumbel draw and the frozen choices are pool
/// members only, and the mixture with the sampled weights is the frozen choice's function.
#[test]
fn a_subset_pool_draws_and_freezes_only_its_members() -> TestResult {
    let pool: Pool = "tanh,gelu,softplus".parse().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let layer = SelectionLayer::with_pool(200, pool, 1.0, None, &Device::Cpu, &mut rng)?;
    assert_eq!(layer.logits().dims(), &[200, 3]);
    let mut seen = [0usize; Activation::COUNT];
    for _ in 0..20 {
        let w = layer
            .weights(Selection::Sample, &mut rng)?
            .to_vec2::<f32>()?;
        for row in &w {
            assert_eq!(row.iter().filter(|&&v| v == 1.0).count(), 1, "{row:?}");
            let k = row.iter().position(|&v| v == 1.0).unwrap();
            seen[pool.members()[k].id()] += 1;
        }
    }
    for a in Activation::ALL {
        let member = pool.index_of(a).is_some();
        assert_eq!(
            seen[a.id()] > 0,
            member,
            "{a}: drawn {} times",
            seen[a.id()]
        );
    }
    let fixed = freeze(&layer)?;
    assert!(fixed
        .activations()
        .iter()
        .all(|a| pool.index_of(*a).is_some()));
    assert_eq!(fixed.counts().iter().sum::<usize>(), 200);
    // With the argmax weights the mixture (no clamp) is the frozen layer, value for value.
    let x = random_matrix(&mut rng, 16, 200, 6.0, DType::F64);
    let mixed = layer.forward(&x, Selection::Argmax, &mut rng)?;
    assert_close(&mixed, &fixed.forward(&x)?, "subset pool argmax vs frozen");
    Ok(())
}

/// A selection layer whose pool is one function, without a clamp, computes exactly that
/// function: the same bits as the fixed op, forward and backward, for every candidate.
#[test]
fn a_pool_of_one_without_clamp_is_exactly_that_function() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for dtype in [DType::F32, DType::F64] {
        for a in Activation::ALL {
            let pool = Pool::new(&[a]).unwrap();
            let layer = SelectionLayer::with_pool(40, pool, 0.3, None, &Device::Cpu, &mut rng)?;
            let x = random_matrix(&mut rng, 9, 40, 8.0, dtype);
            let g = random_matrix(&mut rng, 9, 40, 2.0, dtype);
            let w = layer
                .weights(Selection::Sample, &mut rng)?
                .to_dtype(dtype)?;
            let y = mixture(&x, &w, pool, None)?;
            let (gx, _) = layer.backward(&x, &w, &g)?;
            let ids = ids_tensor(&[a; 40]);
            assert_eq!(
                bits(&y),
                bits(&per_neuron(&x, &ids)?),
                "{a} {dtype:?} value"
            );
            assert_eq!(
                bits(&gx),
                bits(&per_neuron_grad(&x, &ids, &g)?),
                "{a} {dtype:?} grad_x"
            );
        }
    }
    Ok(())
}

/// Logits that do not match the pool are refused with the pool named.
#[test]
fn logits_must_match_the_pool() {
    let logits = Var::zeros((4, 6), DType::F32, &Device::Cpu).unwrap();
    let small: Pool = "relu,elu,gelu".parse().unwrap();
    let err = SelectionLayer::from_logits(logits, small, 0.3, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[neurons, 3] for the pool relu,elu,gelu"),
        "{err}"
    );
}

/// A cohort: every op on x `[M, B, N]` with per-model ids `[M, N]` or weights `[M, N, K]` gives
/// each model exactly the bits of the op on that model alone (values, gradients to x and w, the
/// slope op, autograd), also for a non-contiguous stack and half types.
#[test]
fn stacked_models_give_each_model_its_single_model_bits() -> TestResult {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let (models, rows, cols) = (3, 17, 40);
    for dtype in [DType::F32, DType::F64, DType::BF16] {
        for pool in pools() {
            let k = pool.len();
            let x = Tensor::stack(
                &(0..models)
                    .map(|_| random_matrix(&mut rng, rows, cols, 12.0, dtype))
                    .collect::<Vec<_>>(),
                0,
            )?;
            let g = Tensor::stack(
                &(0..models)
                    .map(|_| random_matrix(&mut rng, rows, cols, 2.0, dtype))
                    .collect::<Vec<_>>(),
                0,
            )?;
            let ids: Vec<Vec<Activation>> =
                (0..models).map(|_| random_ids(&mut rng, cols)).collect();
            let ids_t = Tensor::stack(&ids.iter().map(|i| ids_tensor(i)).collect::<Vec<_>>(), 0)?;
            // Per model: one-hot rows (training) and some general rows.
            let w: Vec<f64> = (0..models * cols * k)
                .map(|i| {
                    let (n, j) = (i / k, i % k);
                    match n % 5 {
                        0 => rng.random::<f64>() - 0.3,
                        _ if j == (n * 7 + i / (cols * k)) % k => 1.0,
                        _ => 0.0,
                    }
                })
                .collect();
            let w = Tensor::from_vec(w, (models, cols, k), &Device::Cpu)?.to_dtype(dtype)?;
            for clamp in [Some(10.0), None] {
                let y = mixture(&x, &w, pool, clamp)?;
                let (gx, gw) = mixture_grads(&x, &w, pool, clamp, &g)?;
                assert_eq!(gw.dims(), &[models, cols, k]);
                for m in 0..models {
                    let (xm, wm, gm) = (x.get(m)?, w.get(m)?, g.get(m)?);
                    let what = format!("{dtype:?} pool {pool} clamp {clamp:?} model {m}");
                    assert_eq!(
                        bits(&y.get(m)?),
                        bits(&mixture(&xm, &wm, pool, clamp)?),
                        "mixture {what}"
                    );
                    let (gx1, gw1) = mixture_grads(&xm, &wm, pool, clamp, &gm)?;
                    assert_eq!(bits(&gx.get(m)?), bits(&gx1), "mixture grad_x {what}");
                    assert_eq!(bits(&gw.get(m)?), bits(&gw1), "mixture grad_w {what}");
                }
            }
            let y = per_neuron(&x, &ids_t)?;
            let gx = per_neuron_grad(&x, &ids_t, &g)?;
            for m in 0..models {
                let (xm, im, gm) = (x.get(m)?, ids_t.get(m)?, g.get(m)?);
                assert_eq!(
                    bits(&y.get(m)?),
                    bits(&per_neuron(&xm, &im)?),
                    "{dtype:?} model {m}"
                );
                assert_eq!(
                    bits(&gx.get(m)?),
                    bits(&per_neuron_grad(&xm, &im, &gm)?),
                    "{dtype:?} grad model {m}"
                );
            }
            if dtype != DType::BF16 {
                let (v, slope) = per_neuron_with_slope(&x, &ids_t)?;
                let slope = slope.expect("f32 and f64 on the CPU keep slopes");
                assert_eq!(slope.dims(), x.dims());
                for m in 0..models {
                    let (v1, s1) = per_neuron_with_slope(&x.get(m)?, &ids_t.get(m)?)?;
                    assert_eq!(bits(&v.get(m)?), bits(&v1));
                    assert_eq!(bits(&slope.get(m)?), bits(&s1.unwrap()));
                }
            }
        }
    }
    // Autograd through a non-contiguous stack ([B, M, N] transposed to [M, B, N]).
    let xt = random_matrix(&mut rng, rows * models, cols, 6.0, DType::F32)
        .reshape((rows, models, cols))?
        .transpose(0, 1)?;
    let xv = Var::from_tensor(&xt.contiguous()?)?;
    let ids: Vec<Vec<Activation>> = (0..models).map(|_| random_ids(&mut rng, cols)).collect();
    let ids_t = Tensor::stack(&ids.iter().map(|i| ids_tensor(i)).collect::<Vec<_>>(), 0)?;
    assert_eq!(
        bits(&per_neuron(&xt, &ids_t)?),
        bits(&per_neuron(xv.as_tensor(), &ids_t)?)
    );
    let grads = per_neuron(xv.as_tensor(), &ids_t)?.sum_all()?.backward()?;
    let ones = Tensor::ones((rows, cols), DType::F32, &Device::Cpu)?;
    for m in 0..models {
        let single = per_neuron_grad(&xt.get(m)?, &ids_t.get(m)?, &ones)?;
        assert_eq!(
            bits(&grads.get(xv.as_tensor()).unwrap().get(m)?),
            bits(&single)
        );
    }
    Ok(())
}

/// Stacked operands whose model counts or shapes disagree are refused, naming the operand.
#[test]
fn stacked_shapes_must_agree() -> TestResult {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 4, 3), DType::F32, &dev)?;
    let err = |r: candle_core::Result<Tensor>| r.expect_err("expected an error").to_string();
    let e = err(per_neuron(&x, &Tensor::zeros(3, DType::U32, &dev)?));
    assert!(e.contains("ids must be") && e.contains("2 models"), "{e}");
    let e = err(per_neuron(&x, &Tensor::zeros((3, 3), DType::U32, &dev)?));
    assert!(e.contains("[3, 3]"), "{e}");
    let e = err(mixture(
        &x,
        &Tensor::zeros((3, 6), DType::F32, &dev)?,
        paper(),
        None,
    ));
    assert!(
        e.contains("w must be") && e.contains("[models, neurons, pool size]"),
        "{e}"
    );
    let e = err(mixture(
        &x,
        &Tensor::zeros((2, 3, 5), DType::F32, &dev)?,
        paper(),
        None,
    ));
    assert!(e.contains("[3, 6]"), "{e}");
    let e = err(per_neuron(
        &Tensor::zeros((2, 2, 4, 3), DType::F32, &dev)?,
        &Tensor::zeros((2, 3), DType::U32, &dev)?,
    ));
    assert!(e.contains("[models, batch, neurons]"), "{e}");
    Ok(())
}
