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
