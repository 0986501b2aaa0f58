//! The GPU kernel sources and the one list of their entry points.
//!
//! `kernels/mixed_act.cu` (CUDA, compiled at run time with NVRTC) and `kernels/mixed_act.metal`
//! (MSL, compiled at run time by Metal) hold the same five kernels. [`KERNELS`] names each
//! with the number of arguments the host passes; the launch code in `cuda.rs` and `metal.rs`
//! checks its own argument count against it on every launch, and the tests below check it
//! against both sources, so a kernel renamed or given another argument on one side only fails
//! `make test` instead of failing on a user's GPU.

// Each GPU feature reads part of this, the tests all of it.
#![cfg_attr(not(all(feature = "cuda", feature = "metal")), allow(dead_code))]

/// CUDA C++ source of every kernel.
pub(crate) const CUDA_SOURCE: &str = include_str!("kernels/mixed_act.cu");
/// Metal Shading Language source of the same kernels.
pub(crate) const METAL_SOURCE: &str = include_str!("kernels/mixed_act.metal");

/// One kernel: its base name (the entry point appends the element type, as in
/// `mixture_fwd_f32`) and how many arguments the host passes (buffers and scalars; Metal's
/// thread-position arguments are not passed by the host and not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kernel {
    pub name: &'static str,
    pub args: usize,
}

impl Kernel {
    /// The entry point for one element type (`"f32"`, `"f64"`).
    pub fn entry(self, dtype: &str) -> String {
        format!("{}_{dtype}", self.name)
    }
}

/// `(x, ids, y, rows, cols)`.
pub(crate) const PER_NEURON_FWD: Kernel = Kernel {
    name: "per_neuron_fwd",
    args: 5,
};
/// `(x, ids, grad_y, grad_x, rows, cols)`.
pub(crate) const PER_NEURON_GRAD_X: Kernel = Kernel {
    name: "per_neuron_grad_x",
    args: 6,
};
/// `(x, w, y, limit, rows, cols)`.
pub(crate) const MIXTURE_FWD: Kernel = Kernel {
    name: "mixture_fwd",
    args: 6,
};
/// `(x, w, grad_y, grad_x, limit, rows, cols)`.
pub(crate) const MIXTURE_GRAD_X: Kernel = Kernel {
    name: "mixture_grad_x",
    args: 7,
};
/// `(x, w, grad_y, grad_w, limit, rows, cols)`.
pub(crate) const MIXTURE_GRAD_W: Kernel = Kernel {
    name: "mixture_grad_w",
    args: 7,
};

/// Every kernel, in source order.
pub(crate) const KERNELS: [Kernel; 5] = [
    PER_NEURON_FWD,
    PER_NEURON_GRAD_X,
    MIXTURE_FWD,
    MIXTURE_GRAD_X,
    MIXTURE_GRAD_W,
];

/// Element types with CUDA entry points.
pub(crate) const CUDA_DTYPES: [&str; 2] = ["f32", "f64"];
/// Element types with Metal entry points (Metal has no f64).
pub(crate) const METAL_DTYPES: [&str; 1] = ["f32"];

/// grad-w launch geometry: a block (threadgroup) of `GRAD_W_COLS x GRAD_W_ROW_GROUPS` threads
/// per `GRAD_W_COLS` neurons. Both sources `#define` the same values (tested below).
pub(crate) const GRAD_W_COLS: u32 = 32;
pub(crate) const GRAD_W_ROW_GROUPS: u32 = 16;

