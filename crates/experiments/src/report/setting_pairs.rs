//! A varying setting's values against each other, paired by seed: for every method that reads
//! the setting, on every architecture, each value minus the first (runs with one seed share the
//! split and the initial linear weights, so a pair differs only by the setting). The per-cell
//! tables cannot say this, since each value of a varying setting is a cell of its own.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use rand_chacha::ChaCha8Rng;

use crate::grid::store::ResultRow;
use crate::report::stats::{
    bootstrap_mean_ci, mean, p_value, paired_t_p, probability_of_improvement,
};

/// One value of a setting minus another, for one method on one architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingPair {
    pub arch: String,
    pub method: String,
    pub setting: String,
    pub value: String,
    pub against: String,
    pub seeds: usize,
    pub mean_diff: f64,
    pub low: f64,
    pub high: f64,
    /// The share of seeds in which `value` is better (ties count half).
    pub p_improvement: f64,
    /// The paired t-test's two-sided p (mean difference zero); one pair per question, so not
    /// adjusted for the table's other rows.
    pub t_p: Option<f64>,
}

/// How [`pairs`] reads a row: a setting's value in it, its architecture's label, whether its
/// method reads a setting; and how a setting's values are ordered (the first is the baseline).
pub struct Readers<'a> {
    pub value: &'a dyn Fn(&ResultRow, &str) -> String,
    pub arch: &'a dyn Fn(&ResultRow) -> String,
    pub reads: &'a dyn Fn(&ResultRow, &str) -> bool,
    pub order: &'a dyn Fn(&str, &str) -> std::cmp::Ordering,
}

/// Every pair of `rows` (finished runs) over each of the `varying` settings: for each
/// architecture, method and combination of the other varying settings, each value of the
/// setting minus the first, over the seeds both have.
pub fn pairs(
    rows: &[&ResultRow],
    varying: &[&str],
    read: &Readers,
    rng: &mut ChaCha8Rng,
) -> Vec<SettingPair> {
    let Readers {
        value,
        arch,
        reads,
        order,
    } = read;
    let mut out = Vec::new();
    // Runs on another data set or split are not a pair: they share no split or initial state.
    for &setting in varying
        .iter()
        .filter(|&&s| s != "dataset" && s != "split_seed")
    {
        // (arch, method, the other settings' values) -> value -> seed -> accuracy.
        type Runs = BTreeMap<String, BTreeMap<u64, f64>>;
        let mut groups: BTreeMap<(String, String, String), Runs> = BTreeMap::new();
        for r in rows.iter().filter(|r| reads(r, setting)) {
            let Some(acc) = r.test_acc else { continue };
            let others: Vec<String> = varying
                .iter()
                .filter(|&&o| o != setting && reads(r, o))
                .map(|o| format!("{o}={}", value(r, o)))
                .collect();
            groups
                .entry((arch(r), r.method.clone(), others.join(" ")))
                .or_default()
                .entry(value(r, setting))
                .or_default()
                .insert(r.seed, acc);
        }
        for ((arch, method, others), by_value) in groups {
            let mut values: Vec<&String> = by_value.keys().collect();
            values.sort_by(|a, b| order(a, b));
            let Some((first, rest)) = values.split_first() else {
                continue;
            };
            for &v in rest {
                let diffs: Vec<f64> = by_value[v]
                    .iter()
                    .filter_map(|(seed, acc)| by_value[*first].get(seed).map(|b| acc - b))
                    .collect();
                if diffs.is_empty() {
                    continue;
                }
                let (low, high) = bootstrap_mean_ci(&diffs, rng);
                let arch = match others.is_empty() {
                    true => arch.clone(),
                    false => format!("{arch} {others}"),
                };
                out.push(SettingPair {
                    arch,
                    method: method.clone(),
                    setting: setting.to_string(),
                    value: v.clone(),
                    against: (*first).clone(),
                    seeds: diffs.len(),
                    mean_diff: mean(&diffs),
                    low,
                    high,
                    p_improvement: probability_of_improvement(&diffs),
                    t_p: paired_t_p(&diffs),
                });
            }
        }
    }
    out
}

fn points(v: f64) -> String {
    format!("{:+.2}", 100.0 * v)
}

