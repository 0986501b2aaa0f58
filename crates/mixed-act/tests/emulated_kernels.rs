//! The CUDA and Metal kernel sources, run on the CPU, against the Rust CPU kernels.
//!
//! No GPU is needed: `tests/emulation/harness.cpp` compiles `src/kernels/mixed_act.cu` (and,
//! separately, `mixed_act.metal`) as host C++ under small shims that play CUDA's and Metal's
//! thread model (one std::thread per GPU thread of a block, barriers, shared memory), and
//! launches each kernel with the geometry the Rust launch code uses. This checks what the
//! PTX compile cannot: indexing, the per-column ids and weights, the pool argument (its size, its
//! members' ids and their order), the clamps, the grid-stride and bounds checks, and the
//! atomics-free grad-w reduction. Phase 2 uses all eleven functions; the mixtures run with the
//! paper's pool, the full pool of eleven and a small pool out of id order. It does not check GPU
//! precision or the launch code in cuda.rs / metal.rs themselves (scripts/gpu-check.sh does, on
//! a GPU).
//!
//! Needs a C++20 compiler: `$CXX`, else `c++`. Tolerances as in tests/ops.rs:
//! |emulated - cpu| <= ATOL + RTOL * |cpu|, (1e-6, 1e-5) in f32 and (1e-12, 1e-10) in f64, ATOL
//! times the rows summed for grad_w; the Metal kernels sum grad_w in f32 (Metal has no f64),
//! so there RTOL is 1e-4. The same bounds hold for the functions added after the paper's six:
//! in f32 the CUDA shim's erfcf / log1pf and the Metal source's own erfc (the fit the CPU uses,
//! with another exp) differ from the CPU's by a few parts in 1e7 where the values are not tiny.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor, Var};
use mixed_act::{elementwise_geometry, mixture, per_neuron, Activation, Pool};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 75;
const COLS: usize = 70;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Cuda,
    Metal,
}

/// Compiles the harness for `backend` once per test process.
fn harness(backend: Backend) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emulation");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("harness-{backend:?}"));
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let define = match backend {
        Backend::Cuda => "-DEMULATE_CUDA",
        Backend::Metal => "-DEMULATE_METAL",
    };
    let status = Command::new(&compiler)
        .args([
            "-std=c++20",
            "-O1",
            "-Wall",
            "-Werror",
            "-Wno-unknown-pragmas",
        ])
        .args(["-Wno-attributes", "-pthread", define, "-I"])
        .arg(&here)
        .arg("-o")
        .arg(&out)
        .arg(here.join("harness.cpp"))
        .status()
        .unwrap_or_else(|e| {
            panic!("this test needs a C++20 compiler ($CXX or c++); running {compiler}: {e}")
        });
    assert!(status.success(), "compiling the {backend:?} harness failed");
    out
}

fn write_floats(path: &Path, values: &[f64], dtype: DType) {
    let bytes: Vec<u8> = match dtype {
        DType::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => values
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect(),
    };
    std::fs::write(path, bytes).unwrap();
}

fn read_floats(path: &Path, dtype: DType) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    match dtype {
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
    }
}

/// `[ROWS, COLS]` inputs with the kinks and tails mixed in: every third row holds values from a
/// fixed list, shifted by one place per column, so that every column (every function of phase 2,
/// every one-hot pool member of phase 1) meets each of them: zeros and tiny values of both signs,
/// saturation, softplus's threshold 20 and either side of it, values beyond the clamps, the tails
/// at |x| = 1e4. The other rows are uniform in [-scale, scale].
fn inputs(rng: &mut ChaCha8Rng, scale: f64) -> Vec<f64> {
    const SPECIAL: [f64; 20] = [
        0.0, -0.0, 1e-7, -1e-7, 0.5, -0.5, 12.0, -12.0, 40.0, -40.0, 1e4, -1e4, 20.0, -20.0, 19.5,
        -19.5, 20.5, -20.5, -0.75, 3.0,
    ];
    const { assert!(ROWS / 3 >= SPECIAL.len()) };
    (0..ROWS * COLS)
        .map(|i| {
            let (r, c) = (i / COLS, i % COLS);
            if r % 3 == 0 {
                SPECIAL[(r / 3 + c) % SPECIAL.len()]
            } else {
                (rng.random::<f64>() * 2.0 - 1.0) * scale
            }
        })
        .collect()
}

/// The pools the mixtures run with: the paper's six (the default), all eleven, and a small one
/// out of id order (its columns are not its ids).
fn pools() -> [Pool; 3] {
    [Pool::paper(), Pool::all(), "gelu,relu,elu".parse().unwrap()]
}

