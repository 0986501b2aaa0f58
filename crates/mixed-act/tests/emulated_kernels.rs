//! The CUDA and Metal kernel sources, run on the CPU, against the Rust CPU kernels.
//!
//! No GPU is needed: `tests/emulation/harness.cpp` compiles `src/kernels/mixed_act.cu` (and,
//! separately, `mixed_act.metal`) as host C++ under small shims that play CUDA's and Metal's
//! thread model (one std::thread per GPU thread of a block, barriers, shared memory), and
//! launches each kernel with the geometry the Rust launch code uses. This checks what the
//! PTX compile cannot: indexing, the per-column ids and weights, the pool argument (its size, its
//! members' ids and their order), the clamps, the grid-stride and bounds checks, and the
//! atomics-free grad-w reduction. Phase 2 uses all eleven functions; the mixtures run with the
//! paper's pool, the full pool of eleven and a small pool out of id order; the learnable
//! activations' three kernels run PReLU, Swish-beta and PAU with a unit per neuron and PAU with
//! one unit for the layer. Every case runs for
//! one model (`[ROWS, COLS]`, grid depth 1) and for a cohort of [`MODELS`] stacked models
//! (`[MODELS, ROWS, COLS]` with ids `[MODELS, COLS]` and weights `[MODELS, COLS, K]` that differ
//! between models, grid depth MODELS) against the CPU ops on the same stacked tensors; the first
//! and the last model of the stack must also give exactly the bits of a one-model launch on
//! their slices. It does not check GPU precision or the launch code in cuda.rs / metal.rs
//! themselves (scripts/gpu-check.sh does, on a GPU).
//!
//! Needs a C++20 compiler: `$CXX`, else `c++`. Tolerances as in tests/ops.rs:
//! |emulated - cpu| <= ATOL + RTOL * |cpu|, (1e-6, 1e-5) in f32 and (1e-12, 1e-10) in f64, ATOL
//! times the rows summed for grad_w; the Metal kernels sum grad_w in f32 (Metal has no f64),
//! so there RTOL is 1e-4. The same bounds hold for the functions added after the paper's six:
//! in f32 the CUDA shim's erfcf / log1pf and the Metal source's own erfc (the fit the CPU uses,
//! with another exp) differ from the CPU's by a few parts in 1e7 where the values are not tiny.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor, Var};
use mixed_act::{
    elementwise_geometry, learnable, learnable_grads, mixture, per_neuron, Activation, Learnable,
    Pool, PAU_LEAKY_RELU_INIT, PAU_NUMERATOR,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 75;
const COLS: usize = 70;
/// The models of a cohort case.
const MODELS: usize = 3;
/// The kernels' outputs, as the harness names its files.
const OUTPUTS: [&str; 5] = ["y_pn", "gx_pn", "y_mx", "gx_mx", "gw_mx"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Cuda,
    Metal,
}

/// This crate's directory, from cargo at run time: a test binary that cargo reuses from another
/// checkout sharing the target directory would otherwise read that checkout's files.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The harness for `backend`, compiled once per test process: tests of one backend run in
/// parallel, and a second compile rewriting the binary while another test runs it fails that
/// test ("Permission denied" or "Text file busy").
fn harness(backend: Backend) -> PathBuf {
    static CUDA: OnceLock<PathBuf> = OnceLock::new();
    static METAL: OnceLock<PathBuf> = OnceLock::new();
    let compiled = match backend {
        Backend::Cuda => &CUDA,
        Backend::Metal => &METAL,
    };
    compiled.get_or_init(|| compile_harness(backend)).clone()
}

fn compile_harness(backend: Backend) -> PathBuf {
    let here = crate_dir().join("tests/emulation");
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
    /// 1: one model, x `[ROWS, COLS]`; more: a cohort, x `[models, ROWS, COLS]` and every
    /// per-neuron operand with the same leading dimension.
    models: usize,
    x: Vec<f64>,
    /// Phase 2: one global id per neuron, every function at least once (in each model).
    ids: Vec<u32>,
    /// Phase 1: the mixture's pool and weights `[COLS, K]` (per model).
    pool: Pool,
    w: Vec<f64>,
    grad_y: Vec<f64>,
}

impl Case {
    /// `dims` of one model, with the cohort's leading dimension when there is more than one.
    fn shape(&self, dims: &[usize]) -> Vec<usize> {
        let lead = (self.models > 1).then_some(self.models);
        lead.into_iter().chain(dims.iter().copied()).collect()
    }
}

/// The cases stacked into one cohort, model m being `cases[m]`.
fn stack(cases: &[Case]) -> Case {
    assert!(cases
        .iter()
        .all(|c| c.models == 1 && c.pool == cases[0].pool));
    let cat = |part: fn(&Case) -> &[f64]| cases.iter().flat_map(part).copied().collect();
    Case {
        models: cases.len(),
        x: cat(|c| &c.x),
        ids: cases.iter().flat_map(|c| &c.ids).copied().collect(),
        pool: cases[0].pool,
        w: cat(|c| &c.w),
        grad_y: cat(|c| &c.grad_y),
    }
}

/// A cohort of [`MODELS`]: model 0 is `case(seed, pool)`, the others are drawn from other seeds,
/// so that every model has its own inputs, ids and weights.
fn cohort(seed: u64, pool: Pool) -> (Case, Vec<Case>) {
    let models: Vec<Case> = (0..MODELS as u64)
        .map(|m| case(seed + 1000 * m, pool))
        .collect();
    for m in 1..MODELS {
        assert_ne!(models[m].ids, models[0].ids, "model {m} has model 0's ids");
        assert_ne!(models[m].w, models[0].w, "model {m} has model 0's weights");
    }
    (stack(&models), models)
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
        models: 1,
        x,
        ids,
        pool,
        w,
        grad_y,
    }
}

