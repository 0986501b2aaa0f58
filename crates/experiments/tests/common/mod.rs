//! Helpers shared by the integration tests that run the `smartmixed` binary.
// Each test file uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// This crate's directory, from cargo at run time: a test binary that cargo reuses from another
/// checkout sharing the target directory would otherwise read that checkout's files.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The 2,000 + 500 real MNIST images shipped for the tests.
pub fn mini_data() -> PathBuf {
    crate_dir().join("tests/data/mnist-mini")
}

/// An empty directory of this test process, named after the test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smartmixed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary under test, without the user's SMARTMIXED_DATA_DIR.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smartmixed"));
    command.env_remove("SMARTMIXED_DATA_DIR");
    command
}

/// `smartmixed sweep --config CONFIG --out OUT`, for a test to add its own flags and run.
pub fn sweep_command(config: &std::path::Path, out: &std::path::Path) -> Command {
    let mut command = binary();
    command
        .args(["sweep", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out);
    command
}

/// Runs the binary with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    binary()
        .args(args)
        .output()
        .expect("the smartmixed binary runs")
}

/// Runs the binary, asserts that it succeeded (showing its stderr if not) and returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Per run directory under a TensorBoard log directory (relative to it): the session-end
/// status of each of its event files (every record read and checked: none is torn). 1 is
/// success, 2 failure, 0 a run that stopped before its end; -1 a file without a session end.
pub fn board_statuses(log_dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, Vec<i32>> {
    use experiments::tensorboard::proto::{EventWhat, HParamsData, HParamsPluginData};
    use prost::Message;
    let mut out: std::collections::BTreeMap<PathBuf, Vec<i32>> = Default::default();
    for (dir, paths) in event_files(log_dir) {
        for path in paths {
            let events = experiments::tensorboard::read_events(&path).unwrap();
            let status = events
                .last()
                .and_then(|e| match &e.what {
                    Some(EventWhat::Summary(s)) => s.value.first(),
                    _ => None,
                })
                .and_then(|v| v.metadata.as_ref()?.plugin_data.as_ref())
                .and_then(|p| HParamsPluginData::decode(p.content.as_slice()).ok()?.data)
                .map_or(-1, |d| match d {
                    HParamsData::SessionEndInfo(end) => end.status,
                    _ => -1,
                });
            out.entry(dir.clone()).or_default().push(status);
        }
    }
    out
}

/// The TensorBoard event files under `dir`, by their directory relative to it.
pub fn event_files(dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, Vec<PathBuf>> {
    let mut out: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains("tfevents") {
                let rel = d.strip_prefix(dir).unwrap().to_path_buf();
                out.entry(rel).or_default().push(path);
            }
        }
    }
    out
}
