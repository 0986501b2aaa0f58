//! The analysis scripts the result pages quote, on small sets whose answers are known:
//! scripts/sign-test.py pairs runs by seed as it says (a soft mixture at SmartMixed's tau, a
//! fixed function at every tau) and counts and tests what it should.

use std::path::Path;
use std::process::{Command, Output};

mod common;

const HEADER: &str = "dataset,net,arch,widths,preset,epochs,lr,batch_size,split_seed,mnist1d,\
                      method,tau,not_applicable,seed,test_acc,status";

/// One finished run of a small conv net trained for 8 epochs: `tau` is read only by the
/// methods that read it.
fn run_row(net: &str, method: &str, tau: f64, seed: u64, acc: f64) -> String {
    run_row_for(net, 8, method, tau, seed, acc)
}

fn run_row_for(net: &str, epochs: u32, method: &str, tau: f64, seed: u64, acc: f64) -> String {
    let unread = match method {
        "smartmixed" | "softmix" | "softmix_freeze" => "",
        _ => "phase1_epochs tau clamp phase2_init eval_selection pool",
    };
    format!(
        "fashion-mnist,{net},,6-16,default,{epochs},0.001,128,42,,{method},{tau},{unread},{seed},\
         {acc},ok"
    )
}

fn write_set(dir: &Path, rows: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("results.csv"),
        format!("{HEADER}\n{}\n", rows.join("\n")),
    )
    .unwrap();
}

fn sign_test(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(common::crate_dir().join("../../scripts/sign-test.py"))
        .args(args)
        .output()
        .expect("python3 runs scripts/sign-test.py")
}

/// The table row of `method`, its cells trimmed.
fn row_of<'a>(table: &'a str, method: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.starts_with(&format!("| {method} |")))
        .unwrap_or_else(|| panic!("no row for {method} in:\n{table}"))
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn sign_test_pairs_by_seed_and_tau() {
    let dir = common::temp_dir("sign-test");
    let mut rows = Vec::new();
    for seed in 1..=4 {
        let s = seed as f64 / 100.0;
        for (net, base) in [("lenet5", 0.80), ("conv4", 0.90)] {
            // SmartMixed: the same accuracy at both tau.
            rows.push(run_row(net, "smartmixed", 0.3, seed, base + s));
            rows.push(run_row(net, "smartmixed", 1.0, seed, base + s));
            // ReLU: one run per seed serves both tau; below SmartMixed in every seed but one
            // (a tie) of LeNet-5.
            let relu = match (net, seed) {
                ("lenet5", 1) => base + s,
                _ => base + s - 0.01,
            };
            rows.push(run_row(net, "relu", 0.3, seed, relu));
            // The soft mixture: below SmartMixed at tau 0.3, above it at tau 1.
            rows.push(run_row(net, "softmix", 0.3, seed, base + s - 0.02));
            rows.push(run_row(net, "softmix", 1.0, seed, base + s + 0.02));
            // ELU: below SmartMixed in 6 of the 8 pairs (above in LeNet-5's seeds 1 and 2).
            let elu = match (net, seed) {
                ("lenet5", 1 | 2) => base + s + 0.03,
                _ => base + s - 0.03,
            };
            rows.push(run_row(net, "elu", 0.3, seed, elu));
        }
    }
    write_set(&dir.join("set"), &rows);
    let set = dir.join("set");
    let out = sign_test(&["--against", "relu,softmix,elu", set.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (tau_03, tau_1) = text
        .split_once("SmartMixed at tau 1")
        .expect("a table per tau");

    // 8 pairs a table: the soft mixture at its own tau (8-0, then 0-8), never the other's.
    // Exact two-sided sign test, 8 of 8: p = 2 / 2^8 = 0.0078; Holm over the three methods
    // (p 0.0078, 0.0156, 0.289): 3 x 0.0078 = 0.023, 2 x 0.0156 = 0.031, 0.289.
    let softmix = row_of(tau_03, "softmix");
    assert_eq!(
        softmix[1..],
        ["4-0 (+2.00)", "4-0 (+2.00)", "8-0", "0.0078", "0.023"]
    );
    let softmix = row_of(tau_1, "softmix");
    assert_eq!(softmix[3], "0-8");
    // ReLU serves both tau: 7 wins and a tie in each table; 7 of 7 decided: p = 2 / 2^7.
    let relu = row_of(tau_03, "relu");
    assert_eq!(
        relu[1..],
        ["3-0-1 (+0.75)", "4-0 (+1.00)", "7-0-1", "0.016", "0.031"]
    );
    assert_eq!(row_of(tau_1, "relu")[1..4], relu[1..4]);
    // ELU 6-2: p = 2 (1 + 8 + 28) / 2^8 = 0.289, the whole tail.
    let elu = row_of(tau_03, "elu");
    assert_eq!(
        elu[1..],
        ["2-2 (+0.00)", "4-0 (+3.00)", "6-2", "0.29", "0.29"]
    );
}

#[test]
fn sign_test_keeps_budgets_apart() {
    // LeNet-5 for 8 and for 16 epochs: a pair only within a budget, a column each.
    let dir = common::temp_dir("sign-test-budgets");
    let mut rows = Vec::new();
    for seed in 1..=4 {
        for (epochs, relu) in [(8, 0.80), (16, 0.90)] {
            rows.push(run_row_for("lenet5", epochs, "smartmixed", 0.3, seed, 0.85));
            rows.push(run_row_for("lenet5", epochs, "relu", 0.3, seed, relu));
        }
    }
    write_set(&dir.join("set"), &rows);
    let set = dir.join("set");
    let out = sign_test(&["--tau", "0.3", "--against", "relu", set.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("| method | lenet5, 8 epochs | lenet5, 16 epochs |"),
        "{text}"
    );
    assert_eq!(
        row_of(&text, "relu")[1..],
        ["4-0 (+5.00)", "0-4 (-5.00)", "4-4", "1", "1"]
    );
}

#[test]
fn sign_test_refuses_what_it_cannot_pair() {
    let dir = common::temp_dir("sign-test-bad");
    // Two ReLU runs with the same settings and seed: which one pairs is not defined.
    let rows = [
        run_row("lenet5", "smartmixed", 0.3, 1, 0.8),
        run_row("lenet5", "relu", 0.3, 1, 0.7),
        run_row("lenet5", "relu", 0.3, 1, 0.75),
    ];
    write_set(&dir.join("twice"), &rows);
    for (args, says) in [
        (vec![dir.join("twice")], "two runs of relu"),
        (vec![dir.join("missing")], "results.csv: no such file"),
    ] {
        let mut args: Vec<&str> = args.iter().map(|p| p.to_str().unwrap()).collect();
        args.extend(["--against", "relu"]);
        let out = sign_test(&args);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}
