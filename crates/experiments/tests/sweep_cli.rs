//! A tiny sweep on the shipped MNIST subset: rows, resume, sharding, a failing run, compare.

use std::path::{Path, PathBuf};
use std::process::Output;

use experiments::grid::store::{ResultRow, ResultsStore};
use experiments::grid::sweep::{expand, SweepConfig};

mod common;
use common::temp_dir as temp;

const TINY: &str = r#"
name = "tiny"
dataset = "mnist"
architectures = [[16], [16, 8]]
methods = ["relu", "smartmixed"]
seeds = [1, 2]
preset = "default"
device = "cpu"

[overrides]
epochs = 2
phase1_epochs = 1
batch_size = 64
lr = 3e-3
"#;

fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, TINY).unwrap();
    path
}

/// The binary with the shipped MNIST subset as its data directory.
fn smartmixed(args: &[&str]) -> Output {
    common::binary()
        .args(args)
        .env("SMARTMIXED_DATA_DIR", common::mini_data())
        .output()
        .expect("the smartmixed binary runs")
}

/// Sweeps `config` into `out` (`extra` flags added), which must succeed; returns stderr.
fn sweep(config: &Path, out: &Path, extra: &[&str]) -> String {
    let output = common::sweep_command(config, out)
        .args(extra)
        .env("SMARTMIXED_DATA_DIR", common::mini_data())
        .output()
        .expect("the smartmixed binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "sweep failed: {stderr}");
    stderr
}

fn rows(dir: &Path) -> Vec<ResultRow> {
    ResultsStore::open(dir).unwrap().results().unwrap()
}

/// Key, method, test_acc, val_loss, best_epoch, status.
type Metrics = (
    String,
    String,
    Option<f64>,
    Option<f64>,
    Option<usize>,
    String,
);

/// Everything but timing and provenance, keyed and sorted.
fn metrics(rows: &[ResultRow]) -> Vec<Metrics> {
    let mut m: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.method.clone(),
                r.test_acc,
                r.val_loss,
                r.best_epoch,
                r.status.clone(),
            )
        })
        .collect();
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m
}