/// `(y, grad_x, grad_w)` of the CPU ops for `sum(op(x) * grad_y)`, on the stacked tensors for a
/// cohort.
fn cpu(case: &Case, dtype: DType, clamp: Option<f64>) -> [Vec<f64>; 5] {
    let dev = Device::Cpu;
    let x = Var::from_tensor(
        &Tensor::from_slice(&case.x, case.shape(&[ROWS, COLS]), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let w = Var::from_tensor(
        &Tensor::from_slice(&case.w, case.shape(&[COLS, case.pool.len()]), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let ids = Tensor::from_slice(&case.ids, case.shape(&[COLS]), &dev).unwrap();
    let gy = Tensor::from_slice(&case.grad_y, case.shape(&[ROWS, COLS]), &dev)
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
    // A cohort's grids are `models` deep (blockIdx.z / the grid position's z is the model).
    let status = Command::new(harness)
        .arg(dir)
        .args([
            dtype_name,
            &case.models.to_string(),
            &ROWS.to_string(),
            &COLS.to_string(),
            &limit,
            &pool,
        ])
        .args([gx, gy, bx, by].map(|v| v.to_string()))
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", harness.display());
    OUTPUTS.map(|f| read_floats(&dir.join(format!("{f}.bin")), dtype))
}

/// The raw bytes of the outputs the harness wrote into `dir`.
fn output_bytes(dir: &Path) -> [Vec<u8>; 5] {
    OUTPUTS.map(|f| std::fs::read(dir.join(format!("{f}.bin"))).unwrap())
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
            // Equal infinities too (PAU with a zero top coefficient overflows at 1e30).
            let ok = a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs();
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
                let single = check_one(&harness, backend, dtype, (p, pool), clamp);
                check_cohort(&harness, backend, dtype, (p, pool), clamp, &single);
            }
        }
    }
}

/// The tolerances of the element-wise outputs and of grad_w (see the top of the file).
fn tolerances(backend: Backend, dtype: DType) -> [(f64, f64); 2] {
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
    [base, (base.0 * ROWS as f64, sums_rtol)]
}

/// The five outputs of the emulated kernels against the CPU ops' (any number of models: grad_w
/// sums ROWS rows per model either way).
fn compare(got: &[Vec<f64>; 5], want: &[Vec<f64>; 5], backend: Backend, dtype: DType, label: &str) {
    let [base, grad_w_tolerance] = tolerances(backend, dtype);
    let names = [
        "per_neuron y",
        "per_neuron grad_x",
        "mixture y",
        "mixture grad_x",
    ];
    let what = |name: &str| format!("{backend:?} {dtype:?} {label} {name}");
    for (k, name) in names.iter().enumerate() {
        assert_close(&got[k], &want[k], &what(name), base);
    }
    assert_close(&got[4], &want[4], &what("mixture grad_w"), grad_w_tolerance);
}

/// One run of the five per-neuron and mixture kernels against the CPU ops: `pool` is the mixture's, `p` its index in
/// [`pools`] (for the seed and the directory). Returns the directory of the run's outputs.
fn check_one(
    harness: &Path,
    backend: Backend,
    dtype: DType,
    (p, pool): (usize, Pool),
    clamp: Option<f64>,
) -> PathBuf {
    let case = case(11 + p as u64, pool);
    let mut seen = case.ids.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), Activation::COUNT, "phase 2 misses a function");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("emulation-{backend:?}-{dtype:?}-pool{p}-{clamp:?}"));
    let got = emulated(harness, backend, &case, dtype, clamp, &dir);
    let want = cpu(&case, dtype, clamp);
    let label = format!("pool {pool} clamp {clamp:?}");
    compare(&got, &want, backend, dtype, &label);
    dir
}

