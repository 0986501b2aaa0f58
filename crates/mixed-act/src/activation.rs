//! The pool of candidate activation functions: the one place where each formula and its
//! derivative is written down. Every kernel (CPU now, CUDA and Metal sources later) follows these
//! definitions, and the tests compare the kernels against them.

use std::fmt;
use std::str::FromStr;

/// Scalar type the formulas are evaluated in: `f32` or `f64` (half types are widened to `f32`).
///
/// The transcendental functions are this trait's own: for `f32` they are branch-free
/// polynomials (`fastmath`, error bounds tested there) that vectorise, for `f64` the standard
/// library's.
pub trait Real: num_traits::Float + Send + Sync + 'static {
    /// Converts an `f64` constant to this type (rounding to nearest for `f32`).
    fn constant(v: f64) -> Self;
    /// e^x.
    fn exponential(self) -> Self;
    /// e^x - 1, accurate near 0.
    fn exp_minus_one(self) -> Self;
    /// tanh x.
    fn hyperbolic_tangent(self) -> Self;
    /// `(e^x, e^x - 1)` for x <= 0 (not for positive x), the second accurate near 0, from one
    /// exponential where possible.
    fn exponential_pair(self) -> (Self, Self);
}

impl Real for f32 {
    #[inline(always)]
    fn constant(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn exponential(self) -> Self {
        crate::fastmath::exp(self)
    }
    #[inline(always)]
    fn exp_minus_one(self) -> Self {
        crate::fastmath::exp_m1(self)
    }
    #[inline(always)]
    fn hyperbolic_tangent(self) -> Self {
        crate::fastmath::tanh(self)
    }
    #[inline(always)]
    fn exponential_pair(self) -> (Self, Self) {
        crate::fastmath::exp_and_exp_m1(self)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn constant(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn exponential(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn exp_minus_one(self) -> Self {
        self.exp_m1()
    }
    #[inline(always)]
    fn hyperbolic_tangent(self) -> Self {
        self.tanh()
    }
    #[inline(always)]
    fn exponential_pair(self) -> (Self, Self) {
        (self.exp(), self.exp_m1())
    }
}

/// Expands `$body` once per activation with `$a` bound to a constant, so that inside each copy
/// the `match` in [`Activation::value`] and [`Activation::derivative`] folds away and the inner
/// loop is specialised for one function (the per-neuron choice is hoisted out of the loop).
macro_rules! specialise {
    ($act:expr, |$a:ident| $body:expr) => {
        match $act {
            $crate::Activation::Relu => {
                let $a = $crate::Activation::Relu;
                $body
            }
            $crate::Activation::Sigmoid => {
                let $a = $crate::Activation::Sigmoid;
                $body
            }
            $crate::Activation::Tanh => {
                let $a = $crate::Activation::Tanh;
                $body
            }
            $crate::Activation::LeakyRelu => {
                let $a = $crate::Activation::LeakyRelu;
                $body
            }
            $crate::Activation::Elu => {
                let $a = $crate::Activation::Elu;
                $body
            }
            $crate::Activation::Selu => {
                let $a = $crate::Activation::Selu;
                $body
            }
        }
    };
}
pub(crate) use specialise;

/// Slope of leaky ReLU for negative inputs (PyTorch's default).
pub const LEAKY_RELU_SLOPE: f64 = 0.01;
/// ELU's alpha.
pub const ELU_ALPHA: f64 = 1.0;
/// SELU's alpha (Klambauer et al. 2017, as in PyTorch).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_2;
/// SELU's lambda (scale).
pub const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;

/// One candidate activation. The discriminant is the stable id used in tensors, files and CSV
/// columns, and its order fixes argmax tie-breaking (ties go to the lowest id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Activation {
    Relu = 0,
    Sigmoid = 1,
    Tanh = 2,
    LeakyRelu = 3,
    Elu = 4,
    Selu = 5,
}

/// Error for an activation name or id that is not in the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("unknown activation '{0}' (valid: relu, sigmoid, tanh, leaky_relu, elu, selu)")]
    UnknownName(String),
    #[error("activation id {0} is out of range (valid ids are 0..=5)")]
    UnknownId(u64),
}

impl Activation {
    /// Number of candidates in the pool.
    pub const COUNT: usize = 6;

    /// Every candidate, in id order.
    pub const ALL: [Activation; Activation::COUNT] = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Selu,
    ];

    /// The stable id, 0..=5.
    pub fn id(self) -> usize {
        self as usize
    }

    /// The activation with the given id.
    pub fn from_id(id: u64) -> Result<Self, ActivationError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or(ActivationError::UnknownId(id))
    }

