//! The MNIST-1D generator against what the `mnist1d` package printed
//! (tests/data/mnist1d-reference.json, made by scripts/mnist1d-reference.py): its pieces on
//! fixed inputs, then the whole default data set (every label, every signal's sum and sum of
//! squares, the first 50 signals of each split in full) and a small shuffled variant.

use experiments::run::mnist1d::numpy::RandomState;
use experiments::run::mnist1d::scipy::{gaussian_filter, interp_linear, linspace};
use experiments::run::mnist1d::{make_dataset, templates, Mnist1d, Mnist1dArgs};
use serde_json::Value;

fn reference() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist1d-reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Every value within `tol` of the reference's.
fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} against {w}");
    }
}

#[test]
fn numpy_draws_match_the_legacy_random_state() {
    let r = reference();
    let mut rng = RandomState::new(42);
    let rand: Vec<f64> = (0..5).map(|_| rng.rand()).collect();
    // The same doubles, to the last bit.
    assert_eq!(rand, floats(&r["rand_seed42"]));
    let mut rng = RandomState::new(1);
    close(&rng.randn(7), &floats(&r["randn7_seed1"]), 1e-15, "randn");
    // The same stream on: the 7th value left the second of its pair cached.
    let mut split = rng.randn(3);
    split.extend(rng.randn(2));
    close(
        &split,
        &floats(&r["randn3_then_randn2_seed1"]),
        1e-15,
        "randn 3 + 2",
    );
    let mut rng = RandomState::new(3);
    let choices: Vec<u64> = (0..20).map(|_| u64::from(rng.below(48))).collect();
    assert_eq!(choices, ints(&r["choice48_seed3"]));
    let mut rng = RandomState::new(4);
    let perm: Vec<u64> = rng.permutation(10).iter().map(|&i| i as u64).collect();
    assert_eq!(perm, ints(&r["permutation10_seed4"]));
    let perm: Vec<u64> = rng.permutation(1000)[..20]
        .iter()
        .map(|&i| i as u64)
        .collect();
    assert_eq!(perm, ints(&r["permutation1000_seed4_head"]));
}

#[test]
fn scipy_filter_and_interpolation_match() {
    let r = reference();
    let signal = floats(&r["gauss_input"]);
    close(
        &gaussian_filter(&signal, 2.0),
        &floats(&r["gauss_sigma2"]),
        1e-12,
        "gaussian_filter",
    );
    let xs = linspace(0.0, 1.0, signal.len());
    let at = linspace(0.0, 1.0, 40);
    close(
        &interp_linear(&xs, &signal, &at),
        &floats(&r["interp_to40"]),
        1e-12,
        "interp1d",
    );
    let want: Vec<f64> = r["templates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    close(&templates().concat(), &want, 1e-12, "templates");
}

/// One split against its reference summary: labels equal, sums and sums of squares within
/// `length * 1e-6` (each value within 1e-6), the first signals in full within 1e-6.
fn check_split(x: &[f64], y: &[u8], length: usize, want: &Value, what: &str) {
    let labels: Vec<u64> = y.iter().map(|&v| u64::from(v)).collect();
    assert_eq!(labels, ints(&want["labels"]), "{what}: labels");
    let rows: Vec<&[f64]> = x.chunks_exact(length).collect();
    let sums: Vec<f64> = rows.iter().map(|r| r.iter().sum()).collect();
    let squares: Vec<f64> = rows.iter().map(|r| r.iter().map(|v| v * v).sum()).collect();
    let tol = length as f64 * 1e-6;
    close(&sums, &floats(&want["sums"]), tol, &format!("{what} sums"));
    close(
        &squares,
        &floats(&want["sums_of_squares"]),
        10.0 * tol,
        &format!("{what} squares"),
    );
    for (i, row) in want["first"].as_array().unwrap().iter().enumerate() {
        close(rows[i], &floats(row), 1e-6, &format!("{what} signal {i}"));
    }
}

fn check(data: &Mnist1d, want: &Value) {
    check_split(
        &data.train_x,
        &data.train_y,
        data.length,
        &want["train"],
        "train",
    );
    check_split(
        &data.test_x,
        &data.test_y,
        data.length,
        &want["test"],
        "test",
    );
}

#[test]
fn the_default_data_set_is_the_packages() {
    let data = make_dataset(&Mnist1dArgs::default()).unwrap();
    assert_eq!(
        (data.train_y.len(), data.test_y.len(), data.length),
        (4000, 1000, 40)
    );
    check(&data, &reference()["default"]);
}

#[test]
fn a_shuffled_variant_is_the_packages() {
    let args = Mnist1dArgs {
        num_samples: 600,
        shuffle_seq: true,
        seed: 7,
        final_seq_length: 24,
        ..Mnist1dArgs::default()
    };
    let data = make_dataset(&args).unwrap();
    check(&data, &reference()["shuffled_600_seed7_len24"]);
}

#[test]
fn bad_arguments_are_named() {
    let bad = [
        (
            Mnist1dArgs {
                num_samples: 5,
                ..Default::default()
            },
            "num_samples",
        ),
        (
            Mnist1dArgs {
                train_split: 1.0,
                ..Default::default()
            },
            "train_split",
        ),
        (
            Mnist1dArgs {
                final_seq_length: 1,
                ..Default::default()
            },
            "final_seq_length",
        ),
        (
            Mnist1dArgs {
                corr_noise_scale: -0.1,
                ..Default::default()
            },
            "corr_noise_scale",
        ),
        (
            Mnist1dArgs {
                iid_noise_scale: f64::NAN,
                ..Default::default()
            },
            "iid_noise_scale",
        ),
        (
            Mnist1dArgs {
                padding: (60, 36),
                ..Default::default()
            },
            "padding",
        ),
        (
            Mnist1dArgs {
                max_translation: 0,
                ..Default::default()
            },
            "max_translation",
        ),
    ];
    for (args, name) in bad {
        let err = make_dataset(&args).unwrap_err();
        assert!(err.contains(name), "{name}: {err}");
    }
}
