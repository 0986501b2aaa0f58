//! The pool as one branch-free expression with per-neuron coefficients, for rows whose neurons
//! use different functions in any order.
//!
//! With functions scattered over the columns, a per-function loop must gather and scatter
//! every element. Here every function is one formula with one exponential, selected by
//! coefficients stored per column, so a row is a single loop over contiguous columns that
//! vectorises (the selects become blends):
//!
//! ```text
//! arg = ratio ? a * |x| : m * min(x, 0)          a: sigmoid -1, tanh -2;  m: elu, selu 1
//! (e, em) = (e^arg, e^arg - 1)
//! relu, leaky_relu, elu, selu:  x > 0 ? pos * x : (leaky ? 0.01 x : neg * em)
//! sigmoid: (x >= 0 ? 1 : e) / (1 + e)          tanh: sign(x) * -em / (2 + em)
//! ```
//!
//! These are [`Activation::value`] and [`Activation::derivative`] rewritten (sigmoid the same
//! expression, tanh from e^(-2|x|) instead of e^(2|x|)); the tests below hold the two within
//! rounding over the whole range, tails and kinks included.
//!
//! The later candidates (GELU, SiLU, Mish, Softplus, identity) are not folded into the lane
//! formula, which would then pay for an erfc and a logarithm on every element of every row:
//! their columns are gathered per function after the lane loop, computed by the function's own
//! loop over a contiguous buffer (vectorised) and scattered back (their lanes compute a
//! throwaway ReLU first), so for them this path gives exactly the bits of the per-function loops.

use crate::activation::{
    specialise, Activation, Real, ELU_ALPHA, LEAKY_RELU_SLOPE, SELU_ALPHA, SELU_LAMBDA,
};

/// Per-column coefficients, one array per coefficient (so that the row loop vectorises).
/// Flags are 0 or 1 in the element type.
pub(crate) struct Lanes<A> {
    /// Coefficient of |x| in the exponent: non-zero exactly for sigmoid (-1) and tanh (-2).
    abs_coef: Vec<A>,
    /// Coefficient of min(x, 0) in the exponent: elu and selu.
    min_coef: Vec<A>,
    /// Slope for x > 0 (also the derivative there): 1, or lambda for selu.
    pos: Vec<A>,
    /// Factor of e^x - 1 for x <= 0 (also of e^x in the derivative): elu alpha, selu lambda alpha.
    neg: Vec<A>,
    leaky: Vec<A>,
    sigmoid: Vec<A>,
    tanh: Vec<A>,
    /// The later candidates' columns, per function, computed by gathering (see the module doc).
    gathered: Vec<(Activation, Vec<usize>)>,
}

impl<A: Real> Lanes<A> {
    pub fn new(ids: &[Activation]) -> Self {
        let column = |a: Activation| -> [f64; 7] {
            use Activation::*;
            let (abs_coef, min_coef) = match a {
                Sigmoid => (-1.0, 0.0),
                Tanh => (-2.0, 0.0),
                Elu | Selu => (0.0, 1.0),
                // The gathered functions' lanes compute ReLU, overwritten afterwards.
                Relu | LeakyRelu | Gelu | Silu | Mish | Softplus | Identity => (0.0, 0.0),
            };
            let pos = if a == Selu { SELU_LAMBDA } else { 1.0 };
            let neg = match a {
                Elu => ELU_ALPHA,
                Selu => SELU_LAMBDA * SELU_ALPHA,
                _ => 0.0,
            };
            let flag = |b: bool| if b { 1.0 } else { 0.0 };
            [
                abs_coef,
                min_coef,
                pos,
                neg,
                flag(a == LeakyRelu),
                flag(a == Sigmoid),
                flag(a == Tanh),
            ]
        };
        let table: Vec<[f64; 7]> = ids.iter().map(|&a| column(a)).collect();
        let field = |i: usize| table.iter().map(|c| A::constant(c[i])).collect();
        let gathered = Activation::ALL[Activation::PAPER.len()..]
            .iter()
            .map(|&a| {
                let columns = (0..ids.len()).filter(|&c| ids[c] == a).collect();
                (a, columns)
            })
            .filter(|(_, columns): &(Activation, Vec<usize>)| !columns.is_empty())
            .collect();
        Self {
            gathered,
            abs_coef: field(0),
            min_coef: field(1),
            pos: field(2),
            neg: field(3),
            leaky: field(4),
            sigmoid: field(5),
            tanh: field(6),
        }
    }

