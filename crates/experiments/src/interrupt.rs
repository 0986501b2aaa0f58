//! Ctrl-C (SIGINT) and SIGTERM: the first asks the running training loop to stop at the next
//! batch (the run in progress is dropped, finished results stay); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Exit status after an interruption (128 + SIGINT, as shells report it).
pub const EXIT_CODE: u8 = 130;

/// Installs the handler; call once, early in `main`.
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(EXIT_CODE as i32);
        }
        eprintln!("\ninterrupt received: stopping after the current batch (again to exit at once)");
    });
    if let Err(e) = result {
        eprintln!("warning: cannot handle Ctrl-C gracefully: {e}");
    }
}

/// Whether an interruption was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error a training loop returns when it stops for an interruption.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}
