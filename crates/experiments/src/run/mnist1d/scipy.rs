//! The signal operations of the MNIST-1D generator, as NumPy and SciPy compute them:
//! `np.linspace`, SciPy's linear `interp1d` and `gaussian_filter` on a 1-D signal (mode
//! `reflect`, `truncate` 4).

/// `np.linspace(start, stop, n)` (endpoint included; the last value is `stop` exactly).
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut out: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    if let Some(last) = out.last_mut() {
        *last = stop;
    }
    out
}

/// `interp1d(xs, ys, kind="linear")(at)` for increasing `xs` and every `at` inside them:
/// each point between its two neighbours (`searchsorted` from the left, clipped to the first
/// interval), `slope * (at - x_lo) + y_lo`.
pub fn interp_linear(xs: &[f64], ys: &[f64], at: &[f64]) -> Vec<f64> {
    assert!(
        xs.len() == ys.len() && xs.len() >= 2,
        "interpolation needs two points"
    );
    at.iter()
        .map(|&x| {
            let hi = xs.partition_point(|&v| v < x).clamp(1, xs.len() - 1);
            let lo = hi - 1;
            let slope = (ys[hi] - ys[lo]) / (xs[hi] - xs[lo]);
            slope * (x - xs[lo]) + ys[lo]
        })
        .collect()
}

/// The generator's `interpolate(x, n)`: `x` resampled linearly at `n` evenly spaced points.
pub fn resample(x: &[f64], n: usize) -> Vec<f64> {
    interp_linear(&linspace(0.0, 1.0, x.len()), x, &linspace(0.0, 1.0, n))
}

/// `gaussian_filter(x, sigma)` of a 1-D signal: correlation with the normalised Gaussian of
/// radius `round(4 sigma)`, the signal extended by reflection about its ends (`d c b a | a b c d |
/// d c b a`).
pub fn gaussian_filter(x: &[f64], sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as usize;
    let mut weights: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            (-0.5 / (sigma * sigma) * d * d).exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    let n = x.len() as isize;
    let reflect = |i: isize| -> usize {
        // Period 2n: i, then its mirror image about the ends.
        let i = i.rem_euclid(2 * n);
        (if i < n { i } else { 2 * n - 1 - i }) as usize
    };
    (0..n)
        .map(|i| {
            weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * x[reflect(i + k as isize - radius as isize)])
                .sum()
        })
        .collect()
}
