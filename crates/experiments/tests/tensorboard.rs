//! The TensorBoard writer against bytes the `tensorboard` package wrote
//! (tests/data/tensorboard-reference.json, made by scripts/tensorboard-reference.py): the masked
//! CRC-32C, whole framed records and serialized events; and a file written here read back.

use experiments::tensorboard::proto::{Event, EventWhat, SummaryValueKind};
use experiments::tensorboard::record::{frame, masked_crc32c, unframe};
use experiments::tensorboard::{read_events, EventWriter, FILE_VERSION};
use prost::Message;

mod common;

fn reference() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tensorboard-reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn framing_gives_tensorboards_bytes() {
    let r = reference();
    for pair in r["masked_crc32c"].as_array().unwrap() {
        let payload = unhex(pair[0].as_str().unwrap());
        assert_eq!(
            u64::from(masked_crc32c(&payload)),
            pair[1].as_u64().unwrap()
        );
    }
    for pair in r["records"].as_array().unwrap() {
        let payload = unhex(pair[0].as_str().unwrap());
        let framed = frame(&payload);
        assert_eq!(hex(&framed), pair[1].as_str().unwrap());
        assert_eq!(unframe(&framed).unwrap(), vec![payload.as_slice()]);
    }
}

#[test]
fn events_encode_as_tensorboards_protos_do() {
    for e in reference()["events"].as_array().unwrap() {
        let want = unhex(e["bytes"].as_str().unwrap());
        let event = Event::decode(want.as_slice()).unwrap();
        assert!((event.wall_time - e["wall_time"].as_f64().unwrap()).abs() < 1e-6);
        assert_eq!(event.step, e["step"].as_i64().unwrap());
        match &event.what {
            Some(EventWhat::FileVersion(v)) => assert_eq!(v, e["file_version"].as_str().unwrap()),
            Some(EventWhat::SessionLog(log)) => {
                assert_eq!(i64::from(log.status), e["session_log"].as_i64().unwrap())
            }
            Some(EventWhat::Summary(s)) => {
                let scalars = e["scalars"].as_array().unwrap();
                assert_eq!(s.value.len(), scalars.len());
                for (v, want) in s.value.iter().zip(scalars) {
                    assert_eq!(v.tag, want[0].as_str().unwrap());
                    let Some(SummaryValueKind::SimpleValue(x)) = v.value else {
                        panic!("a scalar")
                    };
                    // f32 in the proto (serde_json's f64 parse may miss the last digit).
                    assert_eq!(x, want[1].as_f64().unwrap() as f32);
                }
            }
            None => panic!("an event with nothing"),
        }
        // Encoded again, the same bytes.
        assert_eq!(hex(&event.encode_to_vec()), hex(&want));
    }
}

