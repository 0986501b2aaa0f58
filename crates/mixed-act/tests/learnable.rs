//! The learnable activations (PReLU, Swish-beta, PAU) against their candle-op references:
//! values and every gradient on random inputs with kinks, central finite differences in f64,
//! tails, NaN, the special cases that must equal fixed functions bit for bit, a leading model
//! dimension, and parameter gradients whose bits do not depend on the thread count.

use candle_core::{DType, Device, Tensor, Var};
use mixed_act::{
    learnable, learnable_grads, learnable_slow, per_neuron, Activation, Learnable,
    PAU_LEAKY_RELU_INIT,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KINDS: [Learnable; 3] = [Learnable::Prelu, Learnable::SwishBeta, Learnable::Pau];

fn bits(t: &Tensor) -> Vec<u64> {
    let v: Vec<f64> = t
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap();
    v.iter().map(|x| x.to_bits()).collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// x `[M, B, N]` uniform in [-4, 4) with exact zeros and ±1 (PAU's switch) sprinkled in.
fn inputs(rng: &mut ChaCha8Rng, (m, b, n): (usize, usize, usize), dtype: DType) -> Tensor {
    let data: Vec<f64> = (0..m * b * n)
        .map(|i| match i % 17 {
            0 => 0.0,
            5 => 1.0,
            9 => -1.0,
            _ => rng.random_range(-4.0..4.0),
        })
        .collect();
    Tensor::from_vec(data, (m, b, n), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Parameters `[M, U, P]` near each kind's initial values, spread so that units differ.
fn parameters(
    rng: &mut ChaCha8Rng,
    kind: Learnable,
    (m, u): (usize, usize),
    dtype: DType,
) -> Tensor {
    let p = kind.params();
    let data: Vec<f64> = (0..m * u * p)
        .map(|i| {
            let base = match kind {
                Learnable::Prelu => 0.25,
                Learnable::SwishBeta => 1.0,
                Learnable::Pau => PAU_LEAKY_RELU_INIT[i % p],
            };
            base + rng.random_range(-0.3..0.3)
        })
        .collect();
    Tensor::from_vec(data, (m, u, p), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_relative_error(got: &Tensor, want: &Tensor) -> f64 {
    values(got)
        .iter()
        .zip(values(want))
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f64::max)
}

/// Forward and both gradients of the fused op against autograd through the candle
/// composition, for per-neuron units and (PAU) one shared unit, in f32 and f64.
#[test]
fn fused_ops_match_the_candle_references() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for kind in KINDS {
        for shared in [false, true] {
            if shared && kind != Learnable::Pau {
                continue;
            }
            for (dtype, tolerance) in [(DType::F32, 2e-5), (DType::F64, 1e-12)] {
                let (m, b, n) = (2, 37, 70);
                let x = inputs(&mut rng, (m, b, n), dtype);
                let p = parameters(&mut rng, kind, (m, if shared { 1 } else { n }), dtype);
                let g = inputs(&mut rng, (m, b, n), dtype);
                let what = format!("{kind:?} shared {shared} {dtype:?}");
                let y = learnable(kind, &x, &p).unwrap();
                let want = learnable_slow(kind, &x, &p).unwrap();
                let err = max_relative_error(&y, &want);
                assert!(err < tolerance, "{what}: forward error {err}");
                let (gx, gp) = learnable_grads(kind, &x, &p, &g).unwrap();
                let (xv, pv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&p).unwrap());
                let slow = learnable_slow(kind, xv.as_tensor(), pv.as_tensor()).unwrap();
                let grads = (slow * &g).unwrap().sum_all().unwrap().backward().unwrap();
                let want_x = grads.get(xv.as_tensor()).unwrap();
                let want_p = grads.get(pv.as_tensor()).unwrap();
                let err = max_relative_error(&gx, want_x);
                assert!(err < tolerance, "{what}: grad x error {err}");
                // Sums over up to B * N terms: relative to the sum of their magnitudes.
                let scale = values(&g).iter().map(|v| v.abs()).sum::<f64>() / (m as f64);
                let err = values(&gp)
                    .iter()
                    .zip(values(want_p))
                    .map(|(a, b)| (a - b).abs() / (1.0 + scale))
                    .fold(0.0, f64::max);
                assert!(err < tolerance, "{what}: grad params error {err}");
                // The op's own backward (autograd through the fused op) is the same kernel.
                let (xv, pv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&p).unwrap());
                let fused = learnable(kind, xv.as_tensor(), pv.as_tensor()).unwrap();
                let grads = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
                // Autograd adds each gradient to zeros: -0 comes back as +0.
                let same = |a: &Tensor, b: &Tensor| {
                    bits(a)
                        .iter()
                        .zip(bits(b))
                        .all(|(x, y)| *x == y || (x | y) == 1 << 63)
                };
                assert!(
                    same(grads.get(xv.as_tensor()).unwrap(), &gx),
                    "{what}: grad x"
                );
                assert!(
                    same(grads.get(pv.as_tensor()).unwrap(), &gp),
                    "{what}: grad p"
                );
            }
        }
    }
}

/// Central finite differences in f64 for x and every parameter, at points away from kinks.
#[test]
fn gradients_match_central_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let h = 1e-6;
    for kind in KINDS {
        for shared in [false, true] {
            let (b, n) = (5, 4);
            let units = if shared { 1 } else { n };
            let data: Vec<f64> = (0..b * n)
                .map(|_| {
                    let v: f64 = rng.random_range(0.2..3.0);
                    if rng.random() {
                        v
                    } else {
                        -v
                    }
                })
                .collect();
            let x = Tensor::from_vec(data, (1, b, n), &Device::Cpu).unwrap();
            let p = parameters(&mut rng, kind, (1, units), DType::F64);
            let g = inputs(&mut rng, (1, b, n), DType::F64);
            let loss = |x: &Tensor, p: &Tensor| -> f64 {
                let y = learnable(kind, x, p).unwrap();
                (y * &g)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let (gx, gp) = learnable_grads(kind, &x, &p, &g).unwrap();
            for (t, grad, what) in [(&x, &gx, "x"), (&p, &gp, "params")] {
                let base = values(t);
                for (i, analytic) in values(grad).into_iter().enumerate() {
                    let nudged = |d: f64| {
                        let mut v = base.clone();
                        v[i] += d;
                        Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap()
                    };
                    let numeric = if what == "x" {
                        (loss(&nudged(h), &p) - loss(&nudged(-h), &p)) / (2.0 * h)
                    } else {
                        (loss(&x, &nudged(h)) - loss(&x, &nudged(-h))) / (2.0 * h)
                    };
                    assert!(
                        (numeric - analytic).abs() < 1e-5 * (1.0 + numeric.abs()),
                        "{kind:?} shared {shared} d/d{what}[{i}]: {analytic} vs {numeric}"
                    );
                }
            }
        }
    }
}

/// Large inputs: PAU stays finite (x^5 would overflow f32 near 5e7) and follows its tail
/// slope a_5 / |b_4|; NaN stays NaN; and a denominator coefficient at exactly 0 still gets a
/// gradient (sign(0) taken as +1).
#[test]
fn tails_nan_and_zero_coefficients() {
    let dev = Device::Cpu;
    let p = Tensor::new(&[PAU_LEAKY_RELU_INIT.map(|v| v as f32)], &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let slope = PAU_LEAKY_RELU_INIT[5] / PAU_LEAKY_RELU_INIT[9].abs();
    for big in [1e4f32, 1e30, -1e4, -1e30] {
        let x = Tensor::new(&[[[big]]], &dev).unwrap();
        let y = learnable(Learnable::Pau, &x, &p).unwrap();
        let y = values(&y)[0];
        assert!(y.is_finite(), "PAU({big}) = {y}");
        let ratio = y / big as f64;
        assert!(
            (ratio - slope).abs() < 2e-3 * slope,
            "PAU({big}) / {big} = {ratio}, tail {slope}"
        );
        let (gx, gp) = learnable_grads(Learnable::Pau, &x, &p, &x.ones_like().unwrap()).unwrap();
        assert!(
            values(&gx)
                .iter()
                .chain(&values(&gp))
                .all(|v| v.is_finite()),
            "{big}"
        );
        for kind in [Learnable::Prelu, Learnable::SwishBeta] {
            let p1 = Tensor::new(&[[[0.5f32]]], &dev).unwrap();
            let y = values(&learnable(kind, &x, &p1).unwrap())[0];
            assert!(y.is_finite(), "{kind:?}({big}) = {y}");
        }
    }
    for kind in KINDS {
        let x = Tensor::new(&[[[f32::NAN, 1.0]]], &dev).unwrap();
        let p = match kind {
            Learnable::Pau => p.broadcast_as((1, 1, 10)).unwrap().contiguous().unwrap(),
            _ => Tensor::new(&[[[0.5f32]]], &dev).unwrap(),
        };
        let y = values(&learnable(kind, &x, &p).unwrap());
        assert!(y[0].is_nan() && y[1].is_finite(), "{kind:?}: {y:?}");
    }
    let mut zero = PAU_LEAKY_RELU_INIT;
    zero[7] = 0.0;
    let p = Tensor::new(&[zero], &dev).unwrap().unsqueeze(0).unwrap();
    let x = Tensor::new(&[[[0.5f64, -2.0, 3.0]]], &dev).unwrap();
    let (_, gp) = learnable_grads(Learnable::Pau, &x, &p, &x.ones_like().unwrap()).unwrap();
    assert!(
        values(&gp)[7] != 0.0,
        "b_2 at 0 gets a gradient: {:?}",
        values(&gp)
    );
}

/// PReLU with a = 0 is ReLU and with a = 0.01 leaky ReLU, Swish-beta with beta = 1 is SiLU,
/// bit for bit, values and input gradients.
#[test]
fn special_cases_are_the_fixed_functions_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, n) = (64, 33);
    let x = inputs(&mut rng, (1, b, n), DType::F32);
    let g = inputs(&mut rng, (1, b, n), DType::F32);
    for (kind, value, fixed) in [
        (Learnable::Prelu, 0.0f32, Activation::Relu),
        (Learnable::Prelu, 0.01, Activation::LeakyRelu),
        (Learnable::SwishBeta, 1.0, Activation::Silu),
    ] {
        let p = Tensor::full(value, (1, n, 1), &Device::Cpu).unwrap();
        let ids = Tensor::full(fixed.id() as u32, (1, n), &Device::Cpu).unwrap();
        let want = per_neuron(&x, &ids).unwrap();
        let y = learnable(kind, &x, &p).unwrap();
        assert_eq!(bits(&y), bits(&want), "{kind:?} {value} = {fixed}");
        let want_x = mixed_act::per_neuron_grad(&x, &ids, &g).unwrap();
        let (gx, _) = learnable_grads(kind, &x, &p, &g).unwrap();
        assert_eq!(
            bits(&gx),
            bits(&want_x),
            "{kind:?} {value} = {fixed}: grad x"
        );
    }
}

/// A stack of models gives each model exactly its own result, and the parameter gradients do
/// not depend on the number of threads.
#[test]
fn models_are_independent_and_threads_do_not_change_bits() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for kind in KINDS {
        let (m, b, n) = (3, 130, 75);
        let x = inputs(&mut rng, (m, b, n), DType::F32);
        let p = parameters(&mut rng, kind, (m, n), DType::F32);
        let g = inputs(&mut rng, (m, b, n), DType::F32);
        let (y, (gx, gp)) = (
            learnable(kind, &x, &p).unwrap(),
            learnable_grads(kind, &x, &p, &g).unwrap(),
        );
        for j in 0..m {
            let (xj, pj, gj) = (x.get(j).unwrap(), p.get(j).unwrap(), g.get(j).unwrap());
            let yj = learnable(kind, &xj, &pj).unwrap();
            assert_eq!(bits(&yj), bits(&y.get(j).unwrap()), "{kind:?} model {j}");
            let (gxj, gpj) = learnable_grads(kind, &xj, &pj, &gj).unwrap();
            assert_eq!(
                bits(&gxj),
                bits(&gx.get(j).unwrap()),
                "{kind:?} model {j} grad x"
            );
            assert_eq!(
                bits(&gpj),
                bits(&gp.get(j).unwrap()),
                "{kind:?} model {j} grad p"
            );
        }
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (_, again) = pool.install(|| learnable_grads(kind, &x, &p, &g).unwrap());
            assert_eq!(bits(&again), bits(&gp), "{kind:?} with {threads} threads");
        }
    }
}

/// Wrong shapes and dtypes are errors that say what was expected.
#[test]
fn bad_shapes_are_errors() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 4, 5), DType::F32, &dev).unwrap();
    for (p, needle) in [
        (
            Tensor::zeros((1, 3, 1), DType::F32, &dev).unwrap(),
            "params must be",
        ),
        (
            Tensor::zeros((1, 5, 2), DType::F32, &dev).unwrap(),
            "params must be",
        ),
        (Tensor::zeros((1, 5, 1), DType::F64, &dev).unwrap(), "F32"),
        (Tensor::zeros((5, 1), DType::F32, &dev).unwrap(), "x [B, N]"),
    ] {
        let err = learnable(Learnable::Prelu, &x, &p).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
