//! End to end: the `smartmixed train` binary on the MNIST subset shipped in tests/data.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{mini_data, run as smartmixed};

/// Where a test's run writes (not created: `train` creates it).
fn out_dir(name: &str) -> PathBuf {
    common::temp_dir(name).join("out")
}

fn train(out: &Path, extra: &[&str]) -> serde_json::Value {
    let data = mini_data();
    let mut args = vec![
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let output = smartmixed(&args);
    assert!(
        output.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "--quiet printed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&summary).expect("summary.json parses")
}

fn metrics(summary: &serde_json::Value) -> Vec<String> {
    [
        "status",
        "test_acc",
        "val_acc",
        "val_loss",
        "best_epoch",
        "phase1_test_acc",
        "n_params",
        "layer_shares",
    ]
    .iter()
    .map(|k| summary[k].to_string())
    .collect()
}

/// Training rows of epochs.csv without the seconds column.
fn epoch_rows(out: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(out.join("epochs.csv")).expect("epochs.csv");
    let header = reader.headers().unwrap().clone();
    let seconds = header
        .iter()
        .position(|h| h == "seconds")
        .expect("seconds column");
    reader
        .records()
        .map(|r| {
            r.unwrap()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != seconds)
                .map(|(_, v)| v.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn baseline_trains_writes_its_files_and_is_reproducible() {
    let (a, b) = (out_dir("relu-a"), out_dir("relu-b"));
    let args = [
        "--method",
        "relu",
        "--widths",
        "128,64",
        "--epochs",
        "4",
        "--batch-size",
        "64",
        "--seed",
        "3",
    ];
    let summary = train(&a, &args);
    assert_eq!(summary["status"], "ok");
    let acc = summary["test_acc"].as_f64().unwrap();
    assert!(
        acc > 0.7,
        "test accuracy {acc} is not far above chance (0.1)"
    );
    assert!(summary["phase1_test_acc"].is_null());
    assert_eq!(
        summary["n_params"],
        784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    );
    for f in [
        "config.json",
        "epochs.csv",
        "summary.json",
        "model.safetensors",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    assert!(!a.join("choices.csv").exists(), "a baseline has no choices");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (
            config["method"].as_str(),
            config["seed"].as_u64(),
            config["lr"].as_f64()
        ),
        (Some("relu"), Some(3), Some(1e-3))
    );
    assert_eq!(epoch_rows(&a).len(), 4);
    let weights =
        candle_core::safetensors::load(a.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(weights["linear.0.weight"].dims(), &[128, 784]);

    // Same seed and config: the same metrics and the same epoch log (timing aside).
    let again = train(&b, &args);
    assert_eq!(metrics(&summary), metrics(&again));
    assert_eq!(epoch_rows(&a), epoch_rows(&b));
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn smartmixed_runs_both_phases_and_records_its_choices() {
    let (a, b) = (out_dir("sm-a"), out_dir("sm-b"));
    let args = [
        "--widths",
        "96,48",
        "--epochs",
        "5",
        "--phase1-epochs",
        "2",
        "--batch-size",
        "64",
        "--seed",
        "5",
    ];
    let summary = train(&a, &args);
    assert_eq!(summary["status"], "ok");
    let acc = summary["test_acc"].as_f64().unwrap();
    assert!(
        acc > 0.7,
        "test accuracy {acc} is not far above chance (0.1)"
    );
    assert!(summary["phase1_test_acc"].as_f64().unwrap() > 0.3);
    assert!(
        summary["best_epoch"].as_u64().unwrap() >= 3,
        "the final model comes from phase 2"
    );
    assert!(summary["phase1_epoch_seconds"].as_f64().unwrap() > 0.0);
    assert!(summary["phase2_epoch_seconds"].as_f64().unwrap() > 0.0);
    // Logits of phase 1 add 6 per hidden neuron to the phase-1 model's count.
    assert_eq!(
        summary["n_params"],
        784 * 96 + 96 + 96 * 48 + 48 + 48 * 10 + 10 + 6 * (96 + 48)
    );

    // choices.csv: one row per hidden neuron, valid names, matching the shares in the summary.
    let mut reader = csv::Reader::from_path(a.join("choices.csv")).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["layer", "neuron", "activation"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 96 + 48);
    let relu_in_l1 = rows
        .iter()
        .filter(|r| &r[0] == "1" && &r[2] == "relu")
        .count();
    let share = summary["layer_shares"][0][0].as_f64().unwrap();
    assert!((share - relu_in_l1 as f64 / 96.0).abs() < 1e-12);
    for r in &rows {
        r[2].parse::<mixed_act::Activation>()
            .expect("a valid activation name");
    }
    let weights =
        candle_core::safetensors::load(a.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(weights["hidden.1.ids"].dims(), &[48]);

    // Phase-1 epochs carry shares that sum to 1 per layer; phase-2 epochs leave them empty.
    let epochs = epoch_rows(&a);
    assert_eq!(
        epochs.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
        ["1", "1", "2", "2", "2"]
    );
    let layer1: f64 = epochs[0][5..11]
        .iter()
        .map(|v| v.parse::<f64>().unwrap())
        .sum();
    assert!((layer1 - 1.0).abs() < 1e-5);
    assert!(epochs[4][5..].iter().all(|v| v.is_empty()));

    let again = train(&b, &args);
    assert_eq!(metrics(&summary), metrics(&again));
    assert_eq!(epoch_rows(&a), epoch_rows(&b));
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A pool other than the paper's: choices, shares, epochs.csv columns, the logits' count and
/// config.json all follow it; a baseline may be any candidate.
#[test]
fn a_pool_shapes_choices_shares_and_files() {
    let out = out_dir("pool");
    let args = [
        "--widths",
        "32,16",
        "--epochs",
        "3",
        "--phase1-epochs",
        "2",
        "--batch-size",
        "64",
        "--pool",
        "mish, relu,gelu",
    ];
    let summary = train(&out, &args);
    assert_eq!(summary["status"], "ok");
    // Three logits per hidden neuron in phase 1.
    assert_eq!(
        summary["n_params"],
        784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10 + 3 * (32 + 16)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["pool"], "mish,relu,gelu");
    let shares = summary["layer_shares"].as_array().unwrap();
    for layer in shares {
        let layer: Vec<f64> = layer
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(layer.len(), 3);
        assert!((layer.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let mut reader = csv::Reader::from_path(out.join("choices.csv")).unwrap();
    let chosen: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[2].to_string())
        .collect();
    assert_eq!(chosen.len(), 48);
    assert!(chosen
        .iter()
        .all(|a| ["mish", "relu", "gelu"].contains(&a.as_str())));
    // The layer-1 share of mish (the pool's first member) in the summary is choices.csv's.
    let mish_l1 = chosen[..32].iter().filter(|a| *a == "mish").count() as f64 / 32.0;
    assert!((shares[0][0].as_f64().unwrap() - mish_l1).abs() < 1e-12);
    let header: Vec<String> = csv::Reader::from_path(out.join("epochs.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .skip(6)
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "share_l1_mish",
            "share_l1_relu",
            "share_l1_gelu",
            "share_l2_mish",
            "share_l2_relu",
            "share_l2_gelu"
        ]
    );
    std::fs::remove_dir_all(&out).unwrap();

    let gelu = out_dir("gelu");
    let summary = train(
        &gelu,
        &["--widths", "16", "--epochs", "1", "--method", "gelu"],
    );
    assert_eq!(summary["status"], "ok");
    assert!(summary["layer_shares"].is_null());
    std::fs::remove_dir_all(&gelu).unwrap();
}

/// Bad input: exit code 2, no panic, a message that names the problem.
#[test]
fn bad_input_is_a_clear_error() {
    let out = out_dir("bad");
    let mini = mini_data();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--method", "swish"], "unknown method 'swish'"),
        (vec!["--epochs", "0"], "--epochs"),
        (
            vec!["--epochs", "3", "--phase1-epochs", "3"],
            "--phase1-epochs",
        ),
        (vec!["--lr=-0.1"], "--lr"),
        (vec!["--batch-size", "5000"], "larger than the training set"),
        (vec!["--device", "cuda"], "built without GPU support"),
        (
            vec!["--data-dir", "/nonexistent/mnist"],
            "/nonexistent/mnist",
        ),
        (vec!["--pool", "relu,swish"], "unknown activation 'swish'"),
        (vec!["--pool", "relu,tanh,relu"], "'relu' appears twice"),
        (vec!["--pool", ""], "the pool is empty"),
        (vec!["--tau=-1"], "--tau"),
        (vec!["--tau", "nan"], "--tau"),
        (
            vec!["--method", "pau", "--pool", "relu,elu"],
            "--pool is not a setting of --method pau",
        ),
        (
            vec!["--method", "prelu", "--tau", "1"],
            "--tau is not a setting of --method prelu",
        ),
        (
            vec!["--method", "softmix", "--phase1-epochs", "2"],
            "--phase1-epochs is not a setting of --method softmix (it reads: tau, clamp, pool)",
        ),
        (
            vec!["--method", "relu", "--clamp", "5"],
            "--clamp is not a setting of --method relu",
        ),
        (vec!["--dataset", "mnist2d"], "invalid value 'mnist2d'"),
        (
            vec!["--dataset", "mnist1d", "--mnist1d", "num_samples=5"],
            "mnist1d: num_samples = 5: at least 10",
        ),
        (
            vec!["--dataset", "mnist1d", "--mnist1d", "num_samples=12"],
            "num_samples = 12 with train_split = 0.8 leaves 8 training signals",
        ),
        (
            vec!["--dataset", "mnist1d", "--mnist1d", "num_samples=50"],
            "--batch-size 64 is larger than the training set (36 samples, made by mnist1d \
             num_samples = 50",
        ),
        (
            vec!["--dataset", "mnist1d", "--mnist1d", "iid_noise_scale=-0.5"],
            "mnist1d: iid_noise_scale = -0.5: must be finite and not negative",
        ),
        (
            vec!["--dataset", "mnist1d", "--mnist1d", "final_seq_length=1"],
            "mnist1d: final_seq_length = 1: at least 2",
        ),
        (
            vec!["--dataset", "mnist1d", "--mnist1d", "shuffle=true"],
            "unknown argument 'shuffle'",
        ),
        (
            vec!["--mnist1d", "seed=3"],
            "sets MNIST-1D's generator, but the data set is mnist",
        ),
        (
            vec!["--net", "lenet5", "--dataset", "mnist1d"],
            "--net lenet5 is a 2-D net, but mnist1d's inputs are 1-D (40x1)",
        ),
        (
            vec!["--net", "mnist1d-cnn"],
            "--net mnist1d-cnn is a 1-D net, but mnist's inputs are 2-D (28x28x1)",
        ),
        (
            vec![
                "--net",
                "mnist1d-cnn",
                "--dataset",
                "mnist1d",
                "--mnist1d",
                "final_seq_length=2",
            ],
            "--net mnist1d-cnn does not fit mnist1d's input (2x1): layer 1",
        ),
        (
            vec!["--net", "conv4", "--widths", "8"],
            "cannot be used with",
        ),
        (vec!["--net", "vgg8"], "invalid value 'vgg8' for '--net"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["train", "--out", out.to_str().unwrap()];
        if !extra.contains(&"--data-dir") {
            args.extend(["--data-dir", mini.to_str().unwrap()]);
        }
        args.extend(extra.iter().copied());
        let output = smartmixed(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{extra:?}: '{needle}' not in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
        // Nothing half-written: every check comes before the run directory.
        assert!(!out.exists(), "{extra:?} left {}", out.display());
    }
}

/// Without a data directory the hub is tried; offline, the error says what to do instead (for
/// CIFAR-10: where its binary batches go).
#[test]
fn offline_hub_failure_points_to_data_dir() {
    let home = out_dir("hf-home");
    let out = out_dir("hub");
    for (dataset, files) in [("mnist", "IDX files"), ("cifar10", "data_batch_1.bin")] {
        let output = Command::new(env!("CARGO_BIN_EXE_smartmixed"))
            .args([
                "train",
                "--dataset",
                dataset,
                "--method",
                "relu",
                "--epochs",
                "1",
                "--out",
                out.to_str().unwrap(),
            ])
            .env_remove("SMARTMIXED_DATA_DIR")
            .env("HF_HOME", &home)
            .env("HF_HUB_CACHE", home.join("hub"))
            // A closed port on the loopback: no traffic leaves the machine.
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--data-dir")
                && stderr.contains("SMARTMIXED_DATA_DIR")
                && stderr.contains(files)
                && stderr.contains(dataset),
            "{stderr}"
        );
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(home);
}

/// `--dataset mnist1d` trains on the generated signals (no data directory is read; the one the
/// helper passes is ignored): inputs of 40, the package's 4,000 training signals split 3,600 /
/// 400, and the preset's settings recorded; the same seed gives the same run.
#[test]
fn mnist1d_trains_on_generated_signals() {
    let out = out_dir("mnist1d");
    let flags = [
        "--preset",
        "mnist1d",
        "--widths",
        "24,16",
        "--method",
        "smartmixed",
        "--epochs",
        "4",
        "--phase1-epochs",
        "2",
    ];
    let summary = train(&out, &flags);
    assert_eq!(summary["status"], "ok");
    // Ten classes: well above chance after four epochs.
    assert!(summary["val_acc"].as_f64().unwrap() > 0.2, "{summary}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["dataset"], "mnist1d");
    assert_eq!(config["batch_size"], 100);
    assert_eq!(config["lr"], 1e-2);
    assert!(config["data_source"]
        .as_str()
        .unwrap()
        .starts_with("generated: mnist1d 0.0.2.post1"));
    let tensors =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(tensors["linear.0.weight"].dims(), &[24, 40]);
    let again = out_dir("mnist1d-again");
    assert_eq!(metrics(&train(&again, &flags)), metrics(&summary));
    for dir in [out, again] {
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}

/// MNIST-1D's generator arguments are run settings: a longer, shuffled, smaller variant trains,
/// its inputs are as long as `final_seq_length` says, config.json records every argument, and
/// the data differ from the published set's.
#[test]
fn mnist1d_generator_arguments_make_other_variants() {
    let out = out_dir("mnist1d-variant");
    let flags = [
        "--preset",
        "mnist1d",
        "--widths",
        "16",
        "--method",
        "relu",
        "--epochs",
        "2",
        "--mnist1d",
        "num_samples=2000,shuffle_seq=true,final_seq_length=60",
    ];
    let summary = train(&out, &flags);
    assert_eq!(summary["status"], "ok");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["mnist1d"]["num_samples"], 2000);
    assert_eq!(config["mnist1d"]["shuffle_seq"], true);
    assert_eq!(config["mnist1d"]["padding"], serde_json::json!([36, 60]));
    assert!(
        config["data_source"]
            .as_str()
            .unwrap()
            .contains("2000 signals of length 60"),
        "{}",
        config["data_source"]
    );
    let tensors =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(tensors["linear.0.weight"].dims(), &[16, 60]);
    // The same variant with its positions in order is other data: another run.
    let ordered = out_dir("mnist1d-ordered");
    let mut unshuffled = flags;
    unshuffled[9] = "num_samples=2000,final_seq_length=60";
    let other = train(&ordered, &unshuffled);
    assert_ne!(epoch_rows(&ordered), epoch_rows(&out));
    assert_eq!(other["n_params"], summary["n_params"]);
    for dir in [out, ordered] {
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}

/// A CIFAR-10 directory of the original binary batches, `records` images in each file, image i
/// of a file holding label i % 10 and pixels drawn from a fixed seed.
fn cifar_fixture(dir: &Path, records: usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    std::fs::create_dir_all(dir).unwrap();
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for name in names {
        let mut bytes = Vec::new();
        for i in 0..records {
            bytes.push((i % 10) as u8);
            bytes.extend((0..3072).map(|_| rng.random::<u8>()));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// CIFAR-10 from a directory of binary batches (here 30 images a file; candle-datasets'
/// reader would insist on 10,000): a LeNet-5 on 32x32x3 and an MLP on 3,072 inputs train; a
/// truncated file exits 2 naming it, and the folder of the original archive is found inside a
/// data directory.
#[test]
fn cifar10_trains_from_binary_batches() {
    let base = common::temp_dir("cifar");
    let data = base.join("cifar-10-batches-bin");
    cifar_fixture(&data, 30);
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            "cifar10",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--method",
            "prelu",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        smartmixed(&args)
    };
    let lenet = base.join("lenet");
    // The data directory above the archive's folder.
    let output = run(
        &lenet,
        &["--net", "lenet5", "--data-dir", base.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tensors =
        candle_core::safetensors::load(lenet.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(tensors["conv.0.weight"].dims(), &[6, 75]);
    // 32 -> 28 -> 14 -> 10 -> 5: 400 features into the first linear layer.
    assert_eq!(tensors["linear.2.weight"].dims(), &[120, 400]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lenet.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["net"], "lenet5");
    assert_eq!(config["widths"], serde_json::json!([6, 16, 120, 84]));
    let mlp = base.join("mlp");
    let output = run(
        &mlp,
        &["--widths", "16", "--data-dir", data.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tensors =
        candle_core::safetensors::load(mlp.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(tensors["linear.0.weight"].dims(), &[16, 3072]);
    // A file cut short.
    let short = data.join("data_batch_3.bin");
    let bytes = std::fs::read(&short).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() - 5]).unwrap();
    let out = base.join("short");
    let output = run(
        &out,
        &["--widths", "16", "--data-dir", data.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("data_batch_3.bin")
            && stderr.contains("not a whole number of CIFAR-10 records"),
        "{stderr}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(base).unwrap();
}