struct Case {
    x: Vec<f64>,
    /// Phase 2: one global id per neuron, every function at least once.
    ids: Vec<u32>,
    /// Phase 1: the mixture's pool and weights `[COLS, K]`.
    pool: Pool,
    w: Vec<f64>,
    grad_y: Vec<f64>,
}

fn case(seed: u64, pool: Pool) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = inputs(&mut rng, 4.0);
    let grad_y: Vec<f64> = (0..ROWS * COLS)
        .map(|_| rng.random::<f64>() - 0.5)
        .collect();
    // Every function once, the rest random, in random order.
    let mut ids: Vec<u32> = (0..COLS)
        .map(|n| {
            if n < Activation::COUNT {
                n as u32
            } else {
                rng.random_range(0..Activation::COUNT as u32)
            }
        })
        .collect();
    for i in (1..COLS).rev() {
        ids.swap(i, rng.random_range(0..=i));
    }
    // Neurons 0..40 one-hot (training's case), every member in turn; 40..60 dense soft weights;
    // 60.. soft weights with some exact zeros (skipped terms off the one-hot path).
    let k = pool.len();
    let first = rng.random_range(0..k);
    let w = (0..COLS * k)
        .map(|i| {
            let (n, j) = (i / k, i % k);
            if n < 40 {
                f64::from((n + first) % k == j)
            } else if n < 60 || rng.random_range(0..3) > 0 {
                rng.random::<f64>() * 1.5 - 0.25
            } else {
                0.0
            }
        })
        .collect();
    Case {
        x,
        ids,
        pool,
        w,
        grad_y,
    }
}

