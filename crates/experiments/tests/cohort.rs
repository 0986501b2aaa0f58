//! A cohort against the same models trained one at a time, on the MNIST subset in tests/data:
//! every model's files and metrics must be the same bits (the epochs' seconds aside).

use std::path::{Path, PathBuf};

use candle_core::Device;
use experiments::progress::Progress;
use experiments::run::config::{ClampSetting, Method, Phase2Init, Settings, TrainConfig};
use experiments::run::data::{load_dir, Splits};
use experiments::run::train::{train, train_stack, RunOut};

mod common;
use common::{mini_data, temp_dir};

fn config(method: &str, seed: u64, extra: impl FnOnce(&mut Settings)) -> TrainConfig {
    let mut flags = Settings {
        widths: Some(vec![32, 16]),
        method: Some(method.parse::<Method>().unwrap()),
        seed: Some(seed),
        epochs: Some(4),
        phase1_epochs: Some(2),
        batch_size: Some(64),
        ..Default::default()
    };
    extra(&mut flags);
    TrainConfig::resolve(None, None, &flags).unwrap()
}

/// Each file of a run directory, with epochs.csv's seconds column and summary.json's timing
/// fields blanked (wall times differ between runs; everything else must not).
fn run_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let bytes = match name.as_str() {
                "epochs.csv" => {
                    let text = String::from_utf8(bytes).unwrap();
                    let lines: Vec<String> = text
                        .lines()
                        .map(|l| {
                            let mut cells: Vec<&str> = l.split(',').collect();
                            cells[5] = "";
                            cells.join(",")
                        })
                        .collect();
                    lines.join("\n").into_bytes()
                }
                "summary.json" => {
                    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    for key in [
                        "epoch_seconds",
                        "phase1_epoch_seconds",
                        "phase2_epoch_seconds",
                        "train_seconds",
                        "cohort_models",
                    ] {
                        v.as_object_mut().unwrap().remove(key);
                    }
                    serde_json::to_vec(&v).unwrap()
                }
                _ => bytes,
            };
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// {ReLU seed 1, SmartMixed seed 1 warm, SmartMixed seed 2 fresh with a small pool, ELU seed 2
/// with another learning rate} as one cohort and one at a time: the same files, bit for bit
/// (epochs.csv, choices.csv, summary.json, model.safetensors).
#[test]
fn a_cohort_trains_each_model_as_it_trains_alone() {
    let raw = load_dir(&mini_data()).unwrap();
    let device = Device::Cpu;
    let splits = Splits::new(&raw, 42, &device).unwrap();
    let configs = [
        config("relu", 1, |_| {}),
        config("smartmixed", 1, |_| {}),
        config("smartmixed", 2, |s| {
            s.phase2_init = Some(Phase2Init::Fresh);
            s.pool = Some("relu,elu,gelu".parse().unwrap());
            s.clamp = Some(ClampSetting(None));
        }),
        config("elu", 2, |s| s.lr = Some(3e-3)),
    ];
    let dir = temp_dir("cohort");
    let outs: Vec<PathBuf> = (0..configs.len())
        .map(|i| {
            let d = dir.join(format!("cohort-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let refs: Vec<&TrainConfig> = configs.iter().collect();
    let out_refs: Vec<RunOut> = outs.iter().map(|p| RunOut::from(p.as_path())).collect();
    let together = train_stack(&refs, &splits, &device, &out_refs, Progress::Quiet).unwrap();
    for (i, cfg) in configs.iter().enumerate() {
        let alone_dir = dir.join(format!("alone-{i}"));
        std::fs::create_dir_all(&alone_dir).unwrap();
        let alone = train(
            cfg,
            &splits,
            &device,
            alone_dir.as_path().into(),
            Progress::Quiet,
        )
        .unwrap();
        assert_eq!(alone.status, "ok");
        assert_eq!(together[i].cohort_models, 4);
        assert_eq!(
            (alone.val_loss, alone.test_acc, alone.best_epoch),
            (
                together[i].val_loss,
                together[i].test_acc,
                together[i].best_epoch
            ),
            "model {i}"
        );
        let (a, b) = (run_files(&alone_dir), run_files(&outs[i]));
        assert_eq!(
            a.iter().map(|f| &f.0).collect::<Vec<_>>(),
            b.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "model {i}: {name} differs between alone and cohort");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A model that diverges (a huge learning rate without clipping) gets its status and stops;
/// the other models of its cohort are the bits they are alone.
#[test]
fn a_diverging_model_leaves_the_others_untouched() {
    let raw = load_dir(&mini_data()).unwrap();
    let device = Device::Cpu;
    let splits = Splits::new(&raw, 42, &device).unwrap();
    let configs = [
        config("smartmixed", 3, |_| {}),
        config("relu", 3, |s| {
            s.lr = Some(1e30);
            s.grad_clip = Some(ClampSetting(None));
        }),
        config("tanh", 3, |_| {}),
    ];
    let dir = temp_dir("cohort-diverge");
    let outs: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("cohort-{i}"))).collect();
    for d in &outs {
        std::fs::create_dir_all(d).unwrap();
    }
    let refs: Vec<&TrainConfig> = configs.iter().collect();
    let out_refs: Vec<RunOut> = outs.iter().map(|p| RunOut::from(p.as_path())).collect();
    let together = train_stack(&refs, &splits, &device, &out_refs, Progress::Quiet).unwrap();
    assert_eq!(together[1].status, "diverged");
    assert_eq!(together[1].diverged_epoch, Some(1));
    for i in [0, 2] {
        assert_eq!(together[i].status, "ok");
        let alone_dir = dir.join(format!("alone-{i}"));
        std::fs::create_dir_all(&alone_dir).unwrap();
        train(
            &configs[i],
            &splits,
            &device,
            alone_dir.as_path().into(),
            Progress::Quiet,
        )
        .unwrap();
        for ((name, x), (_, y)) in run_files(&alone_dir).iter().zip(&run_files(&outs[i])) {
            assert!(
                x == y,
                "model {i}: {name} differs next to a diverging model"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
