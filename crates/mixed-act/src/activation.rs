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
    /// erfc x for x >= 0 (negative arguments are reflected by the caller).
    fn erfc_nonnegative(self) -> Self;
    /// ln(1 + x) for x in [0, 1].
    fn ln_1p_unit(self) -> Self;
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
    #[inline(always)]
    fn erfc_nonnegative(self) -> Self {
        crate::fastmath::erfc_nonnegative(self)
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        crate::fastmath::ln_1p_unit(self)
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
    #[inline(always)]
    fn erfc_nonnegative(self) -> Self {
        libm::erfc(self)
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        self.ln_1p()
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
            $crate::Activation::Gelu => {
                let $a = $crate::Activation::Gelu;
                $body
            }
            $crate::Activation::Silu => {
                let $a = $crate::Activation::Silu;
                $body
            }
            $crate::Activation::Mish => {
                let $a = $crate::Activation::Mish;
                $body
            }
            $crate::Activation::Softplus => {
                let $a = $crate::Activation::Softplus;
                $body
            }
            $crate::Activation::Identity => {
                let $a = $crate::Activation::Identity;
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
/// Softplus returns x itself above this input (PyTorch's default threshold, with beta 1).
pub const SOFTPLUS_THRESHOLD: f64 = 20.0;

/// One candidate activation. The discriminant is the stable id used in tensors, files and CSV
/// columns. The paper's six are 0..=5; later candidates follow, so every file written before
/// them still reads. Within a [`Pool`](crate::Pool) argmax ties go to the earlier member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Activation {
    Relu = 0,
    Sigmoid = 1,
    Tanh = 2,
    LeakyRelu = 3,
    Elu = 4,
    Selu = 5,
    /// x Phi(x), the exact (erf) form, PyTorch's default.
    Gelu = 6,
    /// x sigmoid(x) (swish with beta 1).
    Silu = 7,
    /// x tanh(softplus(x)).
    Mish = 8,
    /// ln(1 + e^x), beta 1, x itself above 20 (PyTorch's threshold).
    Softplus = 9,
    Identity = 10,
}

/// Error for an activation name or id that is not in the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("unknown activation '{0}' (valid: relu, sigmoid, tanh, leaky_relu, elu, selu, gelu, silu, mish, softplus, identity)")]
    UnknownName(String),
    #[error("activation id {0} is out of range (valid ids are 0..=10)")]
    UnknownId(u64),
}

impl Activation {
    /// Number of candidates there are (a [`Pool`](crate::Pool) uses some or all of them).
    pub const COUNT: usize = 11;

    /// Every candidate, in id order.
    pub const ALL: [Activation; Activation::COUNT] = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Selu,
        Activation::Gelu,
        Activation::Silu,
        Activation::Mish,
        Activation::Softplus,
        Activation::Identity,
    ];

    /// The paper's pool, in id order: the default.
    pub const PAPER: [Activation; 6] = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Selu,
    ];

    /// The stable id, 0..=10.
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
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Mish => "mish",
            Activation::Softplus => "softplus",
            Activation::Identity => "identity",
        }
    }

    /// `f(x)`.
    ///
    /// Written branch-free (both sides computed, then selected), so that loops over a slice
    /// vectorise, and so that the tails are exact limits rather than NaN: sigmoid, SiLU, Mish and
    /// Softplus only form `exp(-|x|)`, ELU and SELU use `exp(min(x, 0)) - 1` in its accurate
    /// form, GELU's Phi(x) is `erfc(|x| / sqrt 2) / 2` or one minus it (accurate in the left
    /// tail). NaN gives NaN for every function; the product forms (GELU, SiLU, Mish) give NaN at
    /// -inf, as PyTorch does (-inf * 0).
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
            Activation::Gelu => x * normal_cdf(x),
            Activation::Silu => x * logistic(x).0,
            Activation::Mish => x * mish_tanh(x).0,
            Activation::Softplus => {
                let smooth = x.max(zero) + (-x.abs()).exponential().ln_1p_unit();
                if x > F::constant(SOFTPLUS_THRESHOLD) || x.is_nan() {
                    x
                } else {
                    smooth
                }
            }
            Activation::Identity => x,
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
            Activation::Gelu => {
                // Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi).
                let density =
                    F::constant(FRAC_1_SQRT_2PI) * (-(x * x) * F::constant(0.5)).exponential();
                normal_cdf(x) + x * density
            }
            Activation::Silu => {
                // s (1 + x (1 - s)), with 1 - s formed without cancellation.
                let (s, one_minus_s) = logistic(x);
                s * (F::one() + x * one_minus_s)
            }
            Activation::Mish => {
                // t + x (1 - t^2) sigmoid(x), t = tanh(softplus(x)), 1 - t without cancellation.
                let (t, one_minus_t) = mish_tanh(x);
                t + x * (one_minus_t * (F::one() + t)) * logistic(x).0
            }
            Activation::Softplus => {
                if x > F::constant(SOFTPLUS_THRESHOLD) {
                    F::one()
                } else {
                    logistic(x).0
                }
            }
            Activation::Identity => F::one(),
        }
    }
}