/// Threads per block for the element-wise kernels.
pub(crate) const ELEMENTWISE_THREADS: u32 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, parameter list)` of every entry point: in CUDA the functions after
    /// `extern "C" __global__ void`, in Metal after `kernel void`.
    fn entry_points<'a>(source: &'a str, marker: &str) -> Vec<(&'a str, &'a str)> {
        source
            .match_indices(marker)
            .map(|(at, _)| {
                let rest = &source[at + marker.len()..];
                let open = rest.find('(').expect("entry point without '('");
                // The list ends at the ')' that balances the first '('.
                let mut depth = 0;
                let close = rest[open..]
                    .char_indices()
                    .find_map(|(i, ch)| {
                        depth += match ch {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        (depth == 0).then_some(open + i)
                    })
                    .expect("entry point without a closing ')'");
                (rest[..open].trim(), &rest[open + 1..close])
            })
            .collect()
    }

    /// Top-level comma-separated parameters of a parameter list.
    fn parameters(list: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, ch) in list.char_indices() {
            match ch {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(list[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(list[start..].trim());
        out
    }

    fn expected_entries(dtypes: &[&str]) -> Vec<(String, usize)> {
        KERNELS
            .iter()
            .flat_map(|k| dtypes.iter().map(move |d| (k.entry(d), k.args)))
            .collect()
    }

    #[test]
    fn cuda_source_has_exactly_the_listed_kernels_with_their_argument_counts() {
        let found: Vec<(String, usize)> = entry_points(CUDA_SOURCE, "extern \"C\" __global__ void")
            .into_iter()
            .map(|(name, list)| (name.to_string(), parameters(list).len()))
            .collect();
        assert_eq!(found, expected_entries(&CUDA_DTYPES));
    }

    #[test]
    fn metal_source_has_exactly_the_listed_kernels_with_their_buffer_counts() {
        let found: Vec<(String, usize)> = entry_points(METAL_SOURCE, "\nkernel void")
            .into_iter()
            .map(|(name, list)| {
                // Host-bound parameters carry [[buffer(i)]], numbered 0, 1, ... in order.
                let buffers: Vec<&str> = parameters(list)
                    .into_iter()
                    .filter(|p| p.contains("[[buffer("))
                    .collect();
                for (i, p) in buffers.iter().enumerate() {
                    assert!(
                        p.contains(&format!("[[buffer({i})]]")),
                        "{name}: parameter {i} is bound as {p}"
                    );
                }
                (name.to_string(), buffers.len())
            })
            .collect();
        assert_eq!(found, expected_entries(&METAL_DTYPES));
    }

    #[test]
    fn both_sources_use_the_hosts_grad_w_geometry_and_constants() {
        for (source, file) in [
            (CUDA_SOURCE, "mixed_act.cu"),
            (METAL_SOURCE, "mixed_act.metal"),
        ] {
            for (name, value) in [
                ("GRAD_W_COLS", GRAD_W_COLS.to_string()),
                ("GRAD_W_ROW_GROUPS", GRAD_W_ROW_GROUPS.to_string()),
                ("ACT_COUNT", crate::Activation::COUNT.to_string()),
            ] {
                let line = format!("#define {name} {value}\n");
                assert!(source.contains(&line), "{file} lacks `{}`", line.trim());
            }
            // The formulas' constants, as written in activation.rs (Metal's carry an f suffix).
            for (name, value) in [
                ("LEAKY_RELU_SLOPE", crate::LEAKY_RELU_SLOPE),
                ("SELU_ALPHA", crate::SELU_ALPHA),
                ("SELU_LAMBDA", crate::SELU_LAMBDA),
                ("ELU_ALPHA", crate::ELU_ALPHA),
            ] {
                let prefix = format!("#define {name} ");
                let at = source.find(&prefix).expect(&prefix) + prefix.len();
                let text = source[at..].lines().next().unwrap().trim_end_matches('f');
                assert_eq!(text.parse::<f64>().unwrap(), value, "{file}: {name}");
            }
        }
    }

    #[test]
    fn the_checks_above_see_a_renamed_or_widened_kernel() {
        // A kernel renamed in one source, or given one more argument, must not pass.
        let renamed = CUDA_SOURCE.replace("void mixture_fwd_f32(", "void mixture_forward_f32(");
        let names: Vec<&str> = entry_points(&renamed, "extern \"C\" __global__ void")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!names.contains(&"mixture_fwd_f32"));
        let widened = METAL_SOURCE.replace(
            "constant uint& cols [[buffer(4)]],",
            "constant uint& cols [[buffer(4)]],\n constant uint& extra [[buffer(5)]],",
        );
        let (_, list) = entry_points(&widened, "\nkernel void")[0];
        assert_eq!(parameters(list).len(), 7);
    }
}
