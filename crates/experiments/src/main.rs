//! `smartmixed`: train baselines and SmartMixed models. Thin: parse, validate, dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use experiments::bail_input;
use experiments::error::InputError;
use experiments::grid::sweep::{expand, plan, run_sweep, Shard, SweepConfig, SweepOptions};
use experiments::interrupt::{self, Interrupted};
use experiments::progress::Progress;
use experiments::report::{compare, plot};
use experiments::run::config::{
    DatasetName, DeviceChoice, Method, NetName, PoolSetting, Settings, TrainConfig,
};
use experiments::run::files::RunRecord;
use experiments::run::train::board;
use experiments::run::{data, train};
use experiments::{bench, device, print_stdout};

#[derive(Parser)]
#[command(
    name = "smartmixed",
    version,
    about = "SmartMixed: per-neuron learned activation functions, in Rust",
    after_help = "The manual: docs/ in the repository (README.md lists its pages)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model (a fixed function, SmartMixed or an adaptive method) and write its results.
    #[command(after_help = "More: docs/training.md (flags, methods, files, pools, presets).")]
    Train(TrainArgs),
    /// Run a grid of architectures x methods x seeds; resumes where it stopped.
    #[command(
        after_help = "More: docs/sweeps.md (configs, [grid] axes, shards), docs/cohorts.md, docs/cluster.md."
    )]
    Sweep(SweepArgs),
    /// Compare baselines and SmartMixed across one or more sweep outputs.
    #[command(after_help = "More: docs/sweeps.md, \"What a sweep writes\".")]
    Compare(CompareArgs),
    /// Draw the comparison's figures (SVG and PNG) into the first directory's figures/ (or
    /// --out's).
    #[command(after_help = "More: docs/sweeps.md, \"What a sweep writes\".")]
    Plot(PlotArgs),
    /// Write TensorBoard event files for sweeps or runs that exist (from their files; no
    /// retraining), then look with `tensorboard --logdir DIR/tensorboard`.
    #[command(after_help = "More: docs/tensorboard.md.")]
    Tensorboard(TensorboardArgs),
    /// Time the fused ops or a training step against their floors.
    #[command(subcommand, after_help = "More: docs/benchmarks.md.")]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The training step per model when a sweep cell's models (six baselines and SmartMixed per
    /// seed) train as one cohort of 7 or 21 against one at a time.
    #[command(after_help = "More: docs/benchmarks.md.")]
    Cohort {
        /// Networks to time, as widths; `;` between networks [default: 512,256,128,64;64,32,
        /// architecture 3 and a small network whose step is overhead-bound].
        #[arg(long, default_value = "512,256,128,64;64,32")]
        networks: String,
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// Timed steps per case (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        batches: usize,
        /// Threads for every op, candle's matrix products included (sets RAYON_NUM_THREADS;
        /// default: RAYON_NUM_THREADS or the core count).
        #[arg(long)]
        threads: Option<usize>,
        /// Append one row per measurement to this CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Forward and forward+backward of the activation ops, interleaved, per shape.
    #[command(after_help = "More: docs/benchmarks.md.")]
    Ops {
        /// Shapes as ROWSxCOLS, comma-separated.
        #[arg(long, default_value = "128x512,1024x1024,4096x4096")]
        shapes: String,
        /// Threads for every op, candle's matrix products included (sets RAYON_NUM_THREADS;
        /// default: RAYON_NUM_THREADS or the core count).
        #[arg(long)]
        threads: Option<usize>,
        /// Device: cpu (default), auto, cuda, cuda:N or metal. GPU timings synchronise the
        /// device after every run.
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// Timed repeats per case (after 2 warm-up rounds).
        #[arg(long, default_value_t = 30)]
        repeats: usize,
        /// Append one row per measurement to this CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// One training step (forward, backward, clipping, Adam) at batch 128 on MNIST-shaped data,
    /// and the forward pass of the network each method leaves (rows of pass `infer`).
    #[command(after_help = "More: docs/benchmarks.md.")]
    Train {
        /// Architecture id.
        #[arg(long, default_value_t = 3, conflicts_with = "net")]
        arch: u32,
        /// A named net with convolutions instead (mnist1d-cnn, mnist1d-cnn5 on MNIST-1D's
        /// signals; lenet5, conv4 on 28x28 images); adds the `candle-conv` row.
        #[arg(long, value_enum)]
        net: Option<NetName>,
        /// Device: cpu (default), auto, cuda, cuda:N or metal. GPU timings synchronise the
        /// device after every run.
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// Timed steps per variant (after 5 warm-up steps). Steps take milliseconds, so many
        /// of them cost little and steady the medians on a shared machine.
        #[arg(long, default_value_t = 200)]
        batches: usize,
        /// The SmartMixed models' pool, as `train --pool` takes it [default: paper]. The
        /// frozen model then mixes the pool's functions evenly over its neurons.
        #[arg(long)]
        pool: Option<PoolSetting>,
        /// Adaptive methods to time beside relu, phase1 and phase2 (rows named after them),
        /// comma-separated or repeated: softmix, softmix_freeze (its selection phase), prelu,
        /// swish_beta, pau, pau_neuron.
        #[arg(long, value_delimiter = ',')]
        method: Vec<Method>,
        /// Threads for every op, candle's matrix products included (sets RAYON_NUM_THREADS;
        /// default: RAYON_NUM_THREADS or the core count).
        #[arg(long)]
        threads: Option<usize>,
        /// Append one row per measurement to this CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
}

#[derive(Args)]
struct SweepArgs {
    /// Sweep config (TOML), e.g. experiments/quick.toml.
    #[arg(long)]
    config: PathBuf,
    /// Output directory: results.csv, layer_shares.csv, manifest.json, runs/.
    #[arg(long)]
    out: PathBuf,
    /// Run only the I-th of N disjoint parts of the grid, e.g. 2/4.
    #[arg(long)]
    shard: Option<Shard>,
    /// Overrides the config's device: auto, cpu, cuda, cuda:N or metal.
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// Overrides the config's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
    /// Train at most N runs together as one cohort (1: one at a time) [default: the config's
    /// cohort_size, else as many as share data and settings, capped by the device's memory].
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    cohort_size: Option<usize>,
    /// Print the plan without training: the number of runs, the axes, how many runs are
    /// already finished in --out, then index, key, label (and `done`) per run.
    #[arg(long)]
    plan: bool,
    /// Write no TensorBoard events (by default each run writes its curves and settings under
    /// --out's tensorboard/; the config's `tensorboard = false` says the same).
    #[arg(long)]
    no_tensorboard: bool,
}

#[derive(Args)]
struct TensorboardArgs {
    /// Sweep output directories (their events go into DIR/tensorboard/, replacing what is
    /// there) or run directories of `train --out` (events beside the run's files).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    /// Sweep output directories; the report goes into the first unless --out says otherwise.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Write the report here instead (made if missing): comparison.md, comparison.csv and the
    /// tables beside them, or plot's figures/. For a report over several sets that leaves
    /// each set's own report as it is.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 0)]
    bootstrap_seed: u64,
}

#[derive(Args)]
struct PlotArgs {
    #[command(flatten)]
    compare: CompareArgs,
    /// Draw only test accuracy against this setting (one that varies within an architecture of
    /// the results, e.g. tau) as figures/accuracy_vs_<setting>.{png,svg}. Without it: every
    /// kind of --figures.
    #[arg(long, conflicts_with = "figures")]
    x: Option<String>,
    /// Draw only these kinds of figure (comma-separated; all by default), e.g. `by-method` for
    /// a report over several sets whose other figures each set has.
    #[arg(long, value_delimiter = ',')]
    figures: Vec<plot::FigureKind>,
}

#[derive(Args)]
struct TrainArgs {
    /// TOML file with any of the settings below (snake_case keys).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    /// Where the run's files go (its TensorBoard events too: `tensorboard --logdir` it or a
    /// folder above it).
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
    /// Write no TensorBoard events.
    #[arg(long)]
    no_tensorboard: bool,
}

fn run_train(args: TrainArgs) -> Result<()> {
    let cfg = TrainConfig::resolve(args.config.as_deref(), args.settings.preset, &args.settings)?;
    if let Some(setting) = args.settings.unread_by(cfg.method) {
        bail_input!(
            "--{} is not a setting of --method {} (it reads: {})",
            setting.replace('_', "-"),
            cfg.method,
            cfg.method.settings_read()
        );
    }
    let progress = Progress::detect(args.quiet);
    let (device, device_name) = device::select(cfg.device)?;
    let raw = data::load(cfg.dataset, &cfg.mnist1d, cfg.data_dir_or_env().as_deref())?;
    let splits = data::Splits::new(&raw, cfg.split_seed, &device)?;
    data::check_batch_size(&cfg, &splits, "--batch-size")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    RunRecord::new(&cfg, &splits.source, &device_name).write(&args.out.join("config.json"))?;
    progress.note(&format!(
        "{} on {} widths {:?}: {} train / {} val / {} test images, device {device_name}",
        cfg.method,
        cfg.dataset.name(),
        cfg.widths,
        splits.train.len(),
        splits.val.len(),
        splits.test.len()
    ));
    // An earlier run's outcome in this directory is not this run's (an interrupted run leaves
    // none), nor are its events.
    for stale in ["summary.json", "choices.csv"] {
        let path = args.out.join(stale);
        if path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    if args.no_tensorboard {
        board::clear_event_files(&args.out)?;
    }
    let board = (!args.no_tensorboard).then(|| board::own_target(&args.out, &cfg));
    let out = train::RunOut {
        dir: &args.out,
        board: board.as_ref(),
    };
    let summary = train::train(&cfg, &splits, &device, out, progress).inspect_err(|e| {
        if e.downcast_ref::<Interrupted>().is_some() {
            eprintln!(
                "interrupted: the finished epochs are in {}",
                args.out.join("epochs.csv").display()
            );
        }
    })?;
    match summary.test_acc {
        Some(acc) => progress.note(&format!(
            "done: test_acc {:.2}% (best epoch {}), {:.1}s per epoch; results in {}",
            100.0 * acc,
            summary.best_epoch.unwrap_or(0),
            summary.epoch_seconds,
            args.out.display()
        )),
        None => eprintln!(
            "run {}: non-finite loss in epoch {}; results in {}",
            summary.status,
            summary.diverged_epoch.unwrap_or(0),
            args.out.display()
        ),
    }
    Ok(())
}

fn run_bench(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Ops {
            shapes,
            repeats,
            csv,
            device,
            ..
        } => {
            let shapes = bench::parse_shapes(&shapes)?;
            let device = device::select(device)?;
            bench::bench_ops(&shapes, repeats.max(1), csv.as_deref(), &device).map(drop)
        }
        BenchCommand::Cohort {
            networks,
            device,
            batches,
            csv,
            ..
        } => {
            let networks = networks
                .split(';')
                .map(|n| {
                    n.split(',')
                        .map(|w| w.trim().parse::<usize>())
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .ok()
                        .filter(|w| !w.is_empty() && !w.contains(&0))
                        .ok_or_else(|| {
                            experiments::error::input_error(format!(
                                "--networks: '{n}' is not a list of positive widths"
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let device = device::select(device)?;
            bench::bench_cohort(&networks, batches.max(1), csv.as_deref(), &device).map(drop)
        }
        BenchCommand::Train {
            arch,
            net,
            batches,
            pool,
            method,
            csv,
            device,
            ..
        } => {
            if let Some(m) = method
                .iter()
                .find(|m| !m.is_adaptive() || **m == Method::SmartMixed)
            {
                experiments::bail_input!(
                    "--method {m}: bench train times relu and SmartMixed's phases anyway; give adaptive methods to compare with them"
                );
            }
            let network = match net {
                // The data set whose inputs the net is made for.
                Some(net) => Settings {
                    net: Some(net),
                    dataset: Some(match net.dims() {
                        1 => DatasetName::Mnist1d,
                        _ => DatasetName::Mnist,
                    }),
                    ..Settings::default()
                },
                None => {
                    let Some((_, widths)) = experiments::run::arch::architecture(arch) else {
                        experiments::bail_input!(
                            "--arch {arch} is not an architecture id (valid: 1..=18)"
                        );
                    };
                    Settings {
                        widths: Some(widths.to_vec()),
                        ..Settings::default()
                    }
                }
            };
            let device = device::select(device)?;
            let pool = pool.unwrap_or_default().0;
            let batches = batches.max(1);
            bench::bench_train(&network, pool, &method, batches, csv.as_deref(), &device).map(drop)
        }
    }
}

/// `sweep --plan`: the grid without running it (scripts/slurm-sweep.sh reads its `runs: N` line
/// to size job arrays).
fn print_plan(args: &SweepArgs) -> Result<()> {
    let cfg = SweepConfig::from_file(&args.config)?;
    let grid = expand(&cfg, args.data_dir.clone(), args.device)?;
    print_stdout(&plan(&cfg, &grid, &args.out)?)
}

/// candle 0.11 runs its parallel CPU ops on a thread pool of its own whose idle threads spin
/// (25 000 rounds by default) before they sleep; our kernels, the optimizer and gemm run on
/// rayon's threads, and on a machine with few cores the spinning threads take their cores.
/// `smartmixed bench train` on the 2-vCPU development machine, default vs 100 spins: ReLU step
/// 4.26 -> 3.99 ms, phase 2 5.28 -> 4.14 ms, phase 1 6.09 -> 5.34 ms (medians). A value the
/// user set is kept.
const CANDLE_SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
const CANDLE_SPIN_LIMIT: &str = "100";

fn calm_candle_thread_pool() {
    if std::env::var_os(CANDLE_SPIN_LIMIT_VAR).is_none() {
        // Called first thing in main, before any other thread exists.
        std::env::set_var(CANDLE_SPIN_LIMIT_VAR, CANDLE_SPIN_LIMIT);
    }
}

/// Keeps freed buffers in the process instead of returning them to the kernel. candle allocates a
/// fresh buffer for every op's output; with glibc's defaults the large ones are mmap'ed and
/// unmapped each time, so every training step pays page faults and zeroing of fresh pages
/// (about 15 % of a step in a profile). Measured with `smartmixed bench train`: the ReLU step
/// 13.9 -> 9.5 ms, phase 2 15.3 -> 10.1 ms, phase 1 20.9 -> 17.4 ms. The cost is memory that
/// stays mapped after a peak (bounded by the peak itself).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets (larger buffers are
    // still mapped and unmapped); never trimming keeps the freed heap for the next step.
    // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// The stack size of the pool's threads, which run every command (the main thread's default).
const THREAD_STACK: usize = 8 << 20;

/// Builds rayon's global pool: `bench --threads N` threads, else rayon's default
/// (RAYON_NUM_THREADS or the core count). `--threads` also sets RAYON_NUM_THREADS, by which candle
/// sizes its matrix products' and element-wise ops' parallelism (without it, `bench --threads 1`
/// ran every product as two parallel tasks on one thread, at half its speed). Called before any
/// other thread runs.
fn start_thread_pool(command: &Command) -> Result<()> {
    let threads = match command {
        Command::Bench(
            BenchCommand::Ops { threads, .. }
            | BenchCommand::Train { threads, .. }
            | BenchCommand::Cohort { threads, .. },
        ) => *threads,
        _ => None,
    };
    let mut pool = rayon::ThreadPoolBuilder::new().stack_size(THREAD_STACK);
    if let Some(n) = threads {
        if n == 0 {
            experiments::bail_input!("--threads must be at least 1");
        }
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        pool = pool.num_threads(n);
    }
    pool.build_global().context("starting the thread pool")?;
    Ok(())
}

fn main() -> ExitCode {
    calm_candle_thread_pool();
    keep_freed_memory();
    let cli = Cli::parse();
    if let Err(e) = start_thread_pool(&cli.command) {
        return exit_code(Err(e));
    }
    interrupt::install();
    // The command runs on one of the pool's threads, so that each parallel op starts where its
    // inputs were made: called from outside the pool, every op handed its work to a pool thread
    // (a futex wake and a sleep per op, and the data moving to the other core's caches), which
    // with one thread was about 5 % of a training step in a profile.
    exit_code(rayon::scope(|_| run(cli.command)))
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => run_train(args),
        Command::Sweep(args) if args.plan => print_plan(&args),
        Command::Sweep(args) => run_sweep(&SweepOptions {
            config_file: args.config,
            out: args.out,
            shard: args.shard.unwrap_or(Shard::WHOLE),
            device: args.device,
            data_dir: args.data_dir,
            progress: Progress::detect(args.quiet),
            cohort_size: args.cohort_size,
            tensorboard: !args.no_tensorboard,
        })
        .map(|report| {
            if report.failed > 0 {
                eprintln!(
                    "{} of {} runs did not finish with status ok; see results.csv",
                    report.failed, report.ran
                );
            }
        }),
        Command::Bench(command) => run_bench(command),
        Command::Compare(args) => {
            compare::run(&args.dirs, args.out.as_deref(), args.bootstrap_seed)
        }
        Command::Plot(args) => plot::run(
            &args.compare.dirs,
            args.compare.out.as_deref(),
            args.compare.bootstrap_seed,
            args.x.as_deref(),
            &args.figures,
        )
        .and_then(|files| {
            let list: Vec<String> = files.iter().map(|f| format!("{}\n", f.display())).collect();
            print_stdout(&list.concat())
        }),
        Command::Tensorboard(args) => run_tensorboard_export(&args.dirs),
    }
}

/// `smartmixed tensorboard`: each directory's event files, then the command to look.
fn run_tensorboard_export(dirs: &[PathBuf]) -> Result<()> {
    let mut log_dirs = Vec::new();
    for dir in dirs {
        let exported = experiments::grid::export::export(dir)?;
        eprintln!("{}: {} runs written", dir.display(), exported.runs);
        if !exported.missing.is_empty() {
            eprintln!(
                "  {} rows of results.csv have no run directory to read (left out): {}",
                exported.missing.len(),
                exported.missing.join(" ")
            );
        }
        log_dirs.extend(exported.log_dirs);
    }
    // Several sets: each named (by its directory) so that their runs stay apart.
    let flag = match log_dirs.as_slice() {
        [one] => format!("--logdir {}", one.display()),
        _ => {
            let named: Vec<String> = log_dirs
                .iter()
                .zip(dirs)
                .map(|(log, dir)| {
                    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                    format!("{}:{}", name.unwrap_or_default(), log.display())
                })
                .collect();
            format!("--logdir_spec {}", named.join(","))
        }
    };
    print_stdout(&format!("tensorboard {flag}\n"))
}

fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => ExitCode::from(interrupt::EXIT_CODE),
        Err(e) => {
            eprintln!("error: {e:#}");
            // Bad input (flags, config, data files) exits 2, like clap's own usage errors.
            if e.chain().any(|c| c.downcast_ref::<InputError>().is_some()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
