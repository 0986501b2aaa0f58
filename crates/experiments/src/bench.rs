//! `smartmixed bench ops|train|cohort`: timings measured in one process, interleaved so that the
//! machine's drift hits every variant alike, reported as p20/p50/p80 and as ratios.

use std::fs::OpenOptions;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use mixed_act::{
    gumbel::one_hot_argmax, learnable, learnable_slow, mixture, mixture_slow, per_neuron,
    per_neuron_slow, Activation, Learnable, Pool, PAU_LEAKY_RELU_INIT,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::run::config::{LossKind, Method, PoolSetting, Settings, TrainConfig};
use crate::run::data::{CLASSES, IMAGE_PIXELS};
use crate::run::hidden::Pass;
use crate::run::net::{LayerSpec, Planned};
use crate::run::optim::{Adam, AdamConfig};
use crate::run::products;
use crate::run::stack::{Network, Stack};
use crate::run::step::{clip_scales, step, Learner};
use crate::run::train::{initial_network, Streams};

/// One row of the benchmark CSV (columns other tools read).
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub bench: String,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub pass: String,
    pub rows: usize,
    pub cols: usize,
    pub dtype: String,
    pub device: String,
    pub threads: usize,
    pub p20_us: f64,
    pub p50_us: f64,
    pub p80_us: f64,
    pub gbps: f64,
    pub git: String,
    pub timestamp: String,
    /// Floating-point operations per second at the p50 (0 where not counted): products only.
    pub gflops: f64,
    /// The CPU's matrix-product kernel family (`avx512`, `avx2-fma`, ...), or the GPU back end.
    pub kernels: String,
}

/// The CSV's columns, in order (older files lack the last two: [`append_csv`] extends them).
const COLUMNS: [&str; 16] = [
    "bench",
    "impl",
    "pass",
    "rows",
    "cols",
    "dtype",
    "device",
    "threads",
    "p20_us",
    "p50_us",
    "p80_us",
    "gbps",
    "git",
    "timestamp",
    "gflops",
    "kernels",
];

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

/// A timed case: a name, a pass, the bytes it must move at least once and the floating-point
/// operations it does (0: not counted), and how many calls one timing covers (its times are
/// per call).
struct Case<'a> {
    name: &'static str,
    pass: &'static str,
    bytes: f64,
    flops: f64,
    calls: usize,
    run: Box<dyn Fn() -> candle_core::Result<()> + 'a>,
}

impl<'a> Case<'a> {
    /// A case whose bytes are not counted: its GB/s reads 0.
    fn without_bytes(
        name: &'static str,
        pass: &'static str,
        run: impl Fn() -> candle_core::Result<()> + 'a,
    ) -> Case<'a> {
        Case {
            name,
            pass,
            bytes: 0.0,
            flops: 0.0,
            calls: 1,
            run: Box::new(run),
        }
    }

    /// Matrix products of `flops` operations per call, `calls` of them back to back per timing.
    fn products(
        name: &'static str,
        pass: &'static str,
        flops: f64,
        calls: usize,
        run: impl Fn() -> candle_core::Result<()> + 'a,
    ) -> Case<'a> {
        Case {
            flops,
            calls,
            run: Box::new(move || (0..calls).try_for_each(|_| run())),
            ..Case::without_bytes(name, pass, || Ok(()))
        }
    }
}

