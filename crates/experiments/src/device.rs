//! Choosing the device a run uses.

use anyhow::Result;
use candle_core::Device;

use crate::bail_input;
use crate::run::config::DeviceChoice;

/// The GPU back ends this binary was built with.
pub fn features() -> Vec<&'static str> {
    let mut f = Vec::new();
    if cfg!(feature = "cuda") {
        f.push("cuda");
    }
    if cfg!(feature = "metal") {
        f.push("metal");
    }
    f
}

/// The kernel family gemm runs this binary's CPU matrix products with, chosen as gemm 0.19
/// chooses it at run time: AVX-512 where built in (the `avx512` feature) and the CPU has
/// avx512f, else AVX2+FMA where the CPU has fma, else its portable kernels. Bits depend on it
/// (docs/reproducibility.md), so every run records it.
pub fn matmul_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "avx2-fma";
        }
        "scalar"
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return "neon";
        }
        "scalar"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    "scalar"
}

/// The CPU's vector instruction sets that decide which kernels run (gemm's and our fused ops'
/// run-time choices), e.g. `avx2 fma avx512f avx512bw avx512dq avx512vl`.
pub fn cpu_simd() -> String {
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($name:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($name) {
                    found.push($name);
                })*
            };
        }
        probe!("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl");
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        found.push("neon");
    }
    found.join(" ")
}

fn built_in() -> String {
    match features().as_slice() {
        [] => "this binary was built without GPU support (build with --features cuda or --features metal)".into(),
        f => format!("this binary was built with: {}", f.join(", ")),
    }
}

/// The device for `choice`, and its name for the run's records. `auto` takes CUDA, then Metal,
/// when built in and present, else the CPU; when this binary has a GPU back end but no GPU
/// answers, it says so on stderr (a silent CPU run would look like a slow GPU).
pub fn select(choice: DeviceChoice) -> Result<(Device, String)> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceChoice::Auto => {
            let mut tried = Vec::new();
            if cfg!(feature = "cuda") {
                match Device::new_cuda(0) {
                    Ok(d) => return Ok((d, "cuda:0".into())),
                    Err(e) => tried.push(format!("CUDA: {}", first_line(&e.to_string()))),
                }
            }
            if cfg!(feature = "metal") {
                match Device::new_metal(0) {
                    Ok(d) => return Ok((d, "metal".into())),
                    Err(e) => tried.push(format!("Metal: {}", first_line(&e.to_string()))),
                }
            }
            if !tried.is_empty() {
                eprintln!(
                    "note: --device auto: no GPU answered ({}); running on the CPU",
                    tried.join("; ")
                );
            }
            Ok((Device::Cpu, "cpu".into()))
        }
        DeviceChoice::Cuda(n) => {
            if !cfg!(feature = "cuda") {
                bail_input!("--device cuda:{n}: {}", built_in());
            }
            match Device::new_cuda(n) {
                Ok(d) => Ok((d, format!("cuda:{n}"))),
                Err(e) => bail_input!(
                    "--device cuda:{n}: no usable CUDA device ({}); check `nvidia-smi`, or use \
                     --device auto to fall back to the CPU",
                    first_line(&e.to_string())
                ),
            }
        }
        DeviceChoice::Metal => {
            if !cfg!(feature = "metal") {
                bail_input!("--device metal: {}", built_in());
            }
            match Device::new_metal(0) {
                Ok(d) => Ok((d, "metal".into())),
                Err(e) => bail_input!("--device metal: no Metal device ({e})"),
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}
