//! Records, for the sweep manifest, the compiler that built the binary and the candle version
//! the workspace locked.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SMARTMIXED_RUSTC_VERSION={version}");

    // Read at run time: a build script that cargo reuses from another checkout sharing the
    // target directory would otherwise read that checkout's lock file (or a deleted one).
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let lock = std::path::Path::new(&crate_dir).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let candle = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let at = text.find("name = \"candle-core\"")?;
            let rest = &text[at..];
            let line = rest.lines().find(|l| l.starts_with("version = "))?;
            Some(
                line.trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SMARTMIXED_CANDLE_VERSION={candle}");
    println!("cargo:rerun-if-changed=build.rs");
}