/// Runs every case `repeats` times, round-robin after `warmup` rounds; returns sorted µs.
/// GPU work is asynchronous: the device is synchronised before the clock starts and stops.
fn measure(
    cases: &[Case],
    warmup: usize,
    repeats: usize,
    device: &Device,
) -> Result<Vec<Vec<f64>>> {
    let mut times = vec![Vec::with_capacity(repeats); cases.len()];
    for round in 0..warmup + repeats {
        for (i, case) in cases.iter().enumerate() {
            device.synchronize()?;
            let start = Instant::now();
            (case.run)().with_context(|| format!("bench case {} {}", case.name, case.pass))?;
            device.synchronize()?;
            if round >= warmup {
                times[i].push(start.elapsed().as_secs_f64() * 1e6 / case.calls as f64);
            }
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    Ok(times)
}

fn rows_of(
    bench: &str,
    cases: &[Case],
    times: &[Vec<f64>],
    shape: (usize, usize),
    device_name: &str,
) -> Vec<BenchRow> {
    let git = crate::git_commit().unwrap_or_default();
    let timestamp = crate::grid::sweep::timestamp();
    let kernels = match device_name {
        "cpu" => crate::device::matmul_kernels().to_string(),
        gpu => gpu.to_string(),
    };
    cases
        .iter()
        .zip(times)
        .map(|(case, t)| {
            let p50 = quantile(t, 0.5);
            BenchRow {
                bench: bench.into(),
                implementation: case.name.into(),
                pass: case.pass.into(),
                rows: shape.0,
                cols: shape.1,
                dtype: "f32".into(),
                device: device_name.into(),
                threads: rayon::current_num_threads(),
                p20_us: quantile(t, 0.2),
                p50_us: p50,
                p80_us: quantile(t, 0.8),
                gbps: if case.bytes > 0.0 {
                    case.bytes / (p50 * 1e-6) / 1e9
                } else {
                    0.0
                },
                git: git.clone(),
                timestamp: timestamp.clone(),
                gflops: case.flops / (p50 * 1e-6) / 1e9,
                kernels: kernels.clone(),
            }
        })
        .collect()
}

/// Appends rows to `path`, writing the header only when the file is new or empty. A file of
/// the older 14 columns (before `gflops` and `kernels`) is rewritten once with the two columns
/// added, empty in its old rows; a file with other columns is an input error.
pub fn append_csv(path: &Path, rows: &[BenchRow]) -> Result<()> {
    let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if !fresh {
        extend_old_columns(path)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut writer = csv::WriterBuilder::new()
        .has_headers(fresh)
        .from_writer(file);
    for row in rows {
        writer.serialize(row)?;
    }
    writer
        .flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Brings an existing benchmark CSV to [`COLUMNS`] (see [`append_csv`]).
fn extend_old_columns(path: &Path) -> Result<()> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("reading {}", path.display()))?
        .iter()
        .map(String::from)
        .collect();
    if header == COLUMNS {
        return Ok(());
    }
    if header != COLUMNS[..14] {
        crate::bail_input!(
            "{}: not a benchmark CSV of this tool (its columns are {}; expected {})",
            path.display(),
            header.join(","),
            COLUMNS.join(",")
        );
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        writer.write_record(record.iter().chain(["", ""]))?;
    }
    let text = writer.into_inner().context("formatting the CSV")?;
    crate::run::files::write_atomic(path, &text)
}

fn p50(rows: &[BenchRow], name: &str, pass: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.implementation == name && r.pass == pass)
        .map(|r| r.p50_us)
}

fn print_table(title: &str, rows: &[BenchRow], floor: &str) {
    println!("\n{title}");
    println!(
        "{:<20} {:<9}{:>11}{:>11}{:>11}{:>9}{:>9}{:>10}",
        "impl", "pass", "p20 us", "p50 us", "p80 us", "GB/s", "GF/s", "x floor"
    );
    for r in rows {
        let ratio =
            p50(rows, floor, &r.pass).map_or(String::from("-"), |f| format!("{:.2}", r.p50_us / f));
        println!(
            "{:<20} {:<9}{:>11.0}{:>11.0}{:>11.0}{:>9.1}{:>9.1}{:>10}",
            r.implementation, r.pass, r.p20_us, r.p50_us, r.p80_us, r.gbps, r.gflops, ratio
        );
    }
}

/// Parses `128x512,1024x1024`.
pub fn parse_shapes(s: &str) -> Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|part| {
            let (r, c) = part.trim().split_once('x').ok_or_else(|| {
                crate::error::input_error(format!("--shapes: '{part}' is not ROWSxCOLS"))
            })?;
            match (r.parse::<usize>(), c.parse::<usize>()) {
                (Ok(r), Ok(c)) if r > 0 && c > 0 => Ok((r, c)),
                _ => Err(crate::error::input_error(format!(
                    "--shapes: '{part}' is not ROWSxCOLS with positive numbers"
                ))),
            }
        })
        .collect()
}

/// The reference's way: each function's neurons gathered, activated and scattered back.
fn grouped(x: &Tensor, groups: &[(Activation, Tensor)]) -> candle_core::Result<Tensor> {
    let mut y = x.zeros_like()?;
    for (act, index) in groups {
        let part = mixed_act::activation_slow(*act, &x.index_select(index, 1)?)?;
        y = y.index_add(index, &part, 1)?;
    }
    Ok(y)
}

type OpFn<'a> = Box<dyn Fn() -> candle_core::Result<Tensor> + 'a>;

/// A forward (`fwd`: read x, write y) or forward+backward case (`fwd_bwd`: also read x and the
/// incoming gradient and write grad_x) of an op on `elem_bytes` bytes of input.
fn op_case<'a>(name: &'static str, backward: bool, elem_bytes: f64, f: OpFn<'a>) -> Case<'a> {
    if backward {
        Case {
            name,
            pass: "fwd_bwd",
            bytes: 5.0 * elem_bytes,
            flops: 0.0,
            calls: 1,
            run: Box::new(move || f()?.backward().map(drop)),
        }
    } else {
        Case {
            name,
            pass: "fwd",
            bytes: 2.0 * elem_bytes,
            flops: 0.0,
            calls: 1,
            run: Box::new(move || f().map(drop)),
        }
    }
}