#[test]
fn a_written_file_reads_back_and_damage_is_named() {
    let dir = common::temp_dir("tensorboard");
    let mut writer = EventWriter::create(&dir, 1765000000.5, "test").unwrap();
    writer
        .scalars(
            3,
            1765000001.0,
            &[("loss/train", 0.5), ("accuracy/val", 0.875)],
        )
        .unwrap();
    writer.flush().unwrap();
    let path = writer.path().to_path_buf();
    assert!(path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("events.out.tfevents.1765000000."));
    let events = read_events(&path).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].what,
        Some(EventWhat::FileVersion(FILE_VERSION.into()))
    );
    let Some(EventWhat::Summary(s)) = &events[1].what else {
        panic!("a summary")
    };
    assert_eq!((events[1].step, s.value.len()), (3, 2));
    assert_eq!(s.value[1].value, Some(SummaryValueKind::SimpleValue(0.875)));
    // A flipped byte and a torn tail are errors that name the record.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = format!("{:#}", read_events(&path).unwrap_err());
    assert!(err.contains("record 1: the payload's checksum"), "{err}");
    bytes.truncate(bytes.len() - 3);
    let err = format!("{:#}", unframe(&bytes).unwrap_err());
    assert!(err.contains("record 1"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The hparams plugin's summaries: what the package wrote, decoded, equals what this crate
/// builds (the map of hyperparameters is compared decoded: its order on the wire is each
/// writer's own), and this crate's bytes decode to the same.
#[test]
fn hparams_summaries_carry_what_the_plugin_writes() {
    use experiments::tensorboard::proto::{HParamsPluginData, Summary};
    use experiments::tensorboard::{session_end, session_start, HParam, SessionStatus};
    let r = &reference()["hparams"];
    let theirs = |key: &str| Summary::decode(unhex(r[key].as_str().unwrap()).as_slice()).unwrap();
    let plugin = |s: &Summary| {
        let data = &s.value[0]
            .metadata
            .as_ref()
            .unwrap()
            .plugin_data
            .as_ref()
            .unwrap();
        assert_eq!(data.plugin_name, "hparams");
        HParamsPluginData::decode(data.content.as_slice()).unwrap()
    };
    let values = r["values"].as_object().unwrap();
    let hparams: Vec<(&str, HParam)> = values
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::Bool(b) => HParam::Bool(*b),
                serde_json::Value::String(s) => HParam::Text(s.clone()),
                n => HParam::Number(n.as_f64().unwrap()),
            };
            (k.as_str(), value)
        })
        .collect();
    let start_time = r["start_time_secs"].as_f64().unwrap();
    let ours = session_start(&hparams, r["group_name"].as_str().unwrap(), start_time);
    let theirs_start = theirs("session_start");
    assert_eq!(ours.value[0].tag, theirs_start.value[0].tag);
    assert_eq!(ours.value[0].value, theirs_start.value[0].value);
    assert_eq!(plugin(&ours), plugin(&theirs_start));
    let ours_end = session_end(SessionStatus::Success, r["end_time_secs"].as_f64().unwrap());
    // No map: the same bytes.
    assert_eq!(
        hex(&ours_end.encode_to_vec()),
        r["session_end"].as_str().unwrap()
    );
    // Ours, encoded and decoded, is unchanged.
    assert_eq!(
        Summary::decode(ours.encode_to_vec().as_slice()).unwrap(),
        ours
    );
}

/// The custom-scalars layout summary: the same bytes as the plugin's (a string tensor holding
/// the serialized layout, the plugin named in the metadata).
#[test]
fn a_custom_scalars_layout_is_the_plugins_summary() {
    use experiments::tensorboard::layout_summary;
    use experiments::tensorboard::proto::{Category, Chart, Layout, MultilineChartContent};
    let r = &reference()["custom_scalars"];
    let chart = |title: &str, tags: &[&str]| Chart {
        title: title.into(),
        multiline: Some(MultilineChartContent {
            tag: tags.iter().map(|t| t.to_string()).collect(),
        }),
    };
    let layout = Layout {
        version: 0,
        category: vec![
            Category {
                title: "loss and accuracy".into(),
                chart: vec![chart("loss", &["^loss/train$", "^loss/val$"])],
                closed: false,
            },
            Category {
                title: "functions chosen per layer".into(),
                chart: vec![chart("layer 1", &["^share_layer1/"])],
                closed: false,
            },
        ],
    };
    assert_eq!(hex(&layout.encode_to_vec()), r["layout"].as_str().unwrap());
    assert_eq!(
        hex(&layout_summary(&layout).encode_to_vec()),
        r["summary"].as_str().unwrap()
    );
}

mod runs {
    //! What runs write: a run's file decoded back against its epochs.csv and summary.json, the
    //! export equal to the live file but for wall times, a sweep's run names and groups.

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use experiments::tensorboard::proto::{
        Event, EventWhat, HParamsData, HParamsPluginData, ProtoValueKind, SummaryValueKind,
    };
    use experiments::tensorboard::read_events;
    use prost::Message;

    use super::common::{self, event_files, mini_data, run_ok};

