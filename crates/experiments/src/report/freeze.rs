//! What the freeze costs, read from the epoch logs. For each method whose first phase ends in a
//! switch (SmartMixed, the frozen soft mixture): the validation accuracy of the checkpoint the
//! switch restores (the phase-1 epoch with the lowest validation loss, evaluated as phase 1
//! evaluates), the validation accuracy after the first epoch of the next phase, the drop
//! between them, and how many epochs of the next phase it takes to get back.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use anyhow::{Context, Result};
use rand_chacha::ChaCha8Rng;

use crate::grid::store::ResultRow;
use crate::report::stats::{bootstrap_mean_ci, mean, median};

/// One run's switch, from its epochs.csv.
#[derive(Clone, Debug, PartialEq)]
pub struct Switch {
    /// Validation accuracy of the checkpoint the switch restores.
    pub before: f64,
    /// Validation accuracy after the first epoch of the next phase.
    pub after_first: f64,
    /// The epochs of the next phase until its validation accuracy is back at `before` (1: the
    /// first), `None` if it never is.
    pub recovered_after: Option<usize>,
}

/// The switch in an epochs.csv (columns `epoch`, `phase`, `val_loss`, `val_acc`, ...); `None`
/// when the log never leaves its first phase (a run that diverged in it).
pub fn read_switch(path: &Path) -> Result<Option<Switch>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column '{name}'", path.display()))
    };
    let (phase, val_loss, val_acc) = (column("phase")?, column("val_loss")?, column("val_acc")?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        let number = |i: usize| -> Result<f64> {
            record[i]
                .parse()
                .with_context(|| format!("{}: '{}' is not a number", path.display(), &record[i]))
        };
        rows.push((
            record[phase].to_string(),
            number(val_loss)?,
            number(val_acc)?,
        ));
    }
    Ok(switch_of(&rows))
}

/// The switch in `(phase, val_loss, val_acc)` rows, in epoch order.
fn switch_of(rows: &[(String, f64, f64)]) -> Option<Switch> {
    let first_phase = &rows.first()?.0;
    let split = rows.iter().position(|(p, _, _)| p != first_phase)?;
    // The best checkpoint as training keeps it: the lowest validation loss, the first on ties.
    let best =
        rows[..split]
            .iter()
            .fold(None, |best: Option<&(String, f64, f64)>, row| match best {
                Some(b) if b.1 <= row.1 => Some(b),
                _ => Some(row),
            })?;
    let before = best.2;
    let next = &rows[split..];
    Some(Switch {
        before,
        after_first: next[0].2,
        recovered_after: next.iter().position(|r| r.2 >= before).map(|i| i + 1),
    })
}

/// The freeze of one method in one cell, over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Freeze {
    pub cell: String,
    pub method: String,
    pub runs: usize,
    pub before: f64,
    pub after_first: f64,
    /// Mean of `after_first - before` over the runs, with its 95 % bootstrap interval.
    pub drop: f64,
    pub low: f64,
    pub high: f64,
    /// Runs whose next phase gets back to `before`, and the median epochs it takes them.
    pub recovered: usize,
    pub median_epochs: Option<f64>,
    /// Test accuracy at the switch (as phase 1 evaluates) and at the end.
    pub phase1_test: f64,
    pub test: f64,
}

