//! SmartMixed experiments, in the order data flows (no module reaches back up the chain):
//!
//! - [`run`]: one training run: config → data → model → optim → train → files.
//! - [`grid`]: many runs: sweep configs and their grid, shards, resume; the results store.
//! - [`report`]: compare (statistics) and plot (figures) over the stored results.
//! - [`bench`]: timings of the ops and the training step.
//!
//! Beside them: [`device`] (choosing CPU, CUDA or Metal), [`error`] (input errors, exit 2),
//! [`interrupt`] (Ctrl-C keeps finished work), [`progress`] (what a run prints).

pub mod bench;
pub mod device;
pub mod error;
pub mod grid;
pub mod interrupt;
pub mod progress;
pub mod report;
pub mod run;
pub mod tensorboard;

/// This crate's directory, from cargo at run time: a test binary that cargo reuses from another
/// checkout sharing the target directory would otherwise read that checkout's files.
#[cfg(test)]
pub(crate) fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The git commit of the working directory, with `-dirty` when tracked files outside `results/`
/// have changes (results are what the tools write, not what they run: a second `make bench`
/// appending to `results/bench/cpu.csv` is still clean code); `None` outside a git checkout.
pub fn git_commit() -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = run(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":(top,exclude)results",
    ])
    .is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// Writes `text` to stdout; a closed pipe (`smartmixed ... | head`) is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