#[test]
fn sweep_records_resumes_shards_and_compares() {
    let base = temp("main");
    let config = config_file(&base);
    let whole = base.join("whole");
    let log = sweep(&config, &whole, &[]);
    assert!(
        log.contains("8 runs in the grid") && log.contains("8 to run"),
        "{log}"
    );
    let all = rows(&whole);
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|r| r.status == "ok"), "{all:?}");
    let keys: std::collections::HashSet<_> = all.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 8, "no duplicate rows");
    assert!(all
        .iter()
        .all(|r| r.test_acc.unwrap() > 0.3 && r.threads >= 1 && !r.timestamp.is_empty()));
    let shares = ResultsStore::open(&whole).unwrap().shares().unwrap();
    assert_eq!(
        shares.len(),
        2 * (1 + 2),
        "SmartMixed: 2 seeds x (1 + 2 layers)"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["config"]["name"], "tiny");
    // The cache sizes that decide the bits of candle's matrix products (Linux lists them).
    if Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists() {
        assert!(
            manifest["cpu_caches"].as_str().unwrap().contains("L1"),
            "{}",
            manifest["cpu_caches"]
        );
    }
    assert!(manifest["rustc_version"]
        .as_str()
        .unwrap()
        .starts_with("rustc"));

    // Resume: a second invocation runs nothing and changes nothing.
    let before = std::fs::read(whole.join("results.csv")).unwrap();
    let log = sweep(&config, &whole, &[]);
    assert!(log.contains("8 already done, 0 to run"), "{log}");
    assert_eq!(std::fs::read(whole.join("results.csv")).unwrap(), before);

    // Two shards into one directory make the whole grid, with the same metrics.
    let sharded = base.join("sharded");
    let log = sweep(&config, &sharded, &["--shard", "1/2"]);
    assert!(log.contains("4 in shard 1/2"), "{log}");
    assert_eq!(rows(&sharded).len(), 4);
    sweep(&config, &sharded, &["--shard", "2/2"]);
    assert_eq!(metrics(&rows(&sharded)), metrics(&all));

    // compare writes its report next to the results and prints it; a file of an earlier
    // report that this one does not make (no second adaptive method: no pairs) goes.
    std::fs::write(whole.join("pairs.csv"), "stale").unwrap();
    let output = smartmixed(&["compare", whole.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("SmartMixed minus the best baseline"),
        "{printed}"
    );
    let mut reader = csv::Reader::from_path(whole.join("comparison.csv")).unwrap();
    assert_eq!(reader.records().count(), 4, "2 architectures x 2 methods");
    assert!(whole.join("comparison.md").is_file());
    assert!(!whole.join("pairs.csv").exists());

    // --out: a report over both sets in a directory of its own, each set's report untouched;
    // the same report `compare` writes into the first set.
    let own = std::fs::read(whole.join("comparison.md")).unwrap();
    let both = base.join("reports/both");
    let (w, s, b) = (
        whole.to_str().unwrap(),
        sharded.to_str().unwrap(),
        both.to_str().unwrap(),
    );
    assert!(smartmixed(&["compare", w, s, "--out", b]).status.success());
    assert!(smartmixed(&["plot", w, s, "--out", b]).status.success());
    assert_eq!(std::fs::read(whole.join("comparison.md")).unwrap(), own);
    assert!(!sharded.join("comparison.md").exists());
    assert!(!whole.join("figures").exists() && !sharded.join("figures").exists());
    assert!(both.join("comparison.csv").is_file());
    assert!(both.join("figures/accuracy_vs_depth.png").is_file());
    let combined = std::fs::read(both.join("comparison.md")).unwrap();
    assert!(smartmixed(&["compare", w, s]).status.success());
    assert_eq!(
        std::fs::read(whole.join("comparison.md")).unwrap(),
        combined
    );
    // --figures draws only the kinds asked for; an unknown kind, or --figures with --x, is an
    // input error naming the flag.
    let only = base.join("reports/by-method");
    let o = only.to_str().unwrap();
    assert!(
        smartmixed(&["plot", w, s, "--out", o, "--figures", "by-method"])
            .status
            .success()
    );
    let mut drawn: Vec<String> = std::fs::read_dir(only.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    drawn.sort();
    assert_eq!(drawn, ["accuracy_by_method.png", "accuracy_by_method.svg"]);
    for args in [
        vec!["plot", w, "--figures", "by-method,colour"],
        vec!["plot", w, "--figures", "depth", "--x", "tau"],
    ] {
        let output = smartmixed(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--figures"), "{stderr}");
    }
    // A plot of every kind removes the figures an earlier plot drew and this one does not
    // (and leaves other files alone); a plot of some kinds removes nothing.
    std::fs::write(both.join("figures/accuracy_vs_colour.svg"), "stale").unwrap();
    std::fs::write(both.join("figures/notes.txt"), "mine").unwrap();
    assert!(
        smartmixed(&["plot", w, s, "--out", b, "--figures", "by-method"])
            .status
            .success()
    );
    assert!(both.join("figures/accuracy_vs_colour.svg").exists());
    let output = smartmixed(&["plot", w, s, "--out", b]);
    assert!(output.status.success());
    assert!(!both.join("figures/accuracy_vs_colour.svg").exists());
    assert!(both.join("figures/notes.txt").exists());
    assert!(both.join("figures/accuracy_vs_depth.png").is_file());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("accuracy_vs_colour.svg"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // An --out that is a later set the report reads would replace that set's report: refused.
    let output = smartmixed(&["compare", w, s, "--out", s]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--out") && stderr.contains("a set the report reads"),
        "{stderr}"
    );
    assert!(!sharded.join("comparison.md").exists());
    // An --out that cannot be a directory is named.
    let blocked = base.join("a-file");
    std::fs::write(&blocked, "in the way").unwrap();
    for command in ["compare", "plot"] {
        let output = smartmixed(&[command, w, "--out", blocked.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--out") && stderr.contains("a-file"),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_failing_run_gets_its_status_and_the_sweep_goes_on() {
    let base = temp("fail");
    let config = config_file(&base);
    let out = base.join("out");
    // Block one run's directory with a plain file: that run cannot write its files.
    let grid = expand(&SweepConfig::from_file(&config).unwrap(), None, None).unwrap();
    let victim = &grid[2];
    std::fs::create_dir_all(out.join("runs")).unwrap();
    std::fs::write(out.join("runs").join(&victim.key), "in the way").unwrap();
    let log = sweep(&config, &out, &[]);
    assert!(log.contains("did not finish with status ok"), "{log}");
    let all = rows(&out);
    assert_eq!(all.len(), 8);
    let failed: Vec<_> = all.iter().filter(|r| r.status != "ok").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, victim.key);
    assert!(
        failed[0].status.starts_with("failed: "),
        "{}",
        failed[0].status
    );
    assert!(failed[0].test_acc.is_none());
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn bad_sweep_input_is_a_clear_error() {
    let base = temp("bad");
    let config = base.join("bad.toml");
    std::fs::write(
        &config,
        TINY.replace("seeds = [1, 2]", "seeds = [1, 2]\nepochz = 3"),
    )
    .unwrap();
    let out = base.join("out");
    for (args, needle) in [
        (
            vec![
                "sweep",
                "--config",
                config.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "epochz",
        ),
        (
            vec![
                "sweep",
                "--config",
                "/nonexistent.toml",
                "--out",
                out.to_str().unwrap(),
            ],
            "/nonexistent.toml",
        ),
        (vec!["compare", base.to_str().unwrap()], "no results.csv"),
    ] {
        let output = smartmixed(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    // Architectures: an unknown net, and a net that does not fit the data set's inputs.
    for (architectures, needle) in [
        (r#"["vgg8"]"#, "architecture \"vgg8\": an id (1..=18), a list of hidden widths or a net (mnist1d-cnn, mnist1d-cnn5, lenet5, conv4)"),
        (r#"["mnist1d-cnn"]"#, "--net mnist1d-cnn is a 1-D net, but mnist's inputs are 2-D"),
    ] {
        std::fs::write(
            &config,
            TINY.replace("architectures = [[16], [16, 8]]", &format!("architectures = {architectures}")),
        )
        .unwrap();
        let output = smartmixed(&["sweep", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(!out.exists());
    }
    std::fs::write(&config, TINY).unwrap();
    for shard in ["0/2", "3/2", "x", "1/0"] {
        let output = smartmixed(&[
            "sweep",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            shard,
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{shard}: {stderr}");
        assert!(stderr.contains("--shard"), "{shard}: {stderr}");
    }
    std::fs::remove_dir_all(base).unwrap();
}

/// A grid over tau (read by SmartMixed only) and lr (read by all): the plan, the runs, a
/// baseline that serves every tau, the comparison's cells, and plot --x.
#[test]
fn grid_axes_plan_compare_and_plot_against_a_setting() {
    let base = temp("axes");
    let config = base.join("axes.toml");
    std::fs::write(
        &config,
        r#"
name = "axes"
dataset = "mnist"
architectures = [[16]]
methods = ["relu", "smartmixed"]
seeds = [1, 2]
preset = "default"
device = "cpu"

[overrides]
epochs = 2
phase1_epochs = 1
batch_size = 64

[grid]
tau = [0.3, 3.0]
lr = [1e-3, 3e-3]
"#,
    )
    .unwrap();
    let out = base.join("out");
    let plan = |out: &Path| {
        let output = smartmixed(&[
            "sweep",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--plan",
        ]);
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    // relu: 2 lr x 2 seeds; smartmixed: 2 tau x 2 lr x 2 seeds.
    let text = plan(&out);
    assert!(text.starts_with("runs: 12\n"), "{text}");
    assert!(text.contains("grid tau: 2 (0.3, 3.0)"), "{text}");
    assert!(text.contains("grid lr: 2 (0.001, 0.003)"), "{text}");
    assert!(text.contains("baselines run once over tau"), "{text}");
    assert!(text.contains(": 0 of 12"), "{text}");
    assert!(!out.exists(), "--plan trains nothing and writes nothing");

    sweep(&config, &out, &["--quiet"]);
    let all = rows(&out);
    assert_eq!(all.len(), 12);
    assert!(all.iter().all(|r| r.status == "ok"));
    let relu: Vec<_> = all.iter().filter(|r| r.method == "relu").collect();
    assert_eq!(relu.len(), 4);
    assert!(relu
        .iter()
        .all(|r| r.not_applicable.contains("tau") && r.tau == 0.3));
    let text = plan(&out);
    assert!(
        text.contains(": 12 of 12") && text.contains(" done\n"),
        "{text}"
    );

    let output = smartmixed(&["compare", out.to_str().unwrap()]);
    assert!(output.status.success());
    let md = String::from_utf8_lossy(&output.stdout);
    assert!(md.contains("architecture x lr x tau"), "{md}");
    assert!(md.contains("paired by seed"), "{md}");
    // One cell per (lr, tau): relu and smartmixed in each; the relu runs serve both taus.
    let mut reader = csv::Reader::from_path(out.join("comparison.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert!(headers.iter().any(|h| h == "tau") && headers.iter().any(|h| h == "p_improvement"));
    assert_eq!(reader.records().count(), 8);

    let output = smartmixed(&["plot", out.to_str().unwrap(), "--x", "tau"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for ext in ["png", "svg"] {
        let file = out.join("figures").join(format!("accuracy_vs_tau.{ext}"));
        assert!(std::fs::metadata(&file).unwrap().len() > 1000, "{file:?}");
    }
    // --x draws that figure only.
    let figures: Vec<String> = std::fs::read_dir(out.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(figures.len(), 2, "{figures:?}");
    let svg = std::fs::read_to_string(out.join("figures/accuracy_vs_tau.svg")).unwrap();
    assert!(
        svg.contains("relu lr=0.001 (any tau)"),
        "the baseline's flat line"
    );
    assert!(svg.contains("smartmixed lr=0.003"));
    let output = smartmixed(&["plot", out.to_str().unwrap(), "--x", "batch_size"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--x batch_size"));
    // The default plot draws every varying setting (one depth: no depth figure).
    let output = smartmixed(&["plot", out.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(out.join("figures/accuracy_vs_lr.png").is_file());
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn bad_grid_tables_exit_2_and_name_the_key() {
    let base = temp("badgrid");
    let config = base.join("bad.toml");
    let out = base.join("out");
    for (grid, needle) in [
        ("[grid]\ntemperature = [0.1]\n", "temperature"),
        ("[grid]\ntau = 0.1\n", "must be a list"),
        (
            "[grid]\nlr = [0.001]\n",
            "'lr' is in both [overrides] and [grid]",
        ),
        ("[grid]\nseed = [1]\n", "'seeds'"),
    ] {
        std::fs::write(&config, format!("{TINY}{grid}")).unwrap();
        for extra in [&[][..], &["--plan"][..]] {
            let mut args = vec![
                "sweep",
                "--config",
                config.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let output = smartmixed(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{grid}: {stderr}");
            assert!(
                stderr.contains(needle) && stderr.contains("bad.toml"),
                "{needle}: {stderr}"
            );
        }
    }
    std::fs::remove_dir_all(base).unwrap();
}

/// The default sweep trains cohorts (here one per architecture: 4 runs, and a run with another
/// learning rate in its own cohort); its rows, share rows and run files equal those of
/// `--cohort-size 1`, one run at a time, except the timing columns, which say how many models
/// shared the wall time.
#[test]
fn cohorts_give_the_rows_of_one_run_at_a_time() {
    let base = temp("cohorts");
    let config = base.join("cohorts.toml");
    std::fs::write(&config, format!("{TINY}\n[grid]\ntau = [0.3, 1.0]\n")).unwrap();
    let (together, alone) = (base.join("together"), base.join("alone"));
    let log = sweep(&config, &together, &[]);
    assert!(
        log.contains("training in 2 cohorts of 6, 6 models"),
        "{log}"
    );
    sweep(&config, &alone, &["--cohort-size", "1"]);
    let (a, b) = (rows(&together), rows(&alone));
    assert_eq!(a.len(), 12);
    assert_eq!(metrics(&a), metrics(&b));
    assert!(a.iter().all(|r| r.cohort_models == Some(6)), "{a:?}");
    assert!(b.iter().all(|r| r.cohort_models == Some(1)));
    for r in &a {
        let per_model = r.epoch_seconds.unwrap() / 6.0;
        assert!((r.epoch_seconds_per_model.unwrap() - per_model).abs() < 1e-12);
        for file in ["epochs.csv", "choices.csv", "model.safetensors"] {
            let read = |dir: &Path| std::fs::read(dir.join("runs").join(&r.key).join(file)).ok();
            let (x, y) = (read(&together), read(&alone));
            let strip = |bytes: Option<Vec<u8>>| {
                // epochs.csv: the seconds column (wall time) aside.
                bytes.map(|b| match file {
                    "epochs.csv" => String::from_utf8(b)
                        .unwrap()
                        .lines()
                        .map(|l| {
                            let mut c: Vec<&str> = l.split(',').collect();
                            c[5] = "";
                            c.join(",")
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                        .into_bytes(),
                    _ => b,
                })
            };
            assert!(strip(x) == strip(y), "{} {file}", r.key);
        }
    }
    let shares = |dir: &Path| ResultsStore::open(dir).unwrap().shares().unwrap();
    let (mut sa, mut sb) = (shares(&together), shares(&alone));
    sa.sort_by(|x, y| (&x.key, x.layer).cmp(&(&y.key, y.layer)));
    sb.sort_by(|x, y| (&x.key, x.layer).cmp(&(&y.key, y.layer)));
    assert_eq!(sa, sb);

    // Runs with another learning rate do not join a cohort; a bad cohort_size is refused.
    let by_lr = TINY
        .replace(
            "methods = [\"relu\", \"smartmixed\"]",
            "methods = [\"relu\"]",
        )
        .replace("[overrides]", "cohort_size = 3\n\n[overrides]")
        .replace("lr = 3e-3\n", "");
    std::fs::write(&config, format!("{by_lr}\n[grid]\nlr = [3e-3, 1e-2]\n")).unwrap();
    let log = sweep(&config, &base.join("lr"), &[]);
    assert!(
        log.contains("training in 4 cohorts of 2, 2, 2, 2 models (--cohort-size 3)"),
        "{log}"
    );
    std::fs::write(
        &config,
        TINY.replace("[overrides]", "cohort_size = 0\n\n[overrides]"),
    )
    .unwrap();
    let output = smartmixed(&[
        "sweep",
        "--config",
        config.to_str().unwrap(),
        "--out",
        base.join("bad").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'cohort_size' must be at least 1"));
    std::fs::remove_dir_all(base).unwrap();
}

/// Every adaptive method trains in a sweep, in one cohort with the others and one at a time, to
/// the same bits; `compare` adds the methods' cost table and the pairs (pairs.csv,
/// methods.csv) and `plot` the figures of what they learned.
#[test]
fn adaptive_methods_train_in_cohorts_and_reach_the_reports() {
    let base = temp("adaptive");
    let config = base.join("adaptive.toml");
    let methods = r#"methods = ["relu", "smartmixed", "softmix", "softmix_freeze", "prelu", "swish_beta", "pau", "pau_neuron"]"#;
    let text = TINY
        .replace(r#"methods = ["relu", "smartmixed"]"#, methods)
        .replace(
            "architectures = [[16], [16, 8]]",
            "architectures = [[16, 8]]",
        );
    std::fs::write(&config, text).unwrap();
    let (together, alone) = (base.join("together"), base.join("alone"));
    let log = sweep(&config, &together, &[]);
    assert!(log.contains("training in 1 cohorts of 16 models"), "{log}");
    sweep(&config, &alone, &["--cohort-size", "1"]);
    let (a, b) = (rows(&together), rows(&alone));
    assert_eq!(a.len(), 16);
    assert!(a.iter().all(|r| r.status == "ok"), "{a:?}");
    assert_eq!(metrics(&a), metrics(&b));
    for r in &a {
        let read =
            |dir: &Path| std::fs::read(dir.join("runs").join(&r.key).join("model.safetensors"));
        assert!(
            read(&together).unwrap() == read(&alone).unwrap(),
            "{} checkpoint",
            r.key
        );
    }
    let output = smartmixed(&["compare", together.to_str().unwrap()]);
    assert!(output.status.success());
    let md = std::fs::read_to_string(together.join("comparison.md")).unwrap();
    assert!(
        md.contains("## The methods side by side") && md.contains("| pau_neuron |"),
        "{md}"
    );
    // At a glance: every method once, with its two seeds.
    let glance = md.split("## At a glance").nth(1).unwrap();
    let glance = glance.split("\n## ").next().unwrap();
    for method in [
        "relu",
        "smartmixed",
        "softmix",
        "softmix_freeze",
        "prelu",
        "swish_beta",
        "pau",
        "pau_neuron",
    ] {
        let rows: Vec<&str> = glance
            .lines()
            .filter(|l| l.starts_with(&format!("| {method} |")))
            .collect();
        assert!(rows.len() == 1 && rows[0].ends_with("(2) |"), "{glance}");
    }
    let pairs = std::fs::read_to_string(together.join("pairs.csv")).unwrap();
    assert!(pairs.contains("smartmixed,softmix_freeze,2,"), "{pairs}");
    assert!(together.join("methods.csv").is_file());
    // The frozen soft mixture's choices get a share table as SmartMixed's do.
    assert!(
        md.contains("## softmix_freeze's functions per layer"),
        "{md}"
    );
    // The freeze of both switching methods, from their epoch logs.
    assert!(md.contains("## The freeze"), "{md}");
    let freeze = std::fs::read_to_string(together.join("freeze.csv")).unwrap();
    for method in ["smartmixed", "softmix_freeze"] {
        assert!(freeze.contains(&format!(",{method},2,")), "{freeze}");
    }
    let output = smartmixed(&["plot", together.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for method in ["pau", "pau_neuron", "prelu", "swish_beta", "softmix"] {
        let figure = together.join(format!("figures/learned_{method}_mnist_widths_16-8.svg"));
        assert!(figure.is_file(), "{}", figure.display());
        // The numbers behind it: a line per hidden layer (PAU adds its start), or for the
        // soft mixture one per function over the layers.
        let data = std::fs::read_to_string(figure.with_extension("csv")).unwrap();
        let second = if method == "softmix" {
            "\nelu,2,"
        } else {
            "\nlayer 2,"
        };
        assert!(
            data.starts_with("line,x,y\n") && data.contains(second),
            "{data}"
        );
    }
    // Per layer, the quartiles of PReLU's slopes and Swish's betas, from the summaries.
    let learned_parameters = || {
        let path = together.join("figures/learned_parameters.csv");
        let mut reader = csv::Reader::from_path(path).unwrap();
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                let (q1, median, q3): (f64, f64, f64) = (
                    r[5].parse().unwrap(),
                    r[6].parse().unwrap(),
                    r[7].parse().unwrap(),
                );
                assert!(q1 <= median && median <= q3, "{r:?}");
                format!("{} {} {} {} {}", &r[0], &r[1], &r[2], &r[3], &r[4])
            })
            .collect::<Vec<_>>()
    };
    let expected = [
        "mnist widths 16-8 prelu 1 slopes 2",
        "mnist widths 16-8 prelu 2 slopes 2",
        "mnist widths 16-8 swish_beta 1 betas 2",
        "mnist widths 16-8 swish_beta 2 betas 2",
    ];
    assert_eq!(learned_parameters(), expected);
    // Without the checkpoints (results/ does not commit them) plot still draws the rest and
    // says which figures it left out.
    std::fs::remove_dir_all(together.join("figures")).unwrap();
    for r in &a {
        std::fs::remove_file(together.join("runs").join(&r.key).join("model.safetensors")).ok();
    }
    let output = smartmixed(&["plot", together.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no figure of what PReLU learned"),
        "{stderr}"
    );
    assert!(together
        .join("figures/learned_softmix_mnist_widths_16-8.svg")
        .is_file());
    assert!(!together
        .join("figures/learned_prelu_mnist_widths_16-8.svg")
        .exists());
    assert_eq!(learned_parameters(), expected);
    std::fs::remove_dir_all(&base).unwrap();
}

/// MNIST-1D's generator arguments as a grid axis: each variant is its own data (a split each,
/// runs of different variants never share a cohort), results.csv labels it, the runs of one
/// cohort equal those trained one at a time, and `compare` keeps the variants apart.
#[test]
fn mnist1d_variants_are_a_grid_axis() {
    let base = temp("mnist1d-axis");
    let config = base.join("variants.toml");
    std::fs::write(
        &config,
        r#"
name = "variants"
dataset = "mnist1d"
architectures = [[16]]
methods = ["relu", "gelu"]
seeds = [1]
preset = "mnist1d"
device = "cpu"

[overrides]
epochs = 2

[grid]
mnist1d = ["published", { final_seq_length = 24, num_samples = 1000 }]
"#,
    )
    .unwrap();
    let together = base.join("together");
    let log = sweep(&config, &together, &[]);
    assert!(log.contains("4 runs in the grid"), "{log}");
    assert!(log.contains("training in 2 cohorts"), "{log}");
    let all = rows(&together);
    let mut labels: Vec<(String, String, Option<usize>)> = all
        .iter()
        .map(|r| (r.mnist1d.clone(), r.method.clone(), r.n_params))
        .collect();
    labels.sort();
    // A 16-unit hidden layer on inputs of 24 or 40: (24 + 1) * 16 + 17 * 10 and (40 + 1) * 16 + ...
    assert_eq!(
        labels,
        [
            (
                "num_samples=1000,final_seq_length=24".into(),
                "gelu".into(),
                Some(570)
            ),
            (
                "num_samples=1000,final_seq_length=24".into(),
                "relu".into(),
                Some(570)
            ),
            ("published".into(), "gelu".into(), Some(826)),
            ("published".into(), "relu".into(), Some(826)),
        ]
    );
    let alone = base.join("alone");
    sweep(&config, &alone, &["--cohort-size", "1"]);
    assert_eq!(metrics(&rows(&alone)), metrics(&all));
    // Resumed: nothing left to run.
    let log = sweep(&config, &together, &[]);
    assert!(log.contains("0 to run"), "{log}");
    let output = smartmixed(&["compare", together.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = std::fs::read_to_string(together.join("comparison.md")).unwrap();
    assert!(
        table.contains("Cells: architecture x mnist1d")
            && table.contains("| num_samples=1000,final_seq_length=24 | relu |")
            && table.contains("| published | gelu |"),
        "{table}"
    );
    std::fs::remove_dir_all(base).unwrap();
}

/// Conv nets in a sweep: every method on LeNet-5 (the shipped MNIST subset) and on the MNIST-1D
/// CNN, in one cohort per net and one at a time to the same bits (cohorts of conv nets are for
/// GPUs; on the CPU they train alone by default); results.csv names the net, `compare` reports
/// it and its per-channel choices, and `plot` draws its share and learned-parameter figures.
#[test]
fn conv_nets_of_every_method_train_in_cohorts_and_reach_the_reports() {
    let base = temp("conv");
    let methods = r#"["relu", "elu", "smartmixed", "softmix", "softmix_freeze", "prelu", "swish_beta", "pau", "pau_neuron"]"#;
    for (name, dataset, net) in [
        ("lenet", "mnist", "lenet5"),
        ("cnn1d", "mnist1d", "mnist1d-cnn"),
    ] {
        let config = base.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
name = "{name}"
dataset = "{dataset}"
architectures = ["{net}"]
methods = {methods}
seeds = [1]
device = "cpu"

[overrides]
epochs = 2
phase1_epochs = 1
batch_size = 64
lr = 3e-3
"#
            ),
        )
        .unwrap();
        let (together, alone) = (
            base.join(format!("{name}-9")),
            base.join(format!("{name}-1")),
        );
        let log = sweep(&config, &together, &["--cohort-size", "9"]);
        assert!(log.contains("training in 1 cohorts of 9 models"), "{log}");
        let log = sweep(&config, &alone, &[]);
        assert!(
            !log.contains("cohorts"),
            "conv nets train alone by default: {log}"
        );
        let (a, b) = (rows(&together), rows(&alone));
        assert_eq!(a.len(), 9);
        assert!(a.iter().all(|r| r.status == "ok" && r.net == net), "{a:?}");
        assert_eq!(metrics(&a), metrics(&b));
        let output = smartmixed(&["compare", together.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let md = std::fs::read_to_string(together.join("comparison.md")).unwrap();
        assert!(md.contains(&format!("| {net} |")), "{md}");
        assert!(md.contains("## SmartMixed's functions per layer"), "{md}");
        let output = smartmixed(&["plot", together.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let figures: Vec<String> = std::fs::read_dir(together.join("figures"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        for method in ["prelu", "pau_neuron", "softmix"] {
            assert!(
                figures
                    .iter()
                    .any(|f| f.starts_with(&format!("learned_{method}_{dataset}_{net}"))),
                "{figures:?}"
            );
        }
        assert!(
            figures.iter().any(|f| f.starts_with("shares")),
            "{figures:?}"
        );
    }
    std::fs::remove_dir_all(base).unwrap();
}