/// `(y, grad_x, grad_w)` of the CPU ops for `sum(op(x) * grad_y)`.
fn cpu(case: &Case, dtype: DType, clamp: Option<f64>) -> [Vec<f64>; 5] {
    let dev = Device::Cpu;
    let x = Var::from_tensor(
        &Tensor::from_slice(&case.x, (ROWS, COLS), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let w = Var::from_tensor(
        &Tensor::from_slice(&case.w, (COLS, case.pool.len()), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let ids = Tensor::new(case.ids.as_slice(), &dev).unwrap();
    let gy = Tensor::from_slice(&case.grad_y, (ROWS, COLS), &dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let y_pn = per_neuron(x.as_tensor(), &ids).unwrap();
    let g_pn = (&y_pn * &gy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let y_mx = mixture(x.as_tensor(), w.as_tensor(), case.pool, clamp).unwrap();
    let g_mx = (&y_mx * &gy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    [
        flat(&y_pn),
        flat(g_pn.get(x.as_tensor()).unwrap()),
        flat(&y_mx),
        flat(g_mx.get(x.as_tensor()).unwrap()),
        flat(g_mx.get(w.as_tensor()).unwrap()),
    ]
}

fn emulated(
    harness: &Path,
    backend: Backend,
    case: &Case,
    dtype: DType,
    clamp: Option<f64>,
    dir: &Path,
) -> [Vec<f64>; 5] {
    std::fs::create_dir_all(dir).unwrap();
    write_floats(&dir.join("x.bin"), &case.x, dtype);
    write_floats(&dir.join("w.bin"), &case.w, dtype);
    write_floats(&dir.join("gy.bin"), &case.grad_y, dtype);
    let ids: Vec<u8> = case.ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(dir.join("ids.bin"), ids).unwrap();
    let dtype_name = if dtype == DType::F64 { "f64" } else { "f32" };
    let limit = clamp.map_or("inf".to_string(), |c| c.to_string());
    // The launch code's geometry; for CUDA with grid.y capped at 3 (instead of 65535) so that
    // the kernels' loop over rows runs several times.
    let max_grid_rows = match backend {
        Backend::Cuda => 3,
        Backend::Metal => u32::MAX,
    };
    let ((gx, gy), (bx, by)) = elementwise_geometry(ROWS as u32, COLS as u32, max_grid_rows);
    let pool = case.pool.packed().to_string();
    let status = Command::new(harness)
        .arg(dir)
        .args([
            dtype_name,
            &ROWS.to_string(),
            &COLS.to_string(),
            &limit,
            &pool,
        ])
        .args([gx, gy, bx, by].map(|v| v.to_string()))
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", harness.display());
    ["y_pn", "gx_pn", "y_mx", "gx_mx", "gw_mx"]
        .map(|f| read_floats(&dir.join(format!("{f}.bin")), dtype))
}

/// The first element outside the tolerance, described.
fn mismatch(emulated: &[f64], cpu: &[f64], (atol, rtol): (f64, f64)) -> Option<String> {
    if emulated.len() != cpu.len() {
        return Some(format!("lengths {} vs {}", emulated.len(), cpu.len()));
    }
    emulated
        .iter()
        .zip(cpu)
        .enumerate()
        .find_map(|(i, (a, b))| {
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs();
            (!ok).then(|| format!("[{i}]: emulated kernel {a} vs CPU kernel {b}"))
        })
}

fn assert_close(emulated: &[f64], cpu: &[f64], what: &str, tolerance: (f64, f64)) {
    if let Some(m) = mismatch(emulated, cpu, tolerance) {
        panic!("{what}{m}");
    }
}

fn check(backend: Backend, dtypes: &[DType]) {
    let harness = harness(backend);
    for &dtype in dtypes {
        for (p, pool) in pools().into_iter().enumerate() {
            for clamp in [Some(10.0), Some(1.5), None] {
                check_one(&harness, backend, dtype, (p, pool), clamp);
            }
        }
    }
}

/// One run of the five kernels against the CPU ops: `pool` is the mixture's, `p` its index in
/// [`pools`] (for the seed and the directory).
fn check_one(
    harness: &Path,
    backend: Backend,
    dtype: DType,
    (p, pool): (usize, Pool),
    clamp: Option<f64>,
) {
    let case = case(11 + p as u64, pool);
    let mut seen = case.ids.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), Activation::COUNT, "phase 2 misses a function");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("emulation-{backend:?}-{dtype:?}-pool{p}-{clamp:?}"));
    let got = emulated(harness, backend, &case, dtype, clamp, &dir);
    let want = cpu(&case, dtype, clamp);
    let base = if dtype == DType::F64 {
        (1e-12, 1e-10)
    } else {
        (1e-6, 1e-5)
    };
    let sums_rtol = if backend == Backend::Metal {
        1e-4
    } else {
        base.1
    };
    let names = [
        "per_neuron y",
        "per_neuron grad_x",
        "mixture y",
        "mixture grad_x",
    ];
    let what = |name: &str| format!("{backend:?} {dtype:?} pool {pool} clamp {clamp:?} {name}");
    for (k, name) in names.iter().enumerate() {
        assert_close(&got[k], &want[k], &what(name), base);
    }
    let grad_w_tolerance = (base.0 * ROWS as f64, sums_rtol);
    assert_close(&got[4], &want[4], &what("mixture grad_w"), grad_w_tolerance);
}

#[test]
fn cuda_kernels_emulated_on_the_cpu_match_the_cpu_kernels() {
    check(Backend::Cuda, &[DType::F32, DType::F64]);
}

#[test]
fn metal_kernels_emulated_on_the_cpu_match_the_cpu_kernels() {
    check(Backend::Metal, &[DType::F32]);
}

/// The comparison above is not vacuous: a kernel with one wrong formula is caught.
#[test]
fn a_wrong_kernel_formula_is_caught() {
    let source = include_str!("../src/kernels/mixed_act.cu");
    let broken_line = "    case 3: return x > zero ? x : T(LEAKY_RELU_SLOPE) * x;";
    assert!(
        source.contains(broken_line),
        "test out of date with mixed_act.cu"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulation-broken");
    std::fs::create_dir_all(dir.join("src/kernels")).unwrap();
    let emulation = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emulation");
    // The harness includes ../../src/kernels/mixed_act.cu relative to itself.
    let tests = dir.join("tests/emulation");
    std::fs::create_dir_all(&tests).unwrap();
    for f in ["harness.cpp", "cuda_host.h", "metal_stdlib"] {
        std::fs::copy(emulation.join(f), tests.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("src/kernels/mixed_act.cu"),
        source.replace(broken_line, "    case 3: return x > zero ? x : T(0.1) * x;"),
    )
    .unwrap();
    let bin = dir.join("harness");
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(compiler)
        .args([
            "-std=c++20",
            "-O1",
            "-w",
            "-pthread",
            "-DEMULATE_CUDA",
            "-I",
        ])
        .arg(&tests)
        .arg("-o")
        .arg(&bin)
        .arg(tests.join("harness.cpp"))
        .status()
        .unwrap();
    assert!(status.success());
    let case = case(12, Pool::paper());
    let got = emulated(
        &bin,
        Backend::Cuda,
        &case,
        DType::F32,
        Some(10.0),
        &dir.join("io"),
    );
    let want = cpu(&case, DType::F32, Some(10.0));
    assert!(
        mismatch(&got[0], &want[0], (1e-6, 1e-5)).is_some(),
        "a wrong leaky_relu slope went unnoticed"
    );
    // And only where the broken formula applies: leaky_relu neurons at negative inputs
    // (beyond rounding: at -1e-7 the two slopes give values within the tolerance).
    for (i, (a, b)) in got[0].iter().zip(&want[0]).enumerate() {
        let leaky = case.ids[i % COLS] == Activation::LeakyRelu.id() as u32;
        let differs = mismatch(&[*a], &[*b], (1e-6, 1e-5)).is_some();
        assert_eq!(differs, leaky && case.x[i] < -1e-3, "element {i}");
    }
}