    /// `y[c] = f_c(x[c])` for a whole row.
    #[inline(always)]
    pub fn values(&self, x: &[A], y: &mut [A]) {
        let n = y.len();
        let (x, l) = (&x[..n], self.columns(n));
        for c in 0..n {
            let (value, _) = lane(x[c], l.0[c], l.1[c], l.2[c], l.3[c], l.4[c], l.5[c], l.6[c]);
            y[c] = value;
        }
        if !self.gathered.is_empty() {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for (act, columns) in &self.gathered {
                gather(x, columns, &mut xs);
                ys.resize(xs.len(), A::zero());
                specialise!(*act, |a| {
                    for (y, &x) in ys.iter_mut().zip(&xs) {
                        *y = a.value(x);
                    }
                });
                scatter(&ys, columns, y);
            }
        }
    }

    /// `y[c] = f_c(x[c])` and `slope[c] = f_c'(x[c])` for a whole row.
    #[inline(always)]
    pub fn values_and_slopes(&self, x: &[A], y: &mut [A], slope: &mut [A]) {
        let n = y.len();
        let (x, slope, l) = (&x[..n], &mut slope[..n], self.columns(n));
        for c in 0..n {
            (y[c], slope[c]) = lane(x[c], l.0[c], l.1[c], l.2[c], l.3[c], l.4[c], l.5[c], l.6[c]);
        }
        if !self.gathered.is_empty() {
            let (mut xs, mut ys, mut ss) = (Vec::new(), Vec::new(), Vec::new());
            for (act, columns) in &self.gathered {
                gather(x, columns, &mut xs);
                ys.resize(xs.len(), A::zero());
                ss.resize(xs.len(), A::zero());
                specialise!(*act, |a| {
                    for ((y, s), &x) in ys.iter_mut().zip(ss.iter_mut()).zip(&xs) {
                        *y = a.value(x);
                        *s = a.derivative(x);
                    }
                });
                scatter(&ys, columns, y);
                scatter(&ss, columns, slope);
            }
        }
    }

    /// `gx[c] = g[c] * f_c'(x[c])` for a whole row.
    #[inline(always)]
    pub fn grad(&self, x: &[A], g: &[A], gx: &mut [A]) {
        let n = gx.len();
        let (x, g, l) = (&x[..n], &g[..n], self.columns(n));
        for c in 0..n {
            let (_, slope) = lane(x[c], l.0[c], l.1[c], l.2[c], l.3[c], l.4[c], l.5[c], l.6[c]);
            gx[c] = g[c] * slope;
        }
        if !self.gathered.is_empty() {
            let (mut xs, mut gs, mut outs) = (Vec::new(), Vec::new(), Vec::new());
            for (act, columns) in &self.gathered {
                gather(x, columns, &mut xs);
                gather(g, columns, &mut gs);
                outs.resize(xs.len(), A::zero());
                specialise!(*act, |a| {
                    for ((out, &x), &g) in outs.iter_mut().zip(&xs).zip(&gs) {
                        *out = g * a.derivative(x);
                    }
                });
                scatter(&outs, columns, gx);
            }
        }
    }

    /// The coefficient arrays cut to `n` columns (so that the loops need no bounds checks).
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    fn columns(&self, n: usize) -> (&[A], &[A], &[A], &[A], &[A], &[A], &[A]) {
        (
            &self.abs_coef[..n],
            &self.min_coef[..n],
            &self.pos[..n],
            &self.neg[..n],
            &self.leaky[..n],
            &self.sigmoid[..n],
            &self.tanh[..n],
        )
    }
}

/// `row[c]` for the columns, into `out` (contiguous, so that the function's loop vectorises).
#[inline(always)]
fn gather<A: Copy>(row: &[A], columns: &[usize], out: &mut Vec<A>) {
    out.clear();
    out.extend(columns.iter().map(|&c| row[c]));
}

#[inline(always)]
fn scatter<A: Copy>(values: &[A], columns: &[usize], row: &mut [A]) {
    for (&c, &v) in columns.iter().zip(values) {
        row[c] = v;
    }
}