/// The report's section.
pub fn write_section(md: &mut String, pairs: &[SettingPair]) -> fmt::Result {
    writeln!(
        md,
        "\n## Each varying setting paired by seed (percentage points)\n"
    )?;
    writeln!(
        md,
        "For every method that reads a setting that varies here: each value minus the first, \
         run by run on the same seed (same split, same initial linear weights), on the same \
         architecture and values of the other settings; 95 % interval of the mean difference \
         (the pairs resampled); the share of seeds in which the value is better; the paired \
         t-test's two-sided p (each row its own question: not adjusted for the table's other \
         rows).\n"
    )?;
    writeln!(
        md,
        "| arch | method | setting | value | minus | seeds | mean | interval | better in | t-test p |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for p in pairs {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | [{}, {}] | {:.0} % | {} |",
            p.arch,
            p.method,
            p.setting,
            p.value,
            p.against,
            p.seeds,
            points(p.mean_diff),
            points(p.low),
            points(p.high),
            100.0 * p.p_improvement,
            p_value(p.t_p)
        )?;
    }
    Ok(())
}

/// `setting_pairs.csv` beside comparison.csv (fractions, as results.csv has them).
pub fn csv_file(pairs: &[SettingPair]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "arch",
        "method",
        "setting",
        "value",
        "minus",
        "seeds",
        "mean_diff",
        "diff_low",
        "diff_high",
        "p_improvement",
        "t_p",
    ])?;
    for p in pairs {
        w.write_record([
            p.arch.clone(),
            p.method.clone(),
            p.setting.clone(),
            p.value.clone(),
            p.against.clone(),
            p.seeds.to_string(),
            p.mean_diff.to_string(),
            p.low.to_string(),
            p.high.to_string(),
            p.p_improvement.to_string(),
            p.t_p.map_or(String::new(), |t| t.to_string()),
        ])?;
    }
    Ok(w.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn row(method: &str, tau: f64, seed: u64, acc: f64) -> ResultRow {
        serde_json::from_value(serde_json::json!({
            "key": format!("{method}-{tau}-{seed}"), "dataset": "mnist", "arch": 3,
            "widths": "8", "depth": 1, "method": method, "seed": seed, "preset": "default",
            "epochs": 3, "phase1_epochs": 1, "lr": 0.001, "batch_size": 64, "tau": tau,
            "clamp": "10", "grad_clip": "1", "phase2_init": "warm", "loss": "logits",
            "eval_selection": "argmax", "split_seed": 42, "n_params": 1, "best_epoch": 1,
            "val_loss": 0.1, "val_acc": 0.9, "test_acc": acc, "phase1_test_acc": null,
            "epoch_seconds": 1.0, "phase1_epoch_seconds": null, "phase2_epoch_seconds": null,
            "train_seconds": 1.0, "status": "ok", "device": "cpu", "threads": 1,
            "git_commit": "", "timestamp": ""
        }))
        .unwrap()
    }

    #[test]
    fn values_pair_by_seed_against_the_first() {
        let rows = [
            row("smartmixed", 0.3, 1, 0.90),
            row("smartmixed", 0.3, 2, 0.92),
            row("smartmixed", 1.0, 1, 0.93),
            row("smartmixed", 1.0, 2, 0.91),
            // A seed without a partner, and a method that does not read tau.
            row("smartmixed", 1.0, 3, 0.99),
            row("relu", 0.3, 1, 0.5),
        ];
        let refs: Vec<&ResultRow> = rows.iter().collect();
        let value = |r: &ResultRow, _: &str| r.tau.to_string();
        let arch = |_: &ResultRow| "3".to_string();
        let reads = |r: &ResultRow, _: &str| r.method != "relu";
        let order = |a: &str, b: &str| a.parse::<f64>().unwrap().total_cmp(&b.parse().unwrap());
        let read = Readers {
            value: &value,
            arch: &arch,
            reads: &reads,
            order: &order,
        };
        let pairs = pairs(&refs, &["tau"], &read, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(pairs.len(), 1);
        let p = &pairs[0];
        assert_eq!(
            (p.value.as_str(), p.against.as_str(), p.seeds),
            ("1", "0.3", 2)
        );
        // Seed 1: +0.03, seed 2: -0.01.
        assert!((p.mean_diff - 0.01).abs() < 1e-12, "{}", p.mean_diff);
        assert_eq!(p.p_improvement, 0.5);
        // Differences +0.03 and -0.01: t = 0.01 / (sqrt(0.0008 / 2)) = 0.5 on 1 degree of
        // freedom, two-sided p = 1 - 2 atan(0.5) / pi.
        let expected = 1.0 - 2.0 * 0.5f64.atan() / std::f64::consts::PI;
        assert!((p.t_p.unwrap() - expected).abs() < 1e-9, "{:?}", p.t_p);
        assert!(p.low <= p.mean_diff && p.mean_diff <= p.high);
        let mut md = String::new();
        write_section(&mut md, &pairs).unwrap();
        assert!(
            md.contains("| 3 | smartmixed | tau | 1 | 0.3 | 2 | +1.00 |")
                && md.contains(&format!("| 50 % | {} |", p_value(p.t_p))),
            "{md}"
        );
    }
}