    /// `smartmixed sweep` of `config` into `out` on the MNIST subset, quiet, with `extra` flags.
    fn sweep(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
        common::sweep_command(config, out)
            .arg("--data-dir")
            .arg(mini_data())
            .arg("--quiet")
            .args(extra)
            .output()
            .expect("the smartmixed binary runs")
    }

    /// [`sweep`], which must succeed.
    fn sweep_ok(config: &Path, out: &Path, extra: &[&str]) {
        let output = sweep(config, out, extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
    }

    /// The hparams plugin data of an event, if it has some.
    pub fn plugin_data(e: &Event) -> Option<HParamsData> {
        let Some(EventWhat::Summary(s)) = &e.what else {
            return None;
        };
        let meta = s.value.first()?.metadata.as_ref()?.plugin_data.as_ref()?;
        HParamsPluginData::decode(meta.content.as_slice())
            .unwrap()
            .data
    }

    /// Scalars by tag: (step, value) in file order.
    pub fn scalars(events: &[Event]) -> BTreeMap<String, Vec<(i64, f32)>> {
        let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
        for e in events {
            if let Some(EventWhat::Summary(s)) = &e.what {
                for v in &s.value {
                    if let Some(SummaryValueKind::SimpleValue(x)) = v.value {
                        out.entry(v.tag.clone()).or_default().push((e.step, x));
                    }
                }
            }
        }
        out
    }

    /// The events with every wall time (and the sessions' times) zeroed.
    fn without_times(events: Vec<Event>) -> Vec<Event> {
        events
            .into_iter()
            .map(|mut e| {
                e.wall_time = 0.0;
                if let Some(EventWhat::Summary(s)) = &mut e.what {
                    for v in &mut s.value {
                        let Some(p) = v.metadata.as_mut().and_then(|m| m.plugin_data.as_mut())
                        else {
                            continue;
                        };
                        let mut data = HParamsPluginData::decode(p.content.as_slice()).unwrap();
                        match &mut data.data {
                            Some(HParamsData::SessionStartInfo(s)) => s.start_time_secs = 0.0,
                            Some(HParamsData::SessionEndInfo(s)) => s.end_time_secs = 0.0,
                            _ => {}
                        }
                        p.content = data.encode_to_vec();
                    }
                }
                e
            })
            .collect()
    }

    fn only_file(dir: &Path) -> Vec<Event> {
        let files = event_files(dir);
        assert_eq!(files.len(), 1, "{files:?}");
        let paths = &files[Path::new("")];
        assert_eq!(paths.len(), 1, "{paths:?}");
        read_events(&paths[0]).unwrap()
    }

    /// SmartMixed's run alone: every epoch's curves equal epochs.csv's fields, the shares of
    /// the selection epochs and the kept choices, both test accuracies at their epochs, the
    /// session's settings and its success; the export of its files equals the live file but
    /// for wall times.
    #[test]
    fn a_run_writes_what_its_files_record_and_the_export_matches() {
        let dir = common::temp_dir("tb-run");
        let out = dir.join("out");
        let data = mini_data();
        run_ok(&[
            "train",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--method",
            "smartmixed",
            "--widths",
            "16,8",
            "--epochs",
            "3",
            "--phase1-epochs",
            "2",
            "--batch-size",
            "64",
            "--tau",
            "1",
        ]);
        let live = only_file(&out);
        assert!(matches!(&live[0].what, Some(EventWhat::FileVersion(_))));
        // A session-log START first: a reader holding an earlier attempt drops it.
        assert!(matches!(
            &live[1].what,
            Some(EventWhat::SessionLog(log)) if log.status == 1
        ));
        let Some(HParamsData::SessionStartInfo(start)) = plugin_data(&live[2]) else {
            panic!("the session start comes next")
        };
        // The group: architecture, method and a hash of the settings but the seed.
        assert!(
            start.group_name.starts_with("widths16-8/smartmixed/"),
            "{}",
            start.group_name
        );
        let text = |k: &str| match &start.hparams[k].kind {
            Some(ProtoValueKind::StringValue(s)) => s.clone(),
            other => panic!("{k}: {other:?}"),
        };
        let number = |k: &str| match &start.hparams[k].kind {
            Some(ProtoValueKind::NumberValue(x)) => *x,
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(
            (text("method"), text("arch"), text("dataset")),
            ("smartmixed".into(), "widths16-8".into(), "mnist".into())
        );
        assert_eq!(
            (number("tau"), number("seed"), number("epochs")),
            (1.0, 42.0, 3.0)
        );
        assert!(!start.hparams.contains_key("mnist1d"));
        let Some(HParamsData::SessionEndInfo(end)) = plugin_data(live.last().unwrap()) else {
            panic!("the session end comes last")
        };
        assert_eq!(end.status, 1, "success");

        let tags = scalars(&live);
        let mut csv = csv::Reader::from_path(out.join("epochs.csv")).unwrap();
        let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        for (tag, col) in [
            ("loss/train", "train_loss"),
            ("loss/val", "val_loss"),
            ("accuracy/val", "val_acc"),
            ("time/epoch_seconds", "seconds"),
            ("phase", "phase"),
            ("share_layer2/elu", "share_l2_elu"),
        ] {
            let want: Vec<(i64, f32)> = rows
                .iter()
                .filter(|r| !r[column(col)].is_empty())
                .map(|r| (r[0].parse().unwrap(), r[column(col)].parse().unwrap()))
                .collect();
            let mut got = tags[tag].clone();
            if tag.starts_with("share") {
                // Then the kept choices at the last epoch.
                assert_eq!(got.pop().unwrap().0, 3);
            }
            assert_eq!(got, want, "{tag}");
        }
        assert_eq!(tags["phase"].len(), 3);
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let f = |k: &str| summary[k].as_f64().unwrap() as f32;
        assert_eq!(tags["accuracy/test"], vec![(3, f("test_acc"))]);
        assert_eq!(
            tags["accuracy/test_phase1"],
            vec![(2, f("phase1_test_acc"))]
        );
        let kept = summary["layer_shares"][1][4].as_f64().unwrap() as f32;
        assert_eq!(tags["share_layer2/elu"].last(), Some(&(3, kept)));

        // The export, from a copy of the run's files.
        let copy = dir.join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["config.json", "epochs.csv", "summary.json"] {
            std::fs::copy(out.join(f), copy.join(f)).unwrap();
        }
        let said = run_ok(&["tensorboard", copy.to_str().unwrap()]);
        assert_eq!(
            said.trim(),
            format!("tensorboard --logdir {}", copy.display())
        );
        assert_eq!(without_times(only_file(&copy)), without_times(live));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A sweep's runs: readable names that hold the grid axes they read, one group per setting
    /// shared by its seeds, one file per run after a resume, a stale file of a restarted run
    /// gone; the export writes the same names and events (but for wall times); no events with
    /// --no-tensorboard or `tensorboard = false`.
    #[test]
    fn a_sweep_names_its_runs_and_the_export_matches() {
        let dir = common::temp_dir("tb-sweep");
        let config = dir.join("grid.toml");
        std::fs::write(
            &config,
            r#"
name = "tb"
dataset = "mnist"
architectures = [[16, 8]]
methods = ["relu", "prelu", "smartmixed"]
seeds = [1, 2]
device = "cpu"

[overrides]
epochs = 2
phase1_epochs = 1
batch_size = 64

[grid]
tau = [0.3, 1.0]
"#,
        )
        .unwrap();
        let out = dir.join("out");
        sweep_ok(&config, &out, &["--shard", "1/2"]);
        // A stale file where a run of the other shard will write (an earlier, killed attempt).
        let stale = out.join("tensorboard/widths16-8/smartmixed_tau=1/seed2");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("events.out.tfevents.1.smartmixed"), b"torn").unwrap();
        sweep_ok(&config, &out, &[]);
        sweep_ok(&config, &out, &[]);
        let board = out.join("tensorboard");
        let files = event_files(&board);
        let names: Vec<String> = files.keys().map(|p| p.display().to_string()).collect();
        let mut want = Vec::new();
        for group in ["prelu", "relu", "smartmixed_tau=0.3", "smartmixed_tau=1"] {
            for seed in [1, 2] {
                want.push(format!("widths16-8/{group}/seed{seed}"));
            }
        }
        assert_eq!(names, want);
        let mut live = BTreeMap::new();
        for (name, paths) in &files {
            assert_eq!(paths.len(), 1, "{name:?}: {paths:?}");
            let events = read_events(&paths[0]).unwrap();
            let Some(HParamsData::SessionStartInfo(start)) = plugin_data(&events[2]) else {
                panic!("{name:?}: no session start")
            };
            // The group: the sweep's name and the run's without its seed.
            assert_eq!(
                start.group_name,
                format!("tb/{}", name.parent().unwrap().display())
            );
            live.insert(name.clone(), without_times(events));
        }

        let said = run_ok(&["tensorboard", out.to_str().unwrap()]);
        assert_eq!(
            said.trim(),
            format!("tensorboard --logdir {}", board.display())
        );
        let exported: BTreeMap<PathBuf, Vec<Event>> = event_files(&board)
            .into_iter()
            .map(|(name, paths)| {
                assert_eq!(paths.len(), 1);
                (name, without_times(read_events(&paths[0]).unwrap()))
            })
            .collect();
        assert_eq!(exported, live);
        assert!(!out.join("tensorboard.partial").exists());

        // Events that cannot be written (a file where the log directory should be) cost the
        // runs nothing: they train, are recorded ok, and the writer says why it stopped.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(&blocked).unwrap();
        std::fs::write(blocked.join("tensorboard"), b"not a directory").unwrap();
        let output = sweep(&config, &blocked, &["--shard", "1/4"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("warning: TensorBoard events"), "{stderr}");
        let rows = std::fs::read_to_string(blocked.join("results.csv")).unwrap();
        assert!(rows.lines().skip(1).all(|r| r.contains(",ok,")), "{rows}");

        let quiet = dir.join("off");
        sweep_ok(&config, &quiet, &["--no-tensorboard"]);
        assert!(!quiet.join("tensorboard").exists());
        let off = dir.join("off.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&off, format!("tensorboard = false\n{text}")).unwrap();
        let quiet = dir.join("off-key");
        sweep_ok(&off, &quiet, &[]);
        assert!(!quiet.join("tensorboard").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The Python that has the `tensorboard` package: `SMARTMIXED_TENSORBOARD_PYTHON` (set by
    /// .ci/run, from scripts/tensorboard-env.sh), else `python3` if it imports tensorboard.
    fn tensorboard_python() -> Option<String> {
        if let Ok(python) = std::env::var("SMARTMIXED_TENSORBOARD_PYTHON") {
            return Some(python);
        }
        let found = std::process::Command::new("python3")
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        found.then(|| "python3".to_string())
    }

    /// TensorBoard itself reads a sweep's logs: every run, every scalar tag with every value
    /// (EventAccumulator keeping all), the hparams plugin's settings, group and status, all as
    /// this crate decodes them from its files.
    #[test]
    fn tensorboard_itself_reads_a_sweeps_logs() {
        let Some(python) = tensorboard_python() else {
            eprintln!(
                "SKIPPED: no Python with the tensorboard package (scripts/tensorboard-env.sh \
                 makes one; .ci/run sets SMARTMIXED_TENSORBOARD_PYTHON)"
            );
            return;
        };
        let dir = common::temp_dir("tb-readback");
        let config = dir.join("grid.toml");
        std::fs::write(
            &config,
            r#"
name = "readback"
dataset = "mnist"
architectures = [[16, 8]]
methods = ["relu", "pau", "smartmixed"]
seeds = [1, 2]
device = "cpu"

[overrides]
epochs = 3
phase1_epochs = 2
batch_size = 64
"#,
        )
        .unwrap();
        let out = dir.join("out");
        sweep_ok(&config, &out, &[]);
        let board = out.join("tensorboard");
        let script = common::crate_dir().join("../../scripts/tensorboard-readback.py");
        let output = std::process::Command::new(&python)
            .arg(&script)
            .arg(&board)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let runs = read["runs"].as_object().unwrap();
        let files = event_files(&board);
        assert_eq!(runs.len(), 6);
        assert_eq!(
            runs.keys().cloned().collect::<Vec<_>>(),
            files
                .keys()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        );
        for (name, paths) in &files {
            let theirs = &runs[&name.display().to_string()];
            let events = read_events(&paths[0]).unwrap();
            let ours = scalars(&events);
            let their_tags = theirs["scalars"].as_object().unwrap();
            assert_eq!(their_tags.len(), ours.len(), "{name:?}");
            for (tag, values) in &ours {
                let got: Vec<(i64, f32)> = their_tags[tag]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
                    .collect();
                let same = got.len() == values.len()
                    && got
                        .iter()
                        .zip(values)
                        .all(|(a, b)| a.0 == b.0 && (a.1 == b.1 || (a.1.is_nan() && b.1.is_nan())));
                assert!(same, "{name:?} {tag}: {got:?} vs {values:?}");
            }
            let Some(HParamsData::SessionStartInfo(start)) = plugin_data(&events[2]) else {
                panic!("{name:?}: no session start")
            };
            assert_eq!(theirs["group"], start.group_name.as_str());
            let hparams = theirs["hparams"].as_object().unwrap();
            assert_eq!(hparams.len(), start.hparams.len(), "{name:?}");
            for (k, v) in &start.hparams {
                let want = match &v.kind {
                    Some(ProtoValueKind::StringValue(s)) => serde_json::json!(s),
                    Some(ProtoValueKind::NumberValue(x)) => serde_json::json!(x),
                    Some(ProtoValueKind::BoolValue(b)) => serde_json::json!(b),
                    other => panic!("{k}: {other:?}"),
                };
                assert_eq!(hparams[k], want, "{name:?} {k}");
            }
            assert_eq!(theirs["status"], 1, "{name:?}");
        }
        // Every method's tags are there: PAU's coefficients, SmartMixed's shares and switch.
        let tags = |run: &str| -> Vec<String> {
            runs[run]["scalars"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert!(tags("widths16-8/pau/seed1").contains(&"learned_layer2/coefficients/9".into()));
        let smart = tags("widths16-8/smartmixed/seed2");
        for tag in [
            "share_layer1/selu",
            "accuracy/test_phase1",
            "phase",
            "accuracy/test",
        ] {
            assert!(smart.contains(&tag.to_string()), "{tag}: {smart:?}");
        }
        // The custom-scalars layout: the losses in one chart, the accuracies in one, one chart
        // of shares per hidden layer, for every run (TensorBoard's merge of the runs' layouts
        // drops charts of a category that first appears in a later run).
        let charts = |run: &str| -> Vec<(String, Vec<String>)> {
            runs[run]["layout"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let tags = c[2].as_array().unwrap();
                    let tags = tags.iter().map(|t| t.as_str().unwrap().to_string());
                    (c[1].as_str().unwrap().to_string(), tags.collect())
                })
                .collect()
        };
        let smart = charts("widths16-8/smartmixed/seed2");
        assert_eq!(smart.len(), 4, "{smart:?}");
        assert_eq!(smart[0].1, ["^loss/train$", "^loss/val$"]);
        assert_eq!(smart[3].1, ["^share_layer2/"]);
        assert_eq!(charts("widths16-8/relu/seed1"), smart);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A directory that is neither a sweep's nor a run's is an input error that names it.
    #[test]
    fn exporting_something_else_is_an_input_error() {
        let dir = common::temp_dir("tb-bad");
        let output = common::run(&["tensorboard", dir.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&dir.display().to_string()) && stderr.contains("results.csv"),
            "{stderr}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