/// `(f(x), f'(x))` of one lane. NaN stays NaN in the value (so that a diverging run stays
/// visible); the derivative at NaN is unspecified.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn lane<A: Real>(
    x: A,
    abs_coef: A,
    min_coef: A,
    pos: A,
    neg: A,
    leaky: A,
    sigmoid: A,
    tanh: A,
) -> (A, A) {
    let (zero, one) = (A::zero(), A::one());
    let ratio = abs_coef != zero;
    // Written as selects, never as 0 * x: that is NaN for infinite x.
    let arg = if ratio {
        abs_coef * x.abs()
    } else if min_coef != zero {
        min_coef * x.min(zero)
    } else {
        zero
    };
    let (e, em) = arg.exponential_pair();
    let positive = x > zero;
    let is_leaky = leaky != zero;
    let is_sigmoid = sigmoid != zero;
    let slope = A::constant(LEAKY_RELU_SLOPE);
    // relu, leaky_relu, elu, selu.
    let piecewise = if positive {
        pos * x
    } else if is_leaky {
        slope * x
    } else {
        neg * em
    };
    let piecewise_slope = if positive {
        pos
    } else if is_leaky {
        slope
    } else {
        neg * e
    };
    // sigmoid and tanh: one division.
    let num = if is_sigmoid {
        if x >= zero {
            one
        } else {
            e
        }
    } else {
        -em
    };
    let den = if is_sigmoid {
        one + e
    } else {
        A::constant(2.0) + em
    };
    let q = num / den;
    let q = if tanh != zero { q.copysign(x) } else { q };
    let q_slope = if is_sigmoid {
        q * (one - q)
    } else {
        one - q * q
    };
    let value = if ratio { q } else { piecewise };
    let value = if x.is_nan() { x } else { value };
    (value, if ratio { q_slope } else { piecewise_slope })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<A: Real + std::fmt::Debug>(points: &[A], rtol: f64, atol: f64) {
        for a in Activation::ALL {
            let lanes = Lanes::<A>::new(&vec![a; points.len()]);
            let (mut y, mut d) = (vec![A::zero(); points.len()], vec![A::zero(); points.len()]);
            lanes.values(points, &mut y);
            lanes.grad(points, &vec![A::one(); points.len()], &mut d);
            for (i, &x) in points.iter().enumerate() {
                for (what, got, want) in [
                    ("value", y[i], a.value(x)),
                    ("derivative", d[i], a.derivative(x)),
                ] {
                    let (g, w) = (got.to_f64().unwrap(), want.to_f64().unwrap());
                    assert!(
                        g == w
                            || (g - w).abs() <= atol + rtol * w.abs()
                            || g.is_nan() && w.is_nan(),
                        "{a} {what} at {x:?}: lanes {g} vs formula {w}"
                    );
                }
            }
        }
    }

    fn points() -> Vec<f64> {
        let mut p: Vec<f64> = (-4000..=4000).map(|i| i as f64 / 200.0).collect();
        p.extend([
            0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 80.0, -80.0, 700.0, -700.0, 1e30, -1e30,
        ]);
        p.extend([f64::INFINITY, f64::NEG_INFINITY]);
        p
    }

    #[test]
    fn lanes_agree_with_the_formulas_in_f32_and_f64() {
        // The absolute term is a few ulps of 1: tanh' = 1 - t^2 keeps no relative precision
        // where t^2 rounds to 1, in either formulation.
        let p = points();
        check::<f64>(&p, 1e-14, 1e-15);
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        check::<f32>(&p32, 1e-6, 3e-7);
    }

    /// The gathered candidates give exactly the per-function formulas' bits, in a row that
    /// mixes them with the lane functions in scattered order.
    #[test]
    fn gathered_candidates_are_exact_in_a_mixed_row() {
        let ids: Vec<Activation> = (0..97).map(|i| Activation::ALL[(i * 7) % 11]).collect();
        let x: Vec<f32> = (0..97).map(|i| (i as f32 - 48.0) * 0.37).collect();
        let lanes = Lanes::<f32>::new(&ids);
        let (mut y, mut s, mut g) = (vec![0f32; 97], vec![0f32; 97], vec![0f32; 97]);
        lanes.values_and_slopes(&x, &mut y, &mut s);
        lanes.grad(&x, &vec![2.0; 97], &mut g);
        for (c, a) in ids.iter().enumerate() {
            if Activation::PAPER.contains(a) {
                continue;
            }
            assert_eq!(y[c].to_bits(), a.value(x[c]).to_bits(), "{a}({})", x[c]);
            assert_eq!(
                s[c].to_bits(),
                a.derivative(x[c]).to_bits(),
                "{a}'({})",
                x[c]
            );
            assert_eq!(g[c].to_bits(), (2.0 * a.derivative(x[c])).to_bits());
        }
    }

    #[test]
    fn kinks_are_exact_and_nan_propagates_through_every_value() {
        for a in Activation::ALL {
            let lanes = Lanes::<f32>::new(&[a; 3]);
            let x = [0.0f32, -0.0, f32::NAN];
            let (mut y, mut d) = ([9.0f32; 3], [9.0f32; 3]);
            lanes.values(&x, &mut y);
            lanes.grad(&x, &[1.0; 3], &mut d);
            assert_eq!(y[0], a.value(0.0), "{a}(0)");
            assert_eq!(d[0], a.derivative(0.0), "{a}'(0)");
            assert_eq!(d[1], a.derivative(-0.0), "{a}'(-0)");
            assert!(y[2].is_nan(), "{a}(NaN) = {}", y[2]);
        }
    }
}