/// A cohort of [`MODELS`] in one launch per kernel (grid depth MODELS) against the CPU ops on
/// the same stacked tensors; then the first and the last model of the stack against one-model
/// launches on their slices, which run the same code with another model index and must give
/// the same bits. Model 0's slice is the case [`check_one`] ran, whose outputs are in `single`.
fn check_cohort(
    harness: &Path,
    backend: Backend,
    dtype: DType,
    (p, pool): (usize, Pool),
    clamp: Option<f64>,
    single: &Path,
) {
    let (stacked, models) = cohort(11 + p as u64, pool);
    let name = format!("emulation-{backend:?}-{dtype:?}-pool{p}-{clamp:?}-cohort");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&name);
    let got = emulated(harness, backend, &stacked, dtype, clamp, &dir);
    let want = cpu(&stacked, dtype, clamp);
    let label = format!("pool {pool} clamp {clamp:?} cohort of {MODELS}");
    compare(&got, &want, backend, dtype, &label);
    let cohort_bytes = output_bytes(&dir);
    let last = MODELS - 1;
    let last_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-model{last}"));
    emulated(harness, backend, &models[last], dtype, clamp, &last_dir);
    for (m, one_model) in [(0, single), (last, last_dir.as_path())] {
        let outputs = OUTPUTS
            .iter()
            .zip(&cohort_bytes)
            .zip(output_bytes(one_model));
        for ((output, all), one) in outputs {
            assert_eq!(all.len(), MODELS * one.len(), "{label}: {output} size");
            assert!(
                all[m * one.len()..(m + 1) * one.len()] == one[..],
                "{backend:?} {dtype:?} {label}: model {m}'s {output} differs from a one-model \
                 launch on its slice"
            );
        }
    }
}

#[test]
fn cuda_kernels_emulated_on_the_cpu_match_the_cpu_kernels() {
    check(Backend::Cuda, &[DType::F32, DType::F64]);
}

#[test]
fn metal_kernels_emulated_on_the_cpu_match_the_cpu_kernels() {
    check(Backend::Metal, &[DType::F32]);
}