/// The inputs of `bench ops` at one shape, drawn from a fixed seed.
struct OpInputs {
    x: Var,
    /// Functions drawn evenly from the paper's six, in random order, by id and as functions.
    ids: Tensor,
    acts: Vec<Activation>,
    /// The same from every candidate.
    ids_all: Tensor,
    /// One function on every neuron, for each of the later candidates.
    uniform_ids: Vec<(&'static str, Tensor)>,
    /// The paper's six functions' neurons, by function.
    groups: Vec<(Activation, Tensor)>,
    /// One-hot weights over the paper's six and over every candidate.
    weights: Var,
    weights_all: Var,
    /// Parameters of the learnable activations at their initial values, with a leading model
    /// dimension of one: per neuron `[1, N, P]`, and PAU's one unit per layer `[1, 1, 10]`.
    learnable: Vec<(&'static str, Learnable, Var)>,
}

impl OpInputs {
    fn random(rows: usize, cols: usize, dev: &Device) -> Result<OpInputs> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random::<f32>() * 6.0 - 3.0)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(x, (rows, cols), dev)?)?;
        let mut shuffled_ids = |k: usize| -> Vec<u32> {
            let mut ids: Vec<u32> = (0..cols).map(|n| (n % k) as u32).collect();
            for i in (1..cols).rev() {
                ids.swap(i, rng.random_range(0..=i));
            }
            ids
        };
        let ids = shuffled_ids(Activation::PAPER.len());
        let ids_all = Tensor::new(shuffled_ids(Activation::COUNT), dev)?;
        let acts: Vec<Activation> = ids.iter().map(|&i| Activation::ALL[i as usize]).collect();
        let later = &Activation::ALL[Activation::PAPER.len()..Activation::COUNT - 1];
        let uniform_ids = later
            .iter()
            .map(|&a| {
                let name: &'static str = match a {
                    Activation::Gelu => "fused-gelu",
                    Activation::Silu => "fused-silu",
                    Activation::Mish => "fused-mish",
                    _ => "fused-softplus",
                };
                Ok((name, Tensor::new(vec![a.id() as u32; cols], dev)?))
            })
            .collect::<candle_core::Result<_>>()?;
        let groups = Activation::ALL
            .iter()
            .filter_map(|&a| {
                let idx: Vec<u32> = (0..cols as u32)
                    .filter(|&n| acts[n as usize] == a)
                    .collect();
                (!idx.is_empty()).then(|| Tensor::new(idx, dev).map(|t| (a, t)))
            })
            .collect::<candle_core::Result<_>>()?;
        let mut one_hot = |k: usize| -> candle_core::Result<Var> {
            let logits: Vec<f32> = (0..cols * k).map(|_| rng.random()).collect();
            Var::from_tensor(&one_hot_argmax(&Tensor::from_vec(logits, (cols, k), dev)?)?)
        };
        let (weights, weights_all) = (one_hot(6)?, one_hot(Activation::COUNT)?);
        let params = |kind: Learnable, units: usize| -> candle_core::Result<Var> {
            let unit: Vec<f32> = match kind {
                Learnable::Prelu => vec![0.25],
                Learnable::SwishBeta => vec![1.0],
                Learnable::Pau => PAU_LEAKY_RELU_INIT.map(|v| v as f32).to_vec(),
            };
            let values = unit.repeat(units);
            Var::from_tensor(&Tensor::from_vec(values, (1, units, kind.params()), dev)?)
        };
        let learnable = vec![
            ("prelu", Learnable::Prelu, params(Learnable::Prelu, cols)?),
            (
                "swish_beta",
                Learnable::SwishBeta,
                params(Learnable::SwishBeta, cols)?,
            ),
            ("pau", Learnable::Pau, params(Learnable::Pau, 1)?),
            ("pau_neuron", Learnable::Pau, params(Learnable::Pau, cols)?),
        ];
        Ok(OpInputs {
            x,
            ids: Tensor::new(ids, dev)?,
            acts,
            ids_all,
            uniform_ids,
            groups,
            weights,
            weights_all,
            learnable,
        })
    }

    /// The ops `bench ops` times, in table order.
    fn ops(&self) -> Vec<(&'static str, OpFn<'_>)> {
        let x = self.x.as_tensor();
        let (w, w_all) = (self.weights.as_tensor(), self.weights_all.as_tensor());
        let (paper, every) = (Pool::paper(), Pool::all());
        let mut ops = vec![
            named("fused", move || per_neuron(x, &self.ids)),
            named("uniform-relu", move || x.relu()),
            named("uniform-elu", move || x.elu(1.0)),
            named("uniform-tanh", move || x.tanh()),
            named("fused-all", move || per_neuron(x, &self.ids_all)),
        ];
        for (name, ids) in &self.uniform_ids {
            ops.push(named(name, move || per_neuron(x, ids)));
        }
        ops.extend([
            named("uniform-gelu", move || x.gelu_erf()),
            named("uniform-silu", move || x.silu()),
            named("grouped", move || grouped(x, &self.groups)),
            named("masked", move || per_neuron_slow(x, &self.acts)),
            named("mixture-fused", move || mixture(x, w, paper, Some(10.0))),
            named("mixture-naive", move || {
                mixture_slow(x, w, paper, Some(10.0))
            }),
            named("mixture-fused-all", move || {
                mixture(x, w_all, every, Some(10.0))
            }),
        ]);
        // The learnable activations: the fused op against its candle composition (which GPUs
        // run), on x as one model's `[1, B, N]`.
        for (name, kind, p) in &self.learnable {
            let (kind, p) = (*kind, p.as_tensor());
            let names = learnable_names(name);
            ops.push(named(names.0, move || learnable(kind, &x.unsqueeze(0)?, p)));
            ops.push(named(names.1, move || {
                learnable_slow(kind, &x.unsqueeze(0)?, p)
            }));
        }
        ops
    }
}

/// The row names of a learnable activation's fused op and candle composition.
fn learnable_names(name: &str) -> (&'static str, &'static str) {
    match name {
        "prelu" => ("prelu-fused", "prelu-candle"),
        "swish_beta" => ("swish_beta-fused", "swish_beta-candle"),
        "pau" => ("pau-fused", "pau-candle"),
        _ => ("pau_neuron-fused", "pau_neuron-candle"),
    }
}

