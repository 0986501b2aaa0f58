//! exp, exp - 1, tanh, erfc and ln(1 + u) for f32 as straight-line arithmetic (no libm calls, no branches, no
//! float-to-int conversions), so that loops over them vectorise on any x86-64 or ARM target
//! without building for the native CPU. f64 keeps the standard library's functions.
//!
//! exp: Cody-Waite reduction x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor polynomial of
//! degree 7 (truncation error below 5e-9 relative), 2^n assembled in the exponent bits.
//! erfc: the Chebyshev fit of Press et al. (Numerical Recipes, `erfcc`; fractional error below
//! 1.2e-7 in exact arithmetic), one division and one [`exp`]. ln(1 + u) for u in [0, 1]: the
//! series 2 atanh(u / (2 + u)), exact coefficients 1 / (2k + 1), truncated below 1e-9.
//! The tests bound the relative error against f64 over the whole range.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that n * LN2_HI is exact for |n| <= 128.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer held in the low
/// mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// ln(f32::MAX): above it e^x overflows.
const MAX_X: f32 = 88.722_83;
/// ln of the smallest normal f32: below it e^x is returned as 0 (the true value is below 1.2e-38).
const MIN_X: f32 = -87.336_54;

/// For x in [MIN_X, MAX_X]: `(n, e^r)` with x = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite), e^r by
/// its Taylor polynomial of degree 7.
#[inline(always)]
fn reduce(x: f32) -> (i32, f32) {
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n sits in the low mantissa bits of t.
    ((t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32), p)
}

/// 2^n for n in [-126, 127], from the exponent bits.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) << 23) as u32)
}

/// e^x - 1 by its Taylor polynomial of degree 7, for |x| < 0.3 (Horner form with constant
/// coefficients: multiplications only; divisions by 3, 5, 6, 7 would not be folded).
#[inline(always)]
fn exp_m1_taylor(x: f32) -> f32 {
    x * (1.0
        + x * (1.0 / 2.0
            + x * (1.0 / 6.0
                + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0 + x * (1.0 / 5040.0)))))))
}

#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let (n, p) = reduce(x.clamp_finite(MIN_X, MAX_X));
    // n in [-126, 128]; 2^128 is not a float, so n = 128 is built as 2^127 * 2.
    let top = n > 127;
    let y = p * pow2(if top { n - 1 } else { n }) * if top { 2.0 } else { 1.0 };
    if x > MAX_X {
        f32::INFINITY
    } else if x < MIN_X {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// e^x - 1, accurate near 0 (where e^x - 1 would cancel): a Taylor polynomial for |x| < 0.3.
#[inline(always)]
pub fn exp_m1(x: f32) -> f32 {
    if x.abs() < 0.3 {
        exp_m1_taylor(x)
    } else {
        exp(x) - 1.0
    }
}

/// e^x for x <= 0 (the exponents of the lane formulation, `lanes.rs`): [`exp`] without the
/// overflow and NaN handling that x <= 0 never needs (NaN gives a finite value here; callers
/// pass NaN through themselves). Same accuracy as [`exp`] on [-87.3, 0], 0 below.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let (n, p) = reduce(x.max(MIN_X));
    if x < MIN_X {
        0.0
    } else {
        p * pow2(n)
    }
}

/// `(e^x, e^x - 1)` for x <= 0 from one exponential: the small-|x| polynomial replaces
/// e^x - 1 where that would cancel. Same accuracy as [`exp`] and [`exp_m1`].
#[inline(always)]
pub fn exp_and_exp_m1(x: f32) -> (f32, f32) {
    let e = exp_nonpositive(x);
    (
        e,
        if x.abs() < 0.3 {
            exp_m1_taylor(x)
        } else {
            e - 1.0
        },
    )
}

/// tanh |x| = em / (em + 2) with em = e^(2|x|) - 1; |x| is capped at 9, where tanh is 1 in f32.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs().min(9.0);
    let em = exp_m1(2.0 * a);
    let t = (em / (em + 2.0)).copysign(x);
    if x.is_nan() {
        x
    } else {
        t
    }
}

/// erfc(z) for z >= 0 (callers reflect negative arguments: erfc(-z) = 2 - erfc(z)). Relative
/// error below 2e-6 for z <= 3 and below 1e-5 up to z = 9 (erfc = 4e-37; tested; measured
/// 1.2e-6 at z = 2.85, 7.8e-6 at 8.67): the exponent -z^2 + poly(t) is rounded to f32 before the exponential,
/// half an ulp of 9 is 5e-7 and of 81 is 4e-6. NaN gives NaN; +inf gives 0.
#[inline(always)]
// The coefficients as published (two carry a digit more than f32 holds).
#[allow(clippy::excessive_precision)]
pub fn erfc_nonnegative(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * exp(poly - z * z)
}

/// ln(1 + u) for u in [0, 1] (softplus needs it at u = e^-|x|): s = u / (2 + u) lies in
/// [0, 1/3] and ln(1 + u) = 2 (s + s^3/3 + ... + s^17/17); the first omitted term is below
/// 2e-10 of the sum. NaN gives NaN.
#[inline(always)]
pub fn ln_1p_unit(u: f32) -> f32 {
    let s = u / (2.0 + u);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0
                            + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0 + s2 * (1.0 / 17.0))))))));
    2.0 * s * series
}