/// 1 / sqrt(2 pi).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `(sigmoid(x), 1 - sigmoid(x))` from one `exp(-|x|)`, both without cancellation.
#[inline(always)]
pub(crate) fn logistic<F: Real>(x: F) -> (F, F) {
    let e = (-x.abs()).exponential();
    let r = F::one() / (F::one() + e);
    if x >= F::zero() {
        (r, e * r)
    } else {
        (e * r, r)
    }
}

/// The standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2, from erfc of a non-negative
/// argument (so accurate in relative terms in the left tail, where GELU is a tiny product).
#[inline(always)]
fn normal_cdf<F: Real>(x: F) -> F {
    let half_tail = F::constant(0.5)
        * (x.abs() * F::constant(std::f64::consts::FRAC_1_SQRT_2)).erfc_nonnegative();
    if x < F::zero() {
        half_tail
    } else {
        F::one() - half_tail
    }
}

/// `(t, 1 - t)` for t = tanh(softplus(x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1), in closed form
/// from u = e^-|x|: for x <= 0, n = u (u + 2) and t = n / (n + 2); for x > 0 (numerator and
/// denominator divided by e^2x) t = (1 + 2u) / (1 + 2u + 2u^2). No overflow, no cancellation.
#[inline(always)]
fn mish_tanh<F: Real>(x: F) -> (F, F) {
    let (one, two) = (F::one(), F::constant(2.0));
    let u = (-x.abs()).exponential();
    let n = u * (u + two);
    let d = one + two * u + two * u * u;
    if x > F::zero() {
        ((one + two * u) / d, two * u * u / d)
    } else {
        (n / (n + two), two / (n + two))
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
        assert_eq!("GELU".parse::<Activation>().unwrap(), Activation::Gelu);
        assert_eq!("SiLU".parse::<Activation>().unwrap(), Activation::Silu);
        let err = "swish".parse::<Activation>().unwrap_err().to_string();
        assert!(err.contains("swish") && err.contains("leaky_relu"), "{err}");
        assert!(Activation::from_id(11).is_err());
    }

    /// Ids are stable: the paper's six keep 0..=5 (every older file and checkpoint reads), the
    /// later candidates follow.
    #[test]
    fn ids_follow_the_pool_order() {
        let names: Vec<_> = Activation::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            [
                "relu",
                "sigmoid",
                "tanh",
                "leaky_relu",
                "elu",
                "selu",
                "gelu",
                "silu",
                "mish",
                "softplus",
                "identity"
            ]
        );
        for (i, a) in Activation::ALL.iter().enumerate() {
            assert_eq!(a.id(), i);
        }
        assert_eq!(Activation::PAPER, Activation::ALL[..6]);
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
        assert_eq!(d(Activation::Gelu), 0.5);
        assert_eq!(d(Activation::Silu), 0.5);
        assert_eq!(d(Activation::Softplus), 0.5);
        assert_eq!(d(Activation::Identity), 1.0);
        assert!(
            (d(Activation::Mish) - 0.6).abs() < 1e-15,
            "mish'(0) = tanh(ln 2) = 0.6"
        );
        for a in Activation::ALL {
            let expected = match a {
                Activation::Sigmoid => 0.5,
                Activation::Softplus => std::f64::consts::LN_2,
                _ => 0.0,
            };
            assert_eq!(a.value(0.0f64), expected, "{a}(0)");
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
        // The new candidates reach their asymptotes: 0 and x (GELU, SiLU, Mish), 0 and the
        // linear tail (Softplus), with derivatives 0 and 1.
        for x in [1e4f32, 1e30] {
            for a in [
                Activation::Gelu,
                Activation::Silu,
                Activation::Mish,
                Activation::Softplus,
            ] {
                assert_eq!(a.value(x), x, "{a}({x})");
                assert_eq!(a.value(-x), 0.0, "{a}(-{x})");
                assert_eq!(a.derivative(x), 1.0, "{a}'({x})");
                assert_eq!(a.derivative(-x), 0.0, "{a}'(-{x})");
                assert_eq!(a.value(x as f64), x as f64, "{a}({x}) f64");
                assert_eq!(a.value(-x as f64), 0.0, "{a}(-{x}) f64");
            }
        }
        // Softplus is linear beyond the threshold, smooth (and above x) just below it.
        assert_eq!(Activation::Softplus.value(20.5f64), 20.5);
        assert!(Activation::Softplus.value(19.5f64) > 19.5);
        assert_eq!(Activation::Identity.value(-1e30f32), -1e30);
    }

    #[test]
    fn nan_gives_nan_for_every_function() {
        for a in Activation::ALL {
            assert!(a.value(f32::NAN).is_nan(), "{a}(NaN) f32");
            assert!(a.value(f64::NAN).is_nan(), "{a}(NaN) f64");
        }
    }

    /// Central differences in f64 away from the kinks agree with the analytic derivatives.
    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-6;
        for a in Activation::ALL {
            for x in [-7.5f64, -2.0, -0.3, 0.2, 1.7, 6.0, 19.0, 25.0] {
                let numeric = (a.value(x + h) - a.value(x - h)) / (2.0 * h);
                let analytic = a.derivative(x);
                assert!(
                    (numeric - analytic).abs() < 1e-8 * (1.0 + x.abs()),
                    "{a}'({x}) {numeric} vs {analytic}"
                );
            }
        }
    }

    /// The f32 forms (fastmath erfc, exp and ln_1p) against the f64 forms (libm and std), over
    /// the range where the values are not tiny.
    #[test]
    fn new_candidates_in_f32_agree_with_f64() {
        for a in [
            Activation::Gelu,
            Activation::Silu,
            Activation::Mish,
            Activation::Softplus,
        ] {
            for i in -3000..=3000 {
                let x = i as f32 / 100.0;
                for (what, got, want) in [
                    ("value", a.value(x) as f64, a.value(x as f64)),
                    ("derivative", a.derivative(x) as f64, a.derivative(x as f64)),
                ] {
                    assert!(
                        (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "{a} {what} at {x}: f32 {got} vs f64 {want}"
                    );
                }
            }
        }
    }

    /// Known values (Python's math.erf / log1p / tanh, to 1e-12): GELU by erf, SiLU, Mish, Softplus.
    #[test]
    fn known_values() {
        let cases = [
            (Activation::Gelu, 1.0, 0.841_344_746_068_542_9),
            (Activation::Gelu, -1.0, -0.158_655_253_931_457_07),
            (Activation::Gelu, -3.0, -0.004_049_694_094_890_287),
            (Activation::Silu, 1.0, 0.731_058_578_630_004_9),
            (Activation::Mish, 1.0, 0.865_098_388_267_310_3),
            (Activation::Mish, -1.0, -0.303_401_461_374_108_95),
            (Activation::Softplus, 1.0, 1.313_261_687_518_223_2),
            (Activation::Softplus, -5.0, 0.006_715_348_489_118_068),
        ];
        for (a, x, want) in cases {
            let got: f64 = a.value(x);
            assert!((got - want).abs() < 1e-12, "{a}({x}) = {got}, want {want}");
        }
    }
}