/// An op with the name its rows carry.
fn named<'a>(
    name: &'static str,
    op: impl Fn() -> candle_core::Result<Tensor> + 'a,
) -> (&'static str, OpFn<'a>) {
    (name, Box::new(op))
}

/// `smartmixed bench ops`.
pub fn bench_ops(
    shapes: &[(usize, usize)],
    repeats: usize,
    csv: Option<&Path>,
    (dev, device_name): &(Device, String),
) -> Result<Vec<BenchRow>> {
    let mut all = Vec::new();
    for &(rows, cols) in shapes {
        let inputs = OpInputs::random(rows, cols, dev)?;
        let elems = (rows * cols * 4) as f64;
        let mut cases: Vec<Case> = [false, true]
            .into_iter()
            .flat_map(|backward| {
                let ops = inputs.ops().into_iter();
                ops.map(move |(name, op)| op_case(name, backward, elems, op))
            })
            .collect();
        let x = inputs.x.as_tensor();
        cases.push(Case {
            name: "copy",
            pass: "fwd",
            bytes: 2.0 * elems,
            flops: 0.0,
            calls: 1,
            run: Box::new(move || x.copy().map(drop)),
        });
        let times = measure(&cases, 2, repeats, dev)?;
        let rows_out = rows_of("ops", &cases, &times, (rows, cols), device_name);
        print_ops_table(&rows_out, (rows, cols), repeats, device_name);
        all.extend(rows_out);
    }
    if let Some(path) = csv {
        append_csv(path, &all)?;
    }
    Ok(all)
}

/// One shape's table, and how much faster the fused ops are than the ways they replace.
fn print_ops_table(rows: &[BenchRow], (r, c): (usize, usize), repeats: usize, device_name: &str) {
    print_table(
        &format!(
            "[{r}, {c}] f32 on {device_name}, {repeats} interleaved repeats, {} threads",
            rayon::current_num_threads()
        ),
        rows,
        "uniform-relu",
    );
    let ratio = |a: &str, b: &str, pass: &str| match (p50(rows, a, pass), p50(rows, b, pass)) {
        (Some(x), Some(y)) => format!("{:.2}x", y / x),
        _ => "-".into(),
    };
    println!(
        "fused fwd_bwd is {} faster than grouped and {} faster than masked; mixture-fused fwd_bwd is {} faster than mixture-naive",
        ratio("fused", "grouped", "fwd_bwd"),
        ratio("fused", "masked", "fwd_bwd"),
        ratio("mixture-fused", "mixture-naive", "fwd_bwd")
    );
}

/// `smartmixed bench train`: one optimizer step at batch 128 on random data of the network's
/// input shape, and the forward pass of the network each method leaves (pass `infer`). The
/// network: `network`'s widths (an MLP on 784 pixels) or its named net on its data set's shape
/// (then also a `candle-conv` row: the same ReLU net through candle's own convolutions,
/// pooling and autograd, with candle-nn's AdamW). The SmartMixed models select from `pool`;
/// their rows are `phase1` / `phase2` for the paper's pool, else `phase1 pool=...` /
/// `phase2 pool=...`.
pub fn bench_train(
    network: &Settings,
    pool: Pool,
    methods: &[Method],
    batches: usize,
    csv: Option<&Path>,
    (device, device_name): &(Device, String),
) -> Result<Vec<BenchRow>> {
    let batch = 128;
    let cfg = TrainConfig::resolve(None, None, network)?;
    let plan = cfg.plan()?;
    let label = match cfg.net {
        Some(net) => format!("net {net} on {}", cfg.dataset.name()),
        None => format!("widths {:?}", cfg.widths),
    };
    let ([relu, phase1, phase2, optimizer], others) =
        train_steppers(network, &plan, pool, methods, batch, device)?;
    let floor = MatmulFloor::new(&plan, batch, device)?;
    let candle_conv = match cfg.net {
        Some(_) => Some(CandleConv::new(&plan, &relu.x, &relu.y)?),
        None => None,
    };
    let (phase1_name, phase2_name) = phase_names(pool);
    let grads = optimizer.random_gradients()?;
    let (relu, phase1, phase2, floor) = (&relu, &phase1, &phase2, &floor);
    let (optimizer, grads) = (&optimizer, &grads);
    let mut cases = vec![
        Case::without_bytes("relu", "step", move || relu.step()),
        // The part of the ReLU step that is the optimizer: gradient clipping and Adam, on a copy
        // of the ReLU network (so that the random gradients leave the timed ReLU steps alone).
        Case::without_bytes("optimizer", "step", move || optimizer.optimizer_step(grads)),
        Case::without_bytes(phase1_name, "step", move || phase1.step()),
        Case::without_bytes(phase2_name, "step", move || phase2.step()),
        Case::products("matmul-floor", "step", floor.step_flops(), 1, move || {
            floor.run()
        }),
    ];
    // What each network costs once trained: the forward pass of what a run leaves, as
    // evaluation runs it. SmartMixed and the frozen soft mixture leave phase 2's kind of network
    // (the `phase2` row: its functions drawn evenly over the neurons, not a trained mix).
    cases.push(Case::without_bytes("relu", "infer", move || relu.infer()));
    cases.push(Case::without_bytes(phase2_name, "infer", move || {
        phase2.infer()
    }));
    cases.push(Case::products(
        "matmul-floor",
        "infer",
        floor.step_flops() / 3.0,
        1,
        move || floor.forward(),
    ));
    for (method, stepper) in &others {
        cases.push(Case::without_bytes(method.name(), "step", move || {
            stepper.step()
        }));
        if !method.leaves_plain_mlp() {
            cases.push(Case::without_bytes(method.name(), "infer", move || {
                stepper.infer()
            }));
        }
    }
    if let Some(candle_conv) = &candle_conv {
        cases.push(Case::without_bytes("candle-conv", "step", move || {
            candle_conv.step()
        }));
    }
    // Each product of the floor alone, repeated back to back.
    cases.extend(floor.alone_cases(4));
    let times = measure(&cases, 5, batches, device)?;
    let first_units = cfg.widths[0];
    let rows = rows_of("train", &cases, &times, (batch, first_units), device_name);
    print_table(
        &format!(
            "training step on {device_name}, {label}, batch {batch}, {batches} interleaved steps each"
        ),
        &rows,
        "matmul-floor",
    );
    print_train_ratios(&rows, methods, (phase1_name, phase2_name));
    if let Some(path) = csv {
        append_csv(path, &rows)?;
    }
    Ok(rows)
}