/// The CUDA harness built from `mixed_act.cu` with each `(from, to)` of `edits` applied (each
/// `from` must occur in the source), in `CARGO_TARGET_TMPDIR/name`.
fn broken_harness(name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut source = include_str!("../src/kernels/mixed_act.cu").to_string();
    for (from, to) in edits {
        assert!(
            source.contains(from),
            "test out of date with mixed_act.cu: no `{from}`"
        );
        source = source.replace(from, to);
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(dir.join("src/kernels")).unwrap();
    let emulation = crate_dir().join("tests/emulation");
    // The harness includes ../../src/kernels/mixed_act.cu relative to itself.
    let tests = dir.join("tests/emulation");
    std::fs::create_dir_all(&tests).unwrap();
    for f in ["harness.cpp", "cuda_host.h", "metal_stdlib"] {
        std::fs::copy(emulation.join(f), tests.join(f)).unwrap();
    }
    std::fs::write(dir.join("src/kernels/mixed_act.cu"), source).unwrap();
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
    bin
}

/// The comparison above is not vacuous: a kernel with one wrong formula is caught.
#[test]
fn a_wrong_kernel_formula_is_caught() {
    let bin = broken_harness(
        "emulation-broken",
        &[(
            "    case 3: return x > zero ? x : T(LEAKY_RELU_SLOPE) * x;",
            "    case 3: return x > zero ? x : T(0.1) * x;",
        )],
    );
    let case = case(12, Pool::paper());
    let dir = bin.with_file_name("io");
    let got = emulated(&bin, Backend::Cuda, &case, DType::F32, Some(10.0), &dir);
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

/// Nor is the cohort comparison: element-wise kernels that give every model of a cohort model 0's
/// ids and weights (the per-neuron operands' model offset forgotten) are right on model 0 and
/// caught on the others.
#[test]
fn a_kernel_that_gives_every_model_model_0s_ids_and_weights_is_caught() {
    let bin = broken_harness(
        "emulation-broken-cohort",
        &[
            ("ids[m * cols + c]", "ids[c]"),
            (
                "w + (m * cols + c) * pool_size(pool)",
                "w + c * pool_size(pool)",
            ),
        ],
    );
    let (stacked, _) = cohort(12, Pool::paper());
    let dir = bin.with_file_name("io");
    let got = emulated(&bin, Backend::Cuda, &stacked, DType::F32, Some(10.0), &dir);
    let want = cpu(&stacked, DType::F32, Some(10.0));
    let model = ROWS * COLS;
    // The element-wise outputs (grad_w's kernel keeps its offsets here).
    for (k, output) in OUTPUTS.iter().enumerate().take(4) {
        let (got_0, want_0) = (&got[k][..model], &want[k][..model]);
        assert!(
            mismatch(got_0, want_0, (1e-6, 1e-5)).is_none(),
            "{output}: model 0 should still be right"
        );
        assert!(
            mismatch(&got[k][model..], &want[k][model..], (1e-6, 1e-5)).is_some(),
            "{output}: model 0's ids / weights on the other models went unnoticed"
        );
    }
}

// ---- the learnable activations' kernels ----------------------------------------------------

/// The learnable cases: each kind with a unit per neuron, and PAU with one unit for the layer.
fn learnable_kinds() -> [(Learnable, bool); 4] {
    [
        (Learnable::Prelu, false),
        (Learnable::SwishBeta, false),
        (Learnable::Pau, false),
        (Learnable::Pau, true),
    ]
}

/// One model's learnable case: x as [`inputs`], and parameters around each kind's initial
/// value, some exactly 0 (PReLU's slope, PAU's denominator coefficients, whose sign there is
/// taken as +1). A unit per neuron also meets the far tails (±1e30) and NaN; a shared unit
/// does not, since one NaN or 1e30 term would fill every sum of its gradient.
struct LearnableCase {
    x: Vec<f64>,
    params: Vec<f64>,
    grad_y: Vec<f64>,
}

fn learnable_case(seed: u64, kind: Learnable, units: usize) -> LearnableCase {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = inputs(&mut rng, 4.0);
    if units > 1 {
        for (i, v) in [1e30, -1e30, f64::NAN].into_iter().enumerate() {
            x[COLS + 7 * i] = v;
        }
    }
    let grad_y = (0..ROWS * COLS)
        .map(|_| rng.random::<f64>() - 0.5)
        .collect();
    let k = kind.params();
    let params = (0..units * k)
        .map(|i| {
            let zero = rng.random_range(0..8) == 0;
            match kind {
                Learnable::Prelu if zero => 0.0,
                Learnable::Prelu => rng.random::<f64>() * 1.5 - 0.5,
                Learnable::SwishBeta => 0.2 + rng.random::<f64>() * 1.8,
                Learnable::Pau if zero && i % k >= PAU_NUMERATOR => 0.0,
                Learnable::Pau => PAU_LEAKY_RELU_INIT[i % k] * (0.5 + rng.random::<f64>()),
            }
        })
        .collect();
    LearnableCase { x, params, grad_y }
}

/// `(y, grad_x, grad_params)` of the CPU op on `models` stacked cases (`[models, ROWS, COLS]`,
/// params `[models, units, P]`).
fn learnable_cpu(
    case: &LearnableCase,
    kind: Learnable,
    models: usize,
    dtype: DType,
) -> [Vec<f64>; 3] {
    let dev = Device::Cpu;
    let tensor = |v: &[f64], dims: &[usize]| {
        Tensor::from_slice(v, dims, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    let units = case.params.len() / models / kind.params();
    let x = tensor(&case.x, &[models, ROWS, COLS]);
    let p = tensor(&case.params, &[models, units, kind.params()]);
    let g = tensor(&case.grad_y, &[models, ROWS, COLS]);
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let y = learnable(kind, &x, &p).unwrap();
    let (gx, gp) = learnable_grads(kind, &x, &p, &g).unwrap();
    [flat(&y), flat(&gx), flat(&gp)]
}

/// The emulated kernels' `(y, grad_x, grad_params)`, a shared unit's per-column sums added in
/// column order.
fn learnable_emulated(
    harness: &Path,
    case: &LearnableCase,
    (kind, units, models): (Learnable, usize, usize),
    (backend, dtype): (Backend, DType),
    dir: &Path,
) -> [Vec<f64>; 3] {
    std::fs::create_dir_all(dir).unwrap();
    write_floats(&dir.join("x.bin"), &case.x, dtype);
    write_floats(&dir.join("params.bin"), &case.params, dtype);
    write_floats(&dir.join("gy.bin"), &case.grad_y, dtype);
    let max_grid_rows = if backend == Backend::Cuda {
        3
    } else {
        u32::MAX
    };
    let ((gx, gy), (bx, by)) = elementwise_geometry(ROWS as u32, COLS as u32, max_grid_rows);
    let dtype_name = if dtype == DType::F64 { "f64" } else { "f32" };
    let status = Command::new(harness)
        .arg("learnable")
        .arg(dir)
        .arg(dtype_name)
        .args([models, ROWS, COLS, kind.id() as usize, units].map(|v| v.to_string()))
        .args([gx, gy, bx, by].map(|v| v.to_string()))
        .status()
        .unwrap();
    assert!(status.success(), "{} learnable failed", harness.display());
    let read = |name: &str| read_floats(&dir.join(format!("{name}.bin")), dtype);
    let per_column = read("gp_ln");
    let k = kind.params();
    let grad_p = if units == 1 {
        (0..models * k)
            .map(|i| {
                let (m, j) = (i / k, i % k);
                (0..COLS).map(|c| per_column[(m * COLS + c) * k + j]).sum()
            })
            .collect()
    } else {
        per_column
    };
    [read("y_ln"), read("gx_ln"), grad_p]
}

fn check_learnable(backend: Backend, dtypes: &[DType]) {
    let harness = harness(backend);
    for &dtype in dtypes {
        let [base, sums] = tolerances(backend, dtype);
        for (kind, shared) in learnable_kinds() {
            let units = if shared { 1 } else { COLS };
            for models in [1, MODELS] {
                let cases: Vec<LearnableCase> = (0..models as u64)
                    .map(|m| learnable_case(40 + 1000 * m + kind.id() as u64, kind, units))
                    .collect();
                let cat = |part: fn(&LearnableCase) -> &Vec<f64>| {
                    cases.iter().flat_map(part).copied().collect::<Vec<f64>>()
                };
                let stacked = LearnableCase {
                    x: cat(|c| &c.x),
                    params: cat(|c| &c.params),
                    grad_y: cat(|c| &c.grad_y),
                };
                let label = format!("{backend:?} {dtype:?} {kind:?} units {units} models {models}");
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                    "emulation-learnable-{backend:?}-{dtype:?}-{kind:?}-{units}-{models}"
                ));
                let got = learnable_emulated(
                    &harness,
                    &stacked,
                    (kind, units, models),
                    (backend, dtype),
                    &dir,
                );
                let want = learnable_cpu(&stacked, kind, models, dtype);
                assert_close(&got[0], &want[0], &format!("{label} y"), base);
                assert_close(&got[1], &want[1], &format!("{label} grad_x"), base);
                if kind == Learnable::Prelu {
                    // A zero slope gives relu's +0 at a negative input, not -0 (the tolerance
                    // above cannot tell the two apart).
                    let mut met = 0;
                    for (i, (&x, &y)) in stacked.x.iter().zip(&got[0]).enumerate() {
                        let (m, c) = (i / (ROWS * COLS), i % COLS);
                        let slope = stacked.params[m * units + if units == 1 { 0 } else { c }];
                        if x < 0.0 && slope == 0.0 {
                            assert!(
                                y == 0.0 && y.is_sign_positive(),
                                "{label} y[{i}]: {y} at x = {x} with a zero slope"
                            );
                            met += 1;
                        }
                    }
                    assert!(met > 0, "{label}: no zero slope met a negative input");
                }
                // A shared unit sums ROWS x COLS terms, a unit per neuron ROWS.
                let terms = if shared { ROWS * COLS } else { ROWS } as f64;
                assert_close(
                    &got[2],
                    &want[2],
                    &format!("{label} grad_params"),
                    (base.0 * terms, sums.1),
                );
            }
        }
    }
}

#[test]
fn cuda_learnable_kernels_emulated_on_the_cpu_match_the_cpu_kernels() {
    check_learnable(Backend::Cuda, &[DType::F32, DType::F64]);
}

#[test]
fn metal_learnable_kernels_emulated_on_the_cpu_match_the_cpu_kernels() {
    check_learnable(Backend::Metal, &[DType::F32]);
}

/// The learnable comparison is not vacuous either: kernels that give every column of a
/// per-neuron layer the first neuron's parameter are caught, in every output.
#[test]
fn a_learnable_kernel_that_reads_one_unit_for_every_neuron_is_caught() {
    let bin = broken_harness(
        "emulation-broken-learnable",
        &[("(units == 1 ? 0 : c)", "0")],
    );
    // Swish-beta: its parameter gradient depends on beta (PReLU's, sum g x over x < 0, does
    // not depend on the slope).
    let kind = Learnable::SwishBeta;
    let case = learnable_case(41, kind, COLS);
    let dir = bin.with_file_name("io-learnable");
    let got = learnable_emulated(
        &bin,
        &case,
        (kind, COLS, 1),
        (Backend::Cuda, DType::F32),
        &dir,
    );
    let want = learnable_cpu(&case, kind, 1, DType::F32);
    for (k, output) in ["y", "grad_x", "grad_params"].iter().enumerate() {
        assert!(
            mismatch(&got[k], &want[k], (1e-5 * ROWS as f64, 1e-4)).is_some(),
            "{output}: neuron 0's beta on every neuron went unnoticed"
        );
    }
}
