//! The statistics of the reports: percentile bootstrap intervals over seeds, the probability
//! of improvement, the paired t-test and Holm's adjustment for the many comparisons of a cell.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, StudentsT};

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

/// Two-sided p-value of the paired t-test (mean difference zero) on per-seed differences;
/// `None` with fewer than two pairs or a difference that is not a number. Differences without
/// spread give 1 when they are all zero and 0 otherwise (the test's limit).
pub fn paired_t_p(diffs: &[f64]) -> Option<f64> {
    let n = diffs.len();
    if n < 2 {
        return None;
    }
    let m = mean(diffs);
    let var = diffs.iter().map(|d| (d - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    if !m.is_finite() || !var.is_finite() {
        // statrs panics on a NaN argument.
        return None;
    }
    if var == 0.0 {
        return Some(if m == 0.0 { 1.0 } else { 0.0 });
    }
    let t = m / (var / n as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    Some((2.0 * dist.sf(t.abs())).min(1.0))
}

/// Holm's step-down adjustment of one family of p-values (all of a cell's comparisons), in
/// their order: the k-th smallest is multiplied by (m - k + 1), then made non-decreasing and
/// capped at 1. A family rejected where its adjusted p is below 0.05 holds its error rate at
/// 5 % over all m comparisons.
pub fn holm(ps: &[f64]) -> Vec<f64> {
    let m = ps.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| ps[a].total_cmp(&ps[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * ps[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// A p-value as the reports print it: three decimals (`<0.001` below; four just under 0.05,
/// so that a held 0.0496 does not read as 0.050), `-` where there is none (one pair).
pub fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => "<0.001".to_string(),
        Some(p) if (0.0495..0.05).contains(&p) => format!("{p:.4}"),
        Some(p) => format!("{p:.3}"),
        None => "-".to_string(),
    }
}

/// Whether a comparison holds after Holm's adjustment: its adjusted p under 0.05 (the level
/// the reports, their summary line and the paired figure all use).
pub fn holds_after_holm(holm_p: Option<f64>) -> bool {
    holm_p.is_some_and(|p| p < 0.05)
}

/// [`holm`] over the p-values present (a comparison without one is not in the family).
pub fn holm_some(ps: &[Option<f64>]) -> Vec<Option<f64>> {
    let present: Vec<f64> = ps.iter().flatten().copied().collect();
    let mut adjusted = holm(&present).into_iter();
    ps.iter().map(|p| p.and_then(|_| adjusted.next())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against numbers computed apart (Student's t density integrated numerically): five pairs
    /// of mean 0.02 and sample sd 0.00707 give t = 6.325, p = 0.003198; t = 2.776445 with 4
    /// degrees of freedom is the two-sided 5 % point of the tables.
    #[test]
    fn paired_t_p_matches_tables() {
        let diffs = [0.01, 0.02, 0.03, 0.02, 0.02];
        let p = paired_t_p(&diffs).unwrap();
        assert!((p - 0.003_198_2).abs() < 1e-7, "{p}");
        // Shifted so that t is the 5 % point: p = 0.05.
        let spread = [-2.0, -1.0, 0.0, 1.0, 2.0];
        let sd = (10.0f64 / 4.0).sqrt();
        let t = 2.776_445_105;
        let shift = t * sd / 5f64.sqrt();
        let diffs: Vec<f64> = spread.iter().map(|x| x + shift).collect();
        assert!((paired_t_p(&diffs).unwrap() - 0.05).abs() < 1e-7);
        assert_eq!(paired_t_p(&[0.01]), None);
        assert_eq!(paired_t_p(&[0.0, 0.0, 0.0]), Some(1.0));
        assert_eq!(paired_t_p(&[0.01, 0.01]), Some(0.0));
        // The sign does not matter.
        let negated: Vec<f64> = diffs.iter().map(|d| -d).collect();
        assert_eq!(paired_t_p(&negated), paired_t_p(&diffs));
    }

    /// docs/statistics.md: with 14 comparisons the smallest p must be under 0.05 / 14 to hold
    /// after Holm, a mean difference of 2.745 standard deviations of the per-seed differences
    /// over five seeds and 1.236 over ten.
    #[test]
    fn the_thresholds_docs_quote() {
        for (n, ratio) in [(5, 2.745), (10, 1.236)] {
            // Differences of sample sd 1 around the mean `ratio`.
            let spread: Vec<f64> = (0..n).map(|i| i as f64 - (n - 1) as f64 / 2.0).collect();
            let sd = (spread.iter().map(|x| x * x).sum::<f64>() / (n - 1) as f64).sqrt();
            let diffs: Vec<f64> = spread.iter().map(|x| x / sd + ratio).collect();
            let p = paired_t_p(&diffs).unwrap();
            assert!((p * 14.0 - 0.05).abs() < 0.0005, "n {n}: p {p}");
        }
    }

    #[test]
    fn holm_by_hand() {
        // Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> 0.06 (monotone).
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.6, 0.5]), [1.0, 1.0]);
        assert!(holm(&[]).is_empty());
        // A comparison without a p stays out of the family.
        assert_eq!(
            holm_some(&[Some(0.01), None, Some(0.02)]),
            [Some(0.02), None, Some(0.02)]
        );
        assert_eq!(paired_t_p(&[0.01, f64::NAN, 0.02]), None);
        assert_eq!(p_value(Some(0.0496)), "0.0496");
        assert_eq!(p_value(Some(0.0504)), "0.050");
    }
}