    /// Canonical name, as printed in files and accepted on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Elu => "elu",
            Activation::Selu => "selu",
        }
    }

    /// `f(x)`.
    ///
    /// Written branch-free (both sides computed, then selected), so that loops over a slice
    /// vectorise, and so that the tails are exact limits rather than NaN: sigmoid only forms
    /// `exp(-|x|)`, ELU and SELU use `exp(min(x, 0)) - 1` in its accurate form. NaN gives NaN
    /// for every function.
    #[inline(always)]
    pub fn value<F: Real>(self, x: F) -> F {
        let zero = F::zero();
        let positive = x > zero;
        match self {
            Activation::Relu => {
                // NaN stays NaN (as in PyTorch), so that a diverging run stays visible.
                if positive || x.is_nan() {
                    x
                } else {
                    zero
                }
            }
            Activation::Sigmoid => {
                let e = (-x.abs()).exponential();
                let r = F::one() / (F::one() + e);
                if x >= zero {
                    r
                } else {
                    e * r
                }
            }
            Activation::Tanh => x.hyperbolic_tangent(),
            Activation::LeakyRelu => {
                let negative = F::constant(LEAKY_RELU_SLOPE) * x;
                if positive {
                    x
                } else {
                    negative
                }
            }
            Activation::Elu => {
                let negative = F::constant(ELU_ALPHA) * x.min(zero).exp_minus_one();
                // `min` drops NaN; keep it, so that a diverging run stays visibly NaN.
                if positive || x.is_nan() {
                    x
                } else {
                    negative
                }
            }
            Activation::Selu => {
                let negative = F::constant(SELU_LAMBDA * SELU_ALPHA) * x.min(zero).exp_minus_one();
                let linear = F::constant(SELU_LAMBDA) * x;
                if positive || x.is_nan() {
                    linear
                } else {
                    negative
                }
            }
        }
    }

    /// `f'(x)`. At the kinks (x = 0) this follows PyTorch: the left-hand derivative, so
    /// relu'(0) = 0, leaky_relu'(0) = 0.01, elu'(0) = alpha, selu'(0) = lambda * alpha.
    #[inline(always)]
    pub fn derivative<F: Real>(self, x: F) -> F {
        let zero = F::zero();
        let positive = x > zero;
        match self {
            Activation::Relu => {
                if positive {
                    F::one()
                } else {
                    zero
                }
            }
            Activation::Sigmoid => {
                let s = Activation::Sigmoid.value(x);
                s * (F::one() - s)
            }
            Activation::Tanh => {
                let t = x.hyperbolic_tangent();
                F::one() - t * t
            }
            Activation::LeakyRelu => {
                if positive {
                    F::one()
                } else {
                    F::constant(LEAKY_RELU_SLOPE)
                }
            }
            Activation::Elu => {
                let negative = F::constant(ELU_ALPHA) * x.min(zero).exponential();
                if positive {
                    F::one()
                } else {
                    negative
                }
            }
            Activation::Selu => {
                let negative = F::constant(SELU_LAMBDA * SELU_ALPHA) * x.min(zero).exponential();
                if positive {
                    F::constant(SELU_LAMBDA)
                } else {
                    negative
                }
            }
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = ActivationError;

    /// Accepts the canonical names case-insensitively, with `-` for `_` and without separators,
    /// so "leaky_relu", "leaky-relu" and "LeakyReLU" all parse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .trim()
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        Self::ALL
            .into_iter()
            .find(|a| a.name().replace('_', "") == key)
            .ok_or_else(|| ActivationError::UnknownName(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
            assert_eq!(Activation::from_id(a.id() as u64).unwrap(), a);
        }
        for alias in ["leaky-relu", "LeakyReLU", "leaky_relu", " LEAKY_RELU "] {
            assert_eq!(alias.parse::<Activation>().unwrap(), Activation::LeakyRelu);
        }
        assert_eq!("ReLU".parse::<Activation>().unwrap(), Activation::Relu);
        let err = "swish".parse::<Activation>().unwrap_err().to_string();
        assert!(err.contains("swish") && err.contains("leaky_relu"), "{err}");
        assert!(Activation::from_id(6).is_err());
    }

    #[test]
    fn ids_follow_the_pool_order() {
        let names: Vec<_> = Activation::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu"]
        );
        for (i, a) in Activation::ALL.iter().enumerate() {
            assert_eq!(a.id(), i);
        }
    }

    #[test]
    fn derivatives_at_the_kinks_follow_pytorch() {
        let d = |a: Activation| a.derivative(0.0f64);
        assert_eq!(d(Activation::Relu), 0.0);
        assert_eq!(d(Activation::LeakyRelu), 0.01);
        assert_eq!(d(Activation::Elu), ELU_ALPHA);
        assert_eq!(d(Activation::Selu), SELU_LAMBDA * SELU_ALPHA);
        assert_eq!(d(Activation::Sigmoid), 0.25);
        assert_eq!(d(Activation::Tanh), 1.0);
        for a in Activation::ALL {
            assert_eq!(
                a.value(0.0f64),
                if a == Activation::Sigmoid { 0.5 } else { 0.0 }
            );
        }
    }

    #[test]
    fn tails_are_finite_limits() {
        for x in [1e4f32, -1e4, 1e30, -1e30] {
            for a in Activation::ALL {
                assert!(a.value(x).is_finite(), "{a}({x})");
                assert!(a.derivative(x).is_finite(), "{a}'({x})");
            }
        }
        assert_eq!(Activation::Sigmoid.value(-1e4f32), 0.0);
        assert_eq!(Activation::Sigmoid.value(1e4f32), 1.0);
        assert_eq!(Activation::Tanh.value(-1e4f32), -1.0);
        assert_eq!(Activation::Elu.value(-1e4f64), -ELU_ALPHA);
        assert_eq!(Activation::Selu.value(-1e4f64), -SELU_LAMBDA * SELU_ALPHA);
        assert_eq!(Activation::Elu.derivative(-1e4f32), 0.0);
    }

    /// Central differences in f64 away from the kinks agree with the analytic derivatives.
    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-6;
        for a in Activation::ALL {
            for x in [-7.5f64, -2.0, -0.3, 0.2, 1.7, 6.0] {
                let numeric = (a.value(x + h) - a.value(x - h)) / (2.0 * h);
                let analytic = a.derivative(x);
                assert!(
                    (numeric - analytic).abs() < 1e-8,
                    "{a}'({x}) {numeric} vs {analytic}"
                );
            }
        }
    }
}
