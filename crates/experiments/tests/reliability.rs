//! What goes wrong: bad data files, bad flags, divergence, interruption (SIGINT, SIGKILL),
//! concurrent shards, reproducibility across thread counts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use experiments::grid::store::{ResultRow, ResultsStore};

mod common;
use common::{binary, mini_data as mini, run, temp_dir as temp};

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut out,
    )
    .unwrap();
    out
}

/// A copy of the mini data set, raw (decompressed), with `corrupt` applied to one file.
fn crafted(name: &str, file: &str, corrupt: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let dir = temp(name);
    let mut corrupt = Some(corrupt);
    for f in experiments::run::data::IDX_FILES {
        let mut bytes = gunzip(&mini().join(format!("{f}.gz")));
        if f == file {
            (corrupt.take().unwrap())(&mut bytes);
        }
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    dir
}

fn assert_input_error(output: &Output, needles: &[&str], what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what}: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{what}: '{n}' not in: {stderr}");
    }
}

/// Changes made to one file's bytes.
type Corruption = Box<dyn FnOnce(&mut Vec<u8>)>;

#[test]
fn bad_data_files_are_named_with_what_is_wrong() {
    let images = "train-images-idx3-ubyte";
    let labels = "train-labels-idx1-ubyte";
    let cases: Vec<(&str, &str, Corruption, &str)> = vec![
        (
            "magic",
            images,
            Box::new(|b| b[3] = 0x01),
            "wrong magic number",
        ),
        (
            "truncated-images",
            images,
            Box::new(|b| b.truncate(b.len() - 100)),
            "truncated",
        ),
        (
            "truncated-labels",
            labels,
            Box::new(|b| b.truncate(b.len() - 1)),
            "truncated",
        ),
        (
            "label-range",
            labels,
            Box::new(|b| b[8 + 17] = 12),
            "label 12 at index 17",
        ),
        ("dims", images, Box::new(|b| b[11] = 32), "32x28"),
        (
            "count-mismatch",
            labels,
            Box::new(|b| {
                b.truncate(b.len() - 10);
                b[4..8].copy_from_slice(&1990u32.to_be_bytes());
            }),
            "1990 labels",
        ),
    ];
    for (name, file, corrupt, needle) in cases {
        let dir = crafted(name, file, corrupt);
        let out = run(&[
            "train",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            dir.join("out").to_str().unwrap(),
        ]);
        assert_input_error(&out, &[needle, "train-"], name);
        assert!(
            !dir.join("out").exists(),
            "{name}: nothing may be written before the data are checked"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
    // A corrupt gzip stream and a missing file.
    let dir = crafted("gzip", "", |_| {});
    std::fs::remove_file(dir.join(labels)).unwrap();
    std::fs::write(
        dir.join(format!("{labels}.gz")),
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
    )
    .unwrap();
    let out = run(&[
        "train",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_input_error(
        &out,
        &["corrupt gzip", "train-labels-idx1-ubyte.gz"],
        "gzip",
    );
    std::fs::remove_file(dir.join(format!("{labels}.gz"))).unwrap();
    let out = run(&[
        "train",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_input_error(&out, &["missing data file", labels], "missing");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_flags_and_config_keys_are_named() {
    let dir = temp("flags");
    let data = mini();
    let out_dir = dir.join("out");
    let base = [
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let config = dir.join("run.toml");
    std::fs::write(&config, "epochs = 3\nlearning_rate = 0.1\n").unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--method", "swish"],
            vec![
                "unknown method 'swish'",
                "relu, sigmoid, tanh, leaky_relu, elu, selu, gelu, silu, mish, softplus, identity, smartmixed",
            ],
        ),
        (vec!["--widths", "64,0"], vec!["width 0"]),
        (vec!["--tau", "0"], vec!["--tau"]),
        (vec!["--lr", "nan"], vec!["--lr"]),
        (vec!["--batch-size", "0"], vec!["--batch-size"]),
        (
            vec!["--epochs", "5", "--phase1-epochs", "7"],
            vec!["--phase1-epochs"],
        ),
        (
            vec!["--device", "metal"],
            vec!["--device metal", "without GPU support"],
        ),
        (vec!["--device", "tpu"], vec!["--device must be"]),
        (
            vec!["--config", config.to_str().unwrap()],
            vec!["run.toml", "learning_rate"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        assert_input_error(&run(&args), &needles, &format!("{extra:?}"));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_gets_its_status_and_no_metrics() {
    let dir = temp("diverge");
    let data = mini();
    let out = dir.join("out");
    let output = run(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--method",
        "relu",
        "--widths",
        "32",
        "--epochs",
        "3",
        "--lr",
        "1e30",
        "--grad-clip",
        "none",
        "--quiet",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "diverged");
    assert_eq!(summary["diverged_epoch"], 1);
    assert!(summary["test_acc"].is_null() && summary["val_loss"].is_null());
    // TensorBoard: one file, whose session ends in failure.
    let statuses = common::board_statuses(&out);
    assert_eq!(statuses.into_values().collect::<Vec<_>>(), [vec![2]]);
    std::fs::remove_dir_all(dir).unwrap();
}

const GRID: &str = r#"
name = "reliability"
dataset = "mnist"
architectures = [[24], [24, 12], [16, 16, 8]]
methods = ["relu", "tanh", "smartmixed"]
seeds = [1, 2]
device = "cpu"

[overrides]
epochs = 3
phase1_epochs = 1
batch_size = 32
"#;

fn sweep_command(config: &Path, out: &Path, shard: Option<&str>) -> Command {
    let mut c = binary();
    c.args([
        "sweep",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .env("SMARTMIXED_DATA_DIR", mini())
    .env("RAYON_NUM_THREADS", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    c
}

/// Every line of results.csv parses and no key repeats.
fn checked_rows(dir: &Path) -> Vec<ResultRow> {
    let rows = ResultsStore::open(dir)
        .unwrap()
        .results()
        .expect("results.csv parses: no torn row");
    let mut keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), before, "duplicate rows");
    rows
}

fn metrics(rows: &[ResultRow]) -> Vec<(String, Option<f64>, Option<f64>, String)> {
    let mut m: Vec<_> = rows
        .iter()
        .map(|r| (r.key.clone(), r.test_acc, r.val_loss, r.status.clone()))
        .collect();
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m
}

#[test]
fn killed_sweeps_resume_without_duplicates_or_torn_rows() {
    let dir = temp("kill");
    let config = dir.join("grid.toml");
    std::fs::write(&config, GRID).unwrap();
    let reference = dir.join("reference");
    assert!(sweep_command(&config, &reference, None)
        .status()
        .unwrap()
        .success());
    let expected = metrics(&checked_rows(&reference));
    assert_eq!(expected.len(), 18);

    // SIGKILL at several points (pseudo-random delays from the clock), checking the files after
    // each kill, then a final run to completion.
    let out = dir.join("killed");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for i in 0..4u64 {
        let delay = 150 + (nanos / (i + 1)) % 700;
        let mut child = sweep_command(&config, &out, None).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        checked_rows(&out);
    }
    assert!(sweep_command(&config, &out, None)
        .status()
        .unwrap()
        .success());
    assert_eq!(
        metrics(&checked_rows(&out)),
        expected,
        "resumed sweep equals an uninterrupted one"
    );
    // TensorBoard: one whole file per run, each ended in success (killed attempts' files gone).
    let statuses = common::board_statuses(&out.join("tensorboard"));
    assert_eq!(statuses.len(), 18);
    assert!(statuses.values().all(|s| s == &[1]), "{statuses:?}");

    // Two shard processes at once into one directory.
    let shared = dir.join("shared");
    let mut a = sweep_command(&config, &shared, Some("1/2"))
        .spawn()
        .unwrap();
    let mut b = sweep_command(&config, &shared, Some("2/2"))
        .spawn()
        .unwrap();
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    assert_eq!(metrics(&checked_rows(&shared)), expected);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sigint_stops_a_sweep_cleanly_and_says_how_to_resume() {
    let dir = temp("sigint");
    let config = dir.join("grid.toml");
    std::fs::write(&config, GRID.replace("epochs = 3", "epochs = 40")).unwrap();
    let out = dir.join("out");
    let child = sweep_command(&config, &out, None).spawn().unwrap();
    // Wait for the first finished row, then interrupt.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ResultsStore::open(&out)
        .unwrap()
        .results()
        .map_or(true, |r| r.is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "no run finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command again to resume"),
        "{stderr}"
    );
    let rows = checked_rows(&out);
    assert!(!rows.is_empty() && rows.len() < 18);
    assert!(
        rows.iter().all(|r| r.status == "ok"),
        "the interrupted run is not recorded"
    );
    // TensorBoard: the recorded runs' sessions succeeded; those of the interrupted cohort (if
    // one had started) end with the status unknown.
    let statuses = common::board_statuses(&out.join("tensorboard"));
    let ended: Vec<i32> = statuses.values().flatten().copied().collect();
    assert_eq!(ended.iter().filter(|&&s| s == 1).count(), rows.len());
    assert!(ended.iter().all(|&s| s == 1 || s == 0), "{statuses:?}");
    let _ = std::io::stderr().flush();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_are_reproducible_across_thread_counts() {
    let dir = temp("threads");
    let data = mini();
    let summaries: Vec<serde_json::Value> = ["1", "2"]
        .iter()
        .map(|threads| {
            let out = dir.join(format!("t{threads}"));
            let output = binary()
                .args([
                    "train",
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--quiet",
                ])
                .args([
                    "--widths",
                    "48,24",
                    "--epochs",
                    "3",
                    "--phase1-epochs",
                    "1",
                    "--batch-size",
                    "64",
                ])
                .env("RAYON_NUM_THREADS", threads)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap()
        })
        .collect();
    for key in [
        "test_acc",
        "val_acc",
        "val_loss",
        "best_epoch",
        "phase1_test_acc",
        "layer_shares",
    ] {
        assert_eq!(
            summaries[0][key], summaries[1][key],
            "{key} differs between 1 and 2 threads"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