/// The ratios `bench train` reports, from its rows.
fn print_train_ratios(
    rows: &[BenchRow],
    methods: &[Method],
    (phase1_name, phase2_name): (&str, &str),
) {
    let r = |a: &str, b: &str, pass: &str| {
        p50(rows, a, pass)
            .zip(p50(rows, b, pass))
            .map_or("-".into(), |(x, y)| format!("{:.2}", x / y))
    };
    println!(
        "relu / matmul-floor {}; optimizer / relu {}; {phase2_name} / relu {}; {phase1_name} / relu {}",
        r("relu", "matmul-floor", "step"),
        r("optimizer", "relu", "step"),
        r(phase2_name, "relu", "step"),
        r(phase1_name, "relu", "step")
    );
    if p50(rows, "candle-conv", "step").is_some() {
        println!(
            "candle-conv / relu {} (candle's own convolutions and autograd over this crate's step)",
            r("candle-conv", "relu", "step")
        );
    }
    print_products(rows);
    for method in methods {
        println!(
            "{} / relu {}",
            method.name(),
            r(method.name(), "relu", "step")
        );
    }
    let mut inference = vec![format!("{phase2_name} {}", r(phase2_name, "relu", "infer"))];
    for method in methods.iter().filter(|m| !m.leaves_plain_mlp()) {
        inference.push(format!(
            "{} {}",
            method.name(),
            r(method.name(), "relu", "infer")
        ));
    }
    println!("inference (forward) / relu: {}", inference.join("; "));
}

/// The products' speed: each alone, all of them alone added up, and inside the floor.
fn print_products(rows: &[BenchRow]) {
    let alone: Vec<&BenchRow> = rows.iter().filter(|r| r.pass == "alone").collect();
    let Some(floor) = rows
        .iter()
        .find(|r| r.implementation == "matmul-floor" && r.pass == "step")
    else {
        return;
    };
    let kernels = &floor.kernels;
    let each: Vec<String> = alone
        .iter()
        .map(|r| format!("{} {:.0}", r.implementation, r.gflops))
        .collect();
    println!(
        "products alone, GF/s ({kernels} kernels): {}",
        each.join("; ")
    );
    let alone_us: f64 = alone.iter().map(|r| r.p50_us).sum();
    if alone_us > 0.0 {
        let alone_gflops = floor.gflops * floor.p50_us / alone_us;
        println!(
            "matmul-floor {:.1} GF/s; its products one at a time {:.1} GF/s; floor / alone {:.0} %",
            floor.gflops,
            alone_gflops,
            100.0 * floor.gflops / alone_gflops
        );
    }
}

/// The steps `bench train` times, as training runs them (a stack of one, `run::stack`, with
/// the default preset's loss and clip), on one random batch: a ReLU network, one SmartMixed
/// network in phase 1 and in phase 2, and a second ReLU network for the optimizer row.
/// relu, SmartMixed's phase 1 and phase 2, and each adaptive method asked for.
type Steppers = ([CohortRun; 4], Vec<(Method, CohortRun)>);

fn train_steppers(
    network: &Settings,
    plan: &[Planned],
    pool: Pool,
    methods: &[Method],
    batch: usize,
    dev: &Device,
) -> Result<Steppers> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let features = plan[0].input.features();
    let x: Vec<f32> = (0..batch * features).map(|_| rng.random()).collect();
    let x = Tensor::from_vec(x, (1, batch, features), dev)?;
    let y: Vec<u32> = (0..batch)
        .map(|_| rng.random_range(0..CLASSES as u32))
        .collect();
    let y = Tensor::from_vec(y, (1, batch), dev)?;
    let mut network = |method: Method| -> Result<Network> {
        let flags = Settings {
            method: Some(method),
            pool: Some(PoolSetting(pool)),
            ..network.clone()
        };
        initial_network(&TrainConfig::resolve(None, None, &flags)?, &mut rng, dev)
    };
    let relu = network(Method::Baseline(Activation::Relu))?;
    let phase1 = network(Method::SmartMixed)?;
    let others = methods
        .iter()
        .map(|&m| Ok((m, CohortRun::new(vec![network(m)?], x.clone(), y.clone())?)))
        .collect::<Result<_>>()?;
    let steppers = [
        CohortRun::new(vec![relu.clone()], x.clone(), y.clone())?,
        CohortRun::new(vec![phase1.clone()], x.clone(), y.clone())?,
        CohortRun::new(vec![phase1], x.clone(), y.clone())?,
        // The optimizer row's own copy of the ReLU network.
        CohortRun::new(vec![relu], x, y)?,
    ];
    steppers[2].stack.borrow_mut().end_phase(0, None)?;
    Ok((steppers, others))
}

