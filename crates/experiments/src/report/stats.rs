//! The statistics of the reports: percentile bootstrap intervals over seeds and the
//! probability of improvement.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 4000;

/// Percentile `p` of sorted values: the element at round(p * (n - 1)).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

/// The median of sorted values (the mean of the middle two for an even count); `None` when
/// there are none.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn resample_mean(values: &[f64], rng: &mut ChaCha8Rng) -> f64 {
    (0..values.len())
        .map(|_| values[rng.random_range(0..values.len())])
        .sum::<f64>()
        / values.len() as f64
}

/// 95 % percentile bootstrap interval of the mean (resampling the seeds with replacement).
pub fn bootstrap_mean_ci(values: &[f64], rng: &mut ChaCha8Rng) -> (f64, f64) {
    let mut means: Vec<f64> = (0..RESAMPLES).map(|_| resample_mean(values, rng)).collect();
    means.sort_by(f64::total_cmp);
    (percentile(&means, 0.025), percentile(&means, 0.975))
}

/// 95 % percentile bootstrap interval of mean(a) - mean(b), resampling each group apart.
pub fn bootstrap_diff_ci(a: &[f64], b: &[f64], rng: &mut ChaCha8Rng) -> (f64, f64) {
    let mut diffs: Vec<f64> = (0..RESAMPLES)
        .map(|_| resample_mean(a, rng) - resample_mean(b, rng))
        .collect();
    diffs.sort_by(f64::total_cmp);
    (percentile(&diffs, 0.025), percentile(&diffs, 0.975))
}

/// Share of pairs in which the first value is higher (ties count half): the probability of
/// improvement over seeds.
pub fn probability_of_improvement(diffs: &[f64]) -> f64 {
    let wins: f64 = diffs
        .iter()
        .map(|&d| match d.partial_cmp(&0.0) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Equal) => 0.5,
            _ => 0.0,
        })
        .sum();
    wins / diffs.len() as f64
}