trait ClampFinite {
    fn clamp_finite(self, lo: Self, hi: Self) -> Self;
}

impl ClampFinite for f32 {
    /// max then min (NaN becomes `lo`; callers pass NaN through separately).
    #[inline(always)]
    fn clamp_finite(self, lo: f32, hi: f32) -> f32 {
        self.max(lo).min(hi)
    }
}

#[cfg(test)]
mod tests {
    /// Relative error against f64 at `n` points spread over [lo, hi] and the error bound.
    fn worst(f: fn(f32) -> f32, exact: fn(f64) -> f64, lo: f32, hi: f32, n: usize) -> (f64, f32) {
        let mut worst = (0.0, 0.0);
        for i in 0..=n {
            let x = lo + (hi - lo) * i as f32 / n as f32;
            let e = exact(x as f64);
            let err = ((f(x) as f64 - e) / e.abs().max(f64::MIN_POSITIVE)).abs();
            if err > worst.0 {
                worst = (err, x);
            }
        }
        worst
    }

    #[test]
    fn exp_is_within_3e7_relative_over_the_whole_range() {
        let (err, at) = worst(super::exp, f64::exp, -87.3, 88.7, 2_000_000);
        assert!(err < 3e-7, "exp: relative error {err} at {at}");
        assert_eq!(super::exp(0.0), 1.0);
        assert_eq!(super::exp(-100.0), 0.0);
        assert_eq!(super::exp(100.0), f32::INFINITY);
        assert!(super::exp(f32::NAN).is_nan());
    }

    #[test]
    fn the_nonpositive_pair_is_as_accurate_on_its_domain() {
        let e = |x: f32| super::exp_and_exp_m1(x).0;
        let em = |x: f32| super::exp_and_exp_m1(x).1;
        let (err, at) = worst(e, f64::exp, -87.3, 0.0, 1_000_000);
        assert!(err < 3e-7, "exp_nonpositive: relative error {err} at {at}");
        let (err, at) = worst(em, f64::exp_m1, -20.0, 0.0, 1_000_000);
        assert!(err < 4e-7, "pair exp_m1: relative error {err} at {at}");
        let (err, at) = worst(em, f64::exp_m1, -1e-3, 0.0, 100_000);
        assert!(
            err < 4e-7,
            "pair exp_m1 near 0: relative error {err} at {at}"
        );
        assert_eq!(super::exp_and_exp_m1(0.0), (1.0, 0.0));
        assert_eq!(super::exp_and_exp_m1(-100.0), (0.0, -1.0));
        assert_eq!(super::exp_and_exp_m1(f32::NEG_INFINITY), (0.0, -1.0));
    }

    #[test]
    fn erfc_and_ln_1p_are_within_their_stated_bounds() {
        let (err, at) = worst(super::erfc_nonnegative, libm::erfc, 0.0, 3.0, 1_000_000);
        assert!(err < 2e-6, "erfc: relative error {err} at {at}");
        let (err, at) = worst(super::erfc_nonnegative, libm::erfc, 3.0, 9.0, 1_000_000);
        assert!(err < 1e-5, "erfc tail: relative error {err} at {at}");
        let (err, at) = worst(super::erfc_nonnegative, libm::erfc, 0.0, 1e-3, 100_000);
        assert!(err < 2e-6, "erfc near 0: relative error {err} at {at}");
        assert_eq!(super::erfc_nonnegative(1e4), 0.0);
        assert_eq!(super::erfc_nonnegative(f32::INFINITY), 0.0);
        assert!(super::erfc_nonnegative(f32::NAN).is_nan());
        let (err, at) = worst(super::ln_1p_unit, f64::ln_1p, 0.0, 1.0, 1_000_000);
        assert!(err < 3e-7, "ln_1p: relative error {err} at {at}");
        let (err, at) = worst(super::ln_1p_unit, f64::ln_1p, 0.0, 1e-6, 100_000);
        assert!(err < 3e-7, "ln_1p near 0: relative error {err} at {at}");
        assert_eq!(super::ln_1p_unit(0.0), 0.0);
    }

    #[test]
    fn exp_m1_and_tanh_are_accurate_near_zero_and_far_out() {
        let (err, at) = worst(super::exp_m1, f64::exp_m1, -20.0, 20.0, 1_000_000);
        assert!(err < 4e-7, "exp_m1: relative error {err} at {at}");
        let (err, at) = worst(super::exp_m1, f64::exp_m1, -1e-3, 1e-3, 100_000);
        assert!(err < 4e-7, "exp_m1 near 0: relative error {err} at {at}");
        let (err, at) = worst(super::tanh, f64::tanh, -12.0, 12.0, 1_000_000);
        assert!(err < 6e-7, "tanh: relative error {err} at {at}");
        let (err, at) = worst(super::tanh, f64::tanh, -1e-3, 1e-3, 100_000);
        assert!(err < 6e-7, "tanh near 0: relative error {err} at {at}");
        assert_eq!(super::tanh(1e4), 1.0);
        assert_eq!(super::tanh(-1e4), -1.0);
        assert_eq!(super::exp_m1(-1e4), -1.0);
        assert!(super::tanh(f32::NAN).is_nan() && super::exp_m1(f32::NAN).is_nan());
    }
}