/// The matrix products of a training step alone (forward, grad-input and grad-weight per
/// layer), as the step runs them ([`crate::run::products`]): the floor a step's time is
/// measured against.
struct MatmulFloor {
    /// Per layer: input `[1, rows, in]`, weight `[1, out, in]` and output gradient
    /// `[1, rows, out]`.
    layers: Vec<(Tensor, Tensor, Tensor)>,
    batch: usize,
}

/// The three products of a layer, by the names of their bench rows.
const PRODUCTS: [&str; 3] = ["x.W^T", "g^T.x", "g.W"];

impl MatmulFloor {
    /// The products of `plan`'s linear and convolution layers at `batch` examples: a
    /// convolution's rows are examples x output positions, its inputs taps x channels.
    fn new(plan: &[Planned], batch: usize, dev: &Device) -> Result<MatmulFloor> {
        let layers = plan
            .iter()
            .filter_map(|p| Some((p.weight_dims()?, batch * p.rows_per_example())))
            .map(|((out, fan_in), rows)| {
                let input = Tensor::rand(0f32, 1.0, (1, rows, fan_in), dev)?;
                let weight = Tensor::rand(-0.1f32, 0.1, (1, out, fan_in), dev)?;
                let grad_out = Tensor::rand(-0.1f32, 0.1, (1, rows, out), dev)?;
                Ok((input, weight, grad_out))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(MatmulFloor { layers, batch })
    }

    /// Layer `layer`'s product `which` (an index into [`PRODUCTS`]).
    fn product(&self, layer: usize, which: usize) -> Result<Tensor> {
        let (input, weight, grad_out) = &self.layers[layer];
        match which {
            0 => products::forward_product(input, weight),
            1 => products::weight_gradient(input, grad_out),
            _ => products::input_gradient(grad_out, weight),
        }
    }

    /// Floating-point operations of one product of `layer` (all three have the same).
    fn flops(&self, layer: usize) -> f64 {
        let (input, weight, _) = &self.layers[layer];
        let dims = (input.dims(), weight.dims());
        2.0 * (dims.0[1] * dims.0[2] * dims.1[1]) as f64
    }

    /// The forward pass's products alone: the floor of inference.
    fn forward(&self) -> candle_core::Result<()> {
        for layer in 0..self.layers.len() {
            self.product(layer, 0).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }

    fn run(&self) -> candle_core::Result<()> {
        for layer in 0..self.layers.len() {
            for which in 0..PRODUCTS.len() {
                self.product(layer, which)
                    .map_err(candle_core::Error::wrap)?;
            }
        }
        Ok(())
    }

    fn step_flops(&self) -> f64 {
        (0..self.layers.len()).map(|l| 3.0 * self.flops(l)).sum()
    }

    /// One case per product of the floor, each repeated back to back (`calls` per timing): the
    /// speed a product reaches alone, with its operands in cache (pass `alone`, named like
    /// `g^T.x 784x512`: the product and the layer's in x out).
    fn alone_cases(&self, calls: usize) -> Vec<Case<'_>> {
        let mut cases = Vec::new();
        for (layer, (input, weight, _)) in self.layers.iter().enumerate() {
            for (which, label) in PRODUCTS.iter().enumerate() {
                let mut name = format!("{label} {}x{}", input.dims()[2], weight.dims()[1]);
                // A convolution's product has a row per example and output position.
                if input.dims()[1] != self.batch {
                    name.push_str(&format!(" rows {}", input.dims()[1]));
                }
                // Leaked once per bench run: the names live as long as the rows that carry them.
                let name: &'static str = Box::leak(name.into_boxed_str());
                cases.push(Case::products(
                    name,
                    "alone",
                    self.flops(layer),
                    calls,
                    move || {
                        self.product(layer, which)
                            .map(drop)
                            .map_err(candle_core::Error::wrap)
                    },
                ));
            }
        }
        cases
    }
}

/// A ReLU net of `plan`'s layers through candle's own convolutions, pooling and autograd
/// (channels-first), stepped by candle-nn's AdamW: the path this crate's convolutions replace.
struct CandleConv {
    /// Per linear or convolution layer: weight (`[out, in]` or `[out, channels, k...]`), bias.
    params: Vec<(Var, Var)>,
    plan: Vec<Planned>,
    x: Tensor,
    y: Tensor,
    optimizer: std::cell::RefCell<candle_nn::AdamW>,
}

impl CandleConv {
    fn new(plan: &[Planned], x: &Tensor, y: &Tensor) -> Result<CandleConv> {
        let dev = x.device();
        let mut params = Vec::new();
        for p in plan {
            let Some((out, fan_in)) = p.weight_dims() else {
                continue;
            };
            let mut shape = vec![out];
            if let LayerSpec::Conv { kernel, .. } = p.spec {
                shape.push(p.input.channels);
                shape.extend(std::iter::repeat_n(kernel, p.input.spatial.len()));
            } else {
                shape.push(fan_in);
            }
            let bound = 1.0 / (fan_in as f64).sqrt();
            let (lo, hi) = (-bound as f32, bound as f32);
            params.push((Var::rand(lo, hi, shape, dev)?, Var::rand(lo, hi, out, dev)?));
        }
        let vars = params
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect();
        let optimizer = candle_nn::AdamW::new_lr(vars, 1e-3)?;
        // The batch channels-first: `[B, channels, spatial...]`.
        let input = &plan[0].input;
        let mut dims = vec![x.dim(1)?];
        dims.extend_from_slice(&input.spatial);
        dims.push(input.channels);
        let rank = dims.len();
        let mut order = vec![0, rank - 1];
        order.extend(1..rank - 1);
        let x = x.squeeze(0)?.reshape(dims)?.permute(order)?.contiguous()?;
        Ok(CandleConv {
            params,
            plan: plan.to_vec(),
            x,
            y: y.squeeze(0)?,
            optimizer: optimizer.into(),
        })
    }

    fn step(&self) -> candle_core::Result<()> {
        use candle_nn::Optimizer;
        let mut h = self.x.clone();
        let mut params = self.params.iter();
        let last = self.plan.iter().rposition(|p| p.spec.is_trainable());
        for (i, p) in self.plan.iter().enumerate() {
            h = match p.spec {
                LayerSpec::Flatten => h.flatten_from(1)?,
                LayerSpec::MaxPool { kernel, stride } => {
                    h.max_pool2d_with_stride(kernel, stride)?
                }
                LayerSpec::AvgPool { kernel, stride } => {
                    h.avg_pool2d_with_stride(kernel, stride)?
                }
                LayerSpec::Conv {
                    stride, padding, ..
                } => {
                    let (w, b) = params.next().expect("a weight per layer");
                    let y = match p.input.spatial.len() {
                        1 => h.conv1d(w.as_tensor(), padding, stride, 1, 1)?,
                        _ => h.conv2d(w.as_tensor(), padding, stride, 1, 1)?,
                    };
                    let mut bias = vec![1, b.dim(0)?];
                    bias.extend(std::iter::repeat_n(1, p.input.spatial.len()));
                    y.broadcast_add(&b.as_tensor().reshape(bias)?)?
                }
                LayerSpec::Linear { .. } => {
                    let (w, b) = params.next().expect("a weight per layer");
                    h.matmul(&w.as_tensor().t()?)?
                        .broadcast_add(b.as_tensor())?
                }
            };
            if p.spec.is_trainable() && Some(i) != last {
                h = h.relu()?;
            }
        }
        let loss = candle_nn::loss::cross_entropy(&h, &self.y)?;
        self.optimizer.borrow_mut().backward_step(&loss)
    }
}

/// The SmartMixed rows' names: `phase1` / `phase2` for the paper's pool, else with the pool.
fn phase_names(pool: Pool) -> (&'static str, &'static str) {
    if pool.is_paper() {
        return ("phase1", "phase2");
    }
    // Leaked once per call: the names live as long as the rows that carry them.
    let label = crate::report::compare::pool_label(&pool.to_string());
    (
        Box::leak(format!("phase1 pool={label}").into_boxed_str()),
        Box::leak(format!("phase2 pool={label}").into_boxed_str()),
    )
}

/// The models of a sweep cell of `seeds` seeds: the six baselines and SmartMixed (in phase 1),
/// each seed's initial network, in sweep order.
fn cell_models(widths: &[usize], seeds: u64, device: &Device) -> Result<Vec<Network>> {
    let methods = Activation::PAPER
        .map(Method::Baseline)
        .into_iter()
        .chain([Method::SmartMixed]);
    let mut models = Vec::new();
    for seed in 1..=seeds {
        for method in methods.clone() {
            let flags = Settings {
                widths: Some(widths.to_vec()),
                method: Some(method),
                seed: Some(seed),
                ..Default::default()
            };
            let cfg = TrainConfig::resolve(None, None, &flags)?;
            models.push(initial_network(&cfg, &mut Streams::new(seed).init, device)?);
        }
    }
    Ok(models)
}

/// `smartmixed bench cohort`: the training step per model when M models train as one cohort
/// (`run::stack`) against one at a time, at batch 128 on MNIST-shaped random data, for each
/// network in `networks`. `m1`: the seven models of one seed (six baselines and SmartMixed in
/// phase 1) each stepped alone as a cohort of one, the total divided by 7; `m7`: the same seven
/// as one cohort, divided by 7; `m21`: three seeds' 21 models as one cohort, divided by 21.
/// Rows: bench `cohort`, pass `model_step`, rows = batch, cols = first hidden width.
pub fn bench_cohort(
    networks: &[Vec<usize>],
    batches: usize,
    csv: Option<&Path>,
    (device, device_name): &(Device, String),
) -> Result<Vec<BenchRow>> {
    let batch = 128;
    let mut all = Vec::new();
    for widths in networks {
        let mut data = ChaCha8Rng::seed_from_u64(0);
        let mut run = |models: Vec<Network>| -> Result<CohortRun> {
            let m = models.len();
            let x: Vec<f32> = (0..m * batch * IMAGE_PIXELS)
                .map(|_| data.random())
                .collect();
            let y: Vec<u32> = (0..m * batch)
                .map(|_| data.random_range(0..CLASSES as u32))
                .collect();
            CohortRun::new(
                models,
                Tensor::from_vec(x, (m, batch, IMAGE_PIXELS), device)?,
                Tensor::from_vec(y, (m, batch), device)?,
            )
        };
        let singles: Vec<CohortRun> = cell_models(widths, 1, device)?
            .into_iter()
            .map(|model| run(vec![model]))
            .collect::<Result<_>>()?;
        let seven = run(cell_models(widths, 1, device)?)?;
        let twenty_one = run(cell_models(widths, 3, device)?)?;
        let step = |r: &CohortRun| r.step();
        let cases = vec![
            Case::without_bytes("m1", "model_step", || singles.iter().try_for_each(step)),
            Case::without_bytes("m7", "model_step", || step(&seven)),
            Case::without_bytes("m21", "model_step", || step(&twenty_one)),
        ];
        let mut times = measure(&cases, 3, batches, device)?;
        // Per model: m1 ran its seven models one after the other.
        for (t, per) in times.iter_mut().zip([7.0, 7.0, 21.0]) {
            for v in t.iter_mut() {
                *v /= per;
            }
        }
        let rows = rows_of("cohort", &cases, &times, (batch, widths[0]), device_name);
        print_table(
            &format!(
                "training step per model, cohorts of 1, 7 and 21 models, widths {widths:?}, batch {batch}, {batches} interleaved steps each, on {device_name}"
            ),
            &rows,
            "m1",
        );
        all.extend(rows);
    }
    if let Some(path) = csv {
        append_csv(path, &all)?;
    }
    Ok(all)
}

/// A stack with its optimizer, Gumbel streams and one fixed batch per model, stepped as
/// training steps it (`run::step`, the default preset's loss and clipping).
struct CohortRun {
    stack: std::cell::RefCell<Stack>,
    params: Vec<(Var, crate::run::optim::Owner)>,
    adam: std::cell::RefCell<Adam>,
    rngs: std::cell::RefCell<Vec<ChaCha8Rng>>,
    x: Tensor,
    y: Tensor,
}

impl CohortRun {
    /// `x` `[M, B, 784]`, `y` `[M, B]`: each model's batch.
    fn new(models: Vec<Network>, x: Tensor, y: Tensor) -> Result<Self> {
        let m = models.len();
        let stack = Stack::new(models)?;
        let params = stack.params();
        let adam = Adam::with_owners(params.clone(), AdamConfig::with_lr(1e-3))?;
        Ok(Self {
            stack: stack.into(),
            params,
            adam: adam.into(),
            rngs: (0..m as u64)
                .map(ChaCha8Rng::seed_from_u64)
                .collect::<Vec<_>>()
                .into(),
            x,
            y,
        })
    }

    fn step(&self) -> candle_core::Result<()> {
        let stack = self.stack.borrow();
        let m = stack.len();
        let mut adam = self.adam.borrow_mut();
        let mut learner = Learner {
            params: &self.params,
            optimizer: &mut adam,
            loss: LossKind::Logits,
            grad_clips: &vec![Some(1.0); m],
        };
        step(
            &stack,
            &mut learner,
            (&self.x, &self.y),
            &mut self.rngs.borrow_mut(),
            &vec![true; m],
        )
        .map(drop)
        .map_err(candle_core::Error::msg)
    }

    /// Random gradients, one per parameter of the stack (for [`CohortRun::optimizer_step`]).
    fn random_gradients(&self) -> Result<GradStore> {
        let mut grads = GradStore::default();
        for (var, _) in &self.params {
            let g = Tensor::rand(-1e-2f32, 1e-2, var.shape(), var.device())?;
            grads.insert(var.as_tensor(), g);
        }
        Ok(grads)
    }

    /// The optimizer's part of a step alone, on fixed gradients: each model's clipping factor
    /// and Adam, as [`step`] runs them on the CPU.
    fn optimizer_step(&self, grads: &GradStore) -> candle_core::Result<()> {
        let models = self.stack.borrow().len();
        let run = || -> Result<()> {
            let scales = clip_scales(
                &self.params,
                grads,
                &vec![Some(1.0); models],
                &vec![true; models],
            )?;
            self.adam.borrow_mut().step_models(grads, &scales)
        };
        run().map_err(candle_core::Error::msg)
    }

    /// The forward pass evaluation runs (argmax selection), as a trained network costs it.
    fn infer(&self) -> candle_core::Result<()> {
        let stack = self.stack.borrow();
        let include = vec![true; stack.len()];
        let pass = Pass::Eval(mixed_act::Selection::Argmax);
        stack
            .forward(&self.x, pass, &mut self.rngs.borrow_mut(), &include)
            .map(drop)
            .map_err(candle_core::Error::msg)
    }
}