/// The freeze of each (cell, method) in `runs`: a run's cell label, its row and its switch.
pub fn summarise(runs: &[(String, ResultRow, Switch)], rng: &mut ChaCha8Rng) -> Vec<Freeze> {
    let mut groups: BTreeMap<(&str, &str), Vec<(&ResultRow, &Switch)>> = BTreeMap::new();
    for (cell, row, switch) in runs {
        groups
            .entry((cell, &row.method))
            .or_default()
            .push((row, switch));
    }
    groups
        .into_iter()
        .map(|((cell, method), runs)| {
            let of = |f: &dyn Fn(&ResultRow, &Switch) -> f64| -> Vec<f64> {
                runs.iter().map(|(r, s)| f(r, s)).collect()
            };
            let drops = of(&|_, s| s.after_first - s.before);
            let (low, high) = bootstrap_mean_ci(&drops, rng);
            let mut epochs: Vec<f64> = runs
                .iter()
                .filter_map(|(_, s)| s.recovered_after.map(|e| e as f64))
                .collect();
            epochs.sort_by(f64::total_cmp);
            Freeze {
                cell: cell.to_string(),
                method: method.to_string(),
                runs: runs.len(),
                before: mean(&of(&|_, s| s.before)),
                after_first: mean(&of(&|_, s| s.after_first)),
                drop: mean(&drops),
                low,
                high,
                recovered: epochs.len(),
                median_epochs: median(&epochs),
                phase1_test: mean(&of(&|r, _| r.phase1_test_acc.unwrap_or(f64::NAN))),
                test: mean(&of(&|r, _| r.test_acc.unwrap_or(f64::NAN))),
            }
        })
        .collect()
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

fn points(v: f64) -> String {
    format!("{:+.2}", 100.0 * v)
}

/// The report's section on the freeze.
pub fn write_section(md: &mut String, freezes: &[Freeze]) -> fmt::Result {
    writeln!(md, "\n## The freeze (from the epoch logs)\n")?;
    writeln!(
        md,
        "Validation accuracy % of the checkpoint the switch restores (the selection phase's \
         lowest validation loss, evaluated as that phase evaluates: SmartMixed by its \
         `eval_selection`, the soft mixture as the mixture) and after the first epoch of the \
         frozen network; the change between them (points, mean over runs, 95 % interval of the \
         runs resampled; with `phase2_init = fresh` the linear layers are also drawn afresh at \
         the switch, so the change is then a restart's); how many runs get back to the restored accuracy in the second phase and \
         the median epochs it takes them; test accuracy % at the switch and at the end.\n"
    )?;
    writeln!(
        md,
        "| cell | method | runs | val acc at the switch | after 1 epoch | change | 95 % CI | back in | test acc at the switch | final test acc |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for f in freezes {
        let back = match f.median_epochs {
            Some(1.0) => format!("{} of {}, median 1 epoch", f.recovered, f.runs),
            Some(e) => format!("{} of {}, median {e} epochs", f.recovered, f.runs),
            None => format!("0 of {}", f.runs),
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | [{}, {}] | {} | {} | {} |",
            f.cell,
            f.method,
            f.runs,
            pct(f.before),
            pct(f.after_first),
            points(f.drop),
            points(f.low),
            points(f.high),
            back,
            pct(f.phase1_test),
            pct(f.test)
        )?;
    }
    Ok(())
}

/// `freeze.csv` beside comparison.csv (fractions, as results.csv has them).
pub fn csv_file(freezes: &[Freeze]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "cell",
        "method",
        "runs",
        "val_acc_at_switch",
        "val_acc_after_first_epoch",
        "change",
        "change_ci_low",
        "change_ci_high",
        "runs_recovered",
        "median_epochs_to_recover",
        "phase1_test_acc",
        "test_acc",
    ])?;
    for f in freezes {
        w.write_record([
            f.cell.clone(),
            f.method.clone(),
            f.runs.to_string(),
            f.before.to_string(),
            f.after_first.to_string(),
            f.drop.to_string(),
            f.low.to_string(),
            f.high.to_string(),
            f.recovered.to_string(),
            f.median_epochs.map_or(String::new(), |e| e.to_string()),
            f.phase1_test.to_string(),
            f.test.to_string(),
        ])?;
    }
    w.into_inner().context("encoding freeze.csv")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rows(log: &[(&str, f64, f64)]) -> Vec<(String, f64, f64)> {
        log.iter().map(|&(p, l, a)| (p.to_string(), l, a)).collect()
    }

    #[test]
    fn the_switch_is_read_where_training_restores() {
        // Phase 1's lowest loss is epoch 2 (acc 0.95; epoch 3 has a higher acc but a higher
        // loss); phase 2 starts at 0.93 and is back at 0.95 in its third epoch.
        let log = rows(&[
            ("1", 0.30, 0.90),
            ("1", 0.20, 0.95),
            ("1", 0.25, 0.96),
            ("2", 0.40, 0.93),
            ("2", 0.30, 0.94),
            ("2", 0.20, 0.95),
        ]);
        assert_eq!(
            switch_of(&log),
            Some(Switch {
                before: 0.95,
                after_first: 0.93,
                recovered_after: Some(3)
            })
        );
        // Ties keep the first epoch; a phase 2 that never gets back; no second phase at all.
        let tie = rows(&[("1", 0.2, 0.90), ("1", 0.2, 0.99), ("2", 0.3, 0.91)]);
        assert_eq!(
            switch_of(&tie),
            Some(Switch {
                before: 0.90,
                after_first: 0.91,
                recovered_after: Some(1)
            })
        );
        let never = rows(&[("1", 0.2, 0.97), ("2", 0.3, 0.91), ("2", 0.3, 0.96)]);
        assert_eq!(switch_of(&never).unwrap().recovered_after, None);
        assert_eq!(switch_of(&rows(&[("1", 0.2, 0.97)])), None);
        assert_eq!(switch_of(&[]), None);
    }

    #[test]
    fn summaries_average_runs_per_cell_and_method() {
        let row = |method: &str, test: f64| -> ResultRow {
            serde_json::from_value(serde_json::json!({
                "key": "k", "dataset": "mnist", "arch": 3, "widths": "8", "depth": 1,
                "method": method, "seed": 1, "preset": "default", "epochs": 3,
                "phase1_epochs": 1, "lr": 0.001, "batch_size": 64, "tau": 0.3, "clamp": "10",
                "grad_clip": "1", "phase2_init": "warm", "loss": "logits",
                "eval_selection": "argmax", "split_seed": 42, "n_params": 1, "best_epoch": 1,
                "val_loss": 0.1, "val_acc": 0.9, "test_acc": test,
                "phase1_test_acc": test - 0.01, "epoch_seconds": 1.0,
                "phase1_epoch_seconds": null, "phase2_epoch_seconds": null,
                "train_seconds": 1.0, "status": "ok", "device": "cpu", "threads": 1,
                "git_commit": "", "timestamp": ""
            }))
            .unwrap()
        };
        let switch = |before: f64, after: f64, back: Option<usize>| Switch {
            before,
            after_first: after,
            recovered_after: back,
        };
        let runs = vec![
            (
                "3".to_string(),
                row("smartmixed", 0.98),
                switch(0.97, 0.95, Some(2)),
            ),
            (
                "3".to_string(),
                row("smartmixed", 0.96),
                switch(0.97, 0.93, None),
            ),
            (
                "3".to_string(),
                row("softmix_freeze", 0.97),
                switch(0.98, 0.97, Some(4)),
            ),
        ];
        let f = summarise(&runs, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(f.len(), 2);
        let s = &f[0];
        assert_eq!(
            (s.method.as_str(), s.runs, s.recovered),
            ("smartmixed", 2, 1)
        );
        assert!((s.drop - -0.03).abs() < 1e-12, "{}", s.drop);
        assert!((s.test - 0.97).abs() < 1e-12 && (s.phase1_test - 0.96).abs() < 1e-12);
        assert_eq!(s.median_epochs, Some(2.0));
        assert!(s.low <= s.drop && s.drop <= s.high);
        assert_eq!(
            (f[1].method.as_str(), f[1].median_epochs),
            ("softmix_freeze", Some(4.0))
        );
        let mut md = String::new();
        write_section(&mut md, &f).unwrap();
        assert!(
            md.contains("| 3 | smartmixed | 2 | 97.00 | 94.00 | -3.00 |"),
            "{md}"
        );
        assert!(md.contains("1 of 2, median 2 epochs"), "{md}");
        let csv = String::from_utf8(csv_file(&f).unwrap()).unwrap();
        assert_eq!(csv.lines().count(), 3);
    }
}
