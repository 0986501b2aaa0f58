//! SmartMixed experiments: configuration, data, model, the training loop and its records.
//!
//! Data flows one way: [`config`] → [`data`] → [`model`] → [`train`] → [`run_files`] /
//! [`store`] (via [`sweep`]) → [`compare`].

pub mod arch;
pub mod bench;
pub mod compare;
pub mod config;
pub mod cpu_ops;
pub mod data;
pub mod device;
pub mod error;
pub mod interrupt;
pub mod model;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod run_files;
pub mod store;
pub mod sweep;
pub mod train;

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
