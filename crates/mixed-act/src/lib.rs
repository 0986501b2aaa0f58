//! Fused per-neuron activation ops for SmartMixed, as candle custom ops.
//!
//! SmartMixed lets every hidden neuron learn its own activation function from a [`Pool`] of
//! candidates ([`Activation`]: the paper's six by default, plus GELU, SiLU, Mish, Softplus and
//! the identity), in two phases:
//!
//! * **Phase 1, selection** ([`SelectionLayer`]): each neuron holds logits over the pool and uses
//!   a straight-through Gumbel-softmax sample ([`gumbel`]) to pick one function per forward pass;
//!   the layer's output is the hard mixture [`mixture`], whose backward pass reaches the logits.
//! * **Phase 2, fixed** ([`FixedLayer`], made by [`freeze`]): each neuron applies its chosen
//!   function through [`per_neuron`], which costs what a single activation costs.
//!
//! Each op is one fused pass over the data, forward and backward, with a slow reference built
//! from candle's own ops beside it ([`per_neuron_slow`], [`mixture_slow`]) that the tests compare
//! against. Layout: `activation.rs` defines the candidates (the one place each formula lives),
//! `pool.rs` the pools they form;
//! `learnable.rs` the activations with learnable parameters that SmartMixed is compared with
//! (PReLU, Swish-beta, PAU: formulas, fused CPU ops, candle-op references);
//! `per_neuron.rs` and `mixture.rs` hold the ops with their CPU kernels (`cpu.rs`: strided views
//! and row-parallel drivers; `fastmath.rs`: vectorisable f32 exp/tanh; `lanes.rs`: the
//! branch-free form for scattered neurons); the GPU kernels are `kernels/mixed_act.cu` and
//! `kernels/mixed_act.metal`, listed in `kernels.rs` and launched by `cuda.rs` / `metal.rs`
//! behind the `cuda` and `metal` features.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use mixed_act::{freeze, per_neuron, Activation, Selection, SelectionLayer};
//! use rand::SeedableRng;
//!
//! # fn main() -> candle_core::Result<()> {
//! let device = Device::Cpu;
//! let x = Tensor::new(&[[-1f32, 0.5, 2.0], [3.0, -0.25, -4.0]], &device)?;
//!
//! // Phase 2 directly: neuron 0 uses relu, neuron 1 tanh, neuron 2 selu.
//! let ids = Tensor::new(&[0u32, 2, 5], &device)?;
//! let y = per_neuron(&x, &ids)?;
//! assert_eq!(y.to_vec2::<f32>()?[0][0], 0.0);
//!
//! // Phase 1: a selection layer samples one function per neuron, and freezing keeps the argmax.
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
//! let layer = SelectionLayer::new(3, 0.3, Some(10.0), &device, &mut rng)?;
//! let h = layer.forward(&x, Selection::Sample, &mut rng)?;
//! assert_eq!(h.dims(), &[2, 3]);
//! let fixed = freeze(&layer)?;
//! println!("functions per neuron: {:?}", fixed.activations());
//! assert_eq!(fixed.counts().iter().sum::<usize>(), 3);
//! # Ok(())
//! # }
//! ```

/// Compiles the function it wraps for AVX-512 and for AVX2 + FMA as well as the baseline target,
/// and picks one at run time (`multiversion`): the loops vectorise on CPUs that have the wider
/// units while the binary still runs everywhere. The same Rust source in every variant, so the
/// same results. The one list of targets for the workspace's CPU kernels; the using crate needs
/// `multiversion` as a dependency.
#[doc(hidden)]
#[macro_export]
macro_rules! simd_variants {
    ($item:item) => {
        #[multiversion::multiversion(targets(
            "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
            "x86_64+avx2+fma"
        ))]
        $item
    };
}

mod activation;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod fastmath;
pub mod gumbel;
mod kernels;
mod lanes;
mod layers;
mod learnable;
#[cfg(feature = "metal")]
mod metal;
mod mixture;
mod per_neuron;
mod pool;

pub use activation::{
    Activation, ActivationError, Real, ELU_ALPHA, LEAKY_RELU_SLOPE, SELU_ALPHA, SELU_LAMBDA,
    SOFTPLUS_THRESHOLD,
};
#[cfg(feature = "cuda")]
pub use cuda::cuda_ptx;
#[doc(hidden)]
pub use kernels::elementwise_geometry;
pub use layers::{
    count_activations, freeze, FixedLayer, Selection, SelectionLayer, INITIAL_PREFERENCE,
};
pub use learnable::{
    learnable, learnable_grads, learnable_slow, pau, pau_slow, prelu, prelu_slow, swish_beta,
    swish_beta_slow, Learnable, PAU_DENOMINATOR, PAU_LEAKY_RELU_INIT, PAU_NUMERATOR,
};
pub use mixture::{mixture, mixture_grads, mixture_slow};
pub use per_neuron::{
    activation_slow, per_neuron, per_neuron_grad, per_neuron_slow, per_neuron_with_slope,
};
pub use pool::{Pool, PoolError};
