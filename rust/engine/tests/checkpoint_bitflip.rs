//! Every single-bit flip of a small checkpoint either loads the identical
//! state or is refused with a checkpoint error naming the file; none loads
//! other numbers, panics out of `load` or aborts the process.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use segstream_engine::checkpoint::{checkpoint_batch, load, save};
use segstream_engine::output::snapshot_batch;
use segstream_engine::{Engine, EngineError, RuleSetSpec};
use serde_json::json;

const T0: i64 = 1_714_521_600_000; // 2024-05-01
const DAY: i64 = 86_400_000;

fn engine() -> Engine {
    let spec = json!({
        "holdout_salt": "s",
        "traits": {"company_size": "int", "industry": "string"},
        "segments": [
            {"name": "buyers", "rule": "orders >= 1", "holdout": 50},
            {"name": "recent", "rule": "purchases(within => INTERVAL '30 days') >= 1"},
            {"name": "kitchen", "rule": "has_category('kitchen')", "cooldown": "7 days"},
            {"name": "large", "rule": "company_size >= 100"}
        ],
        "lifecycles": [{"name": "tier", "stages": [
            {"name": "gold", "rule": "ltv >= 50"}, {"name": "any", "rule": "orders >= 1"}
        ]}]
    });
    let mut engine = Engine::new(RuleSetSpec::from_json(&spec.to_string()).unwrap()).unwrap();
    let mut cats = ListBuilder::new(StringBuilder::new());
    for c in [&["kitchen"][..], &[], &["toys", "kitchen"], &[]] {
        for v in c {
            cats.values().append_value(v);
        }
        cats.append(true);
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "customer_id",
            Arc::new(StringArray::from(vec![
                "alpha", "bravo", "alpha", "charlie",
            ])),
        ),
        (
            "ts",
            Arc::new(
                TimestampMillisecondArray::from(vec![T0, T0, T0 + DAY, T0 + 2 * DAY])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "event_type",
            Arc::new(StringArray::from(vec![
                "purchase",
                "refund",
                "purchase",
                "page_view",
            ])),
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![30.0, 5.0, 25.5, 0.0])),
        ),
        ("categories", Arc::new(cats.finish())),
        (
            "event_id",
            Arc::new(StringArray::from(vec!["e1", "e2", "e3", "e4"])),
        ),
    ];
    engine
        .ingest(&RecordBatch::try_from_iter(cols).unwrap())
        .unwrap();
    let traits: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", Arc::new(StringArray::from(vec!["alpha"]))),
        (
            "company_size",
            Arc::new(arrow_array::Int64Array::from(vec![120])),
        ),
        ("industry", Arc::new(StringArray::from(vec!["retail"]))),
    ];
    engine
        .update_traits(&RecordBatch::try_from_iter(traits).unwrap())
        .unwrap();
    engine.set_offsets(json!({"events/0": 4}).to_string());
    engine
}

fn temp(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "segstream-bitflip-{}-{tag}.arrow",
        std::process::id()
    ))
}

/// Everything a checkpoint holds, as comparable tables: the state columns
/// with their metadata (rules, clock, offsets), and the snapshot.
fn state(engine: &Engine) -> (RecordBatch, RecordBatch) {
    (checkpoint_batch(engine).unwrap(), snapshot_batch(engine))
}

#[test]
fn every_bit_flip_loads_identical_or_is_refused() {
    let path = temp("valid");
    let path_str = path.to_str().unwrap().to_string();
    save(&engine(), &path_str).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let want = state(&load(&path_str, None).unwrap());
    let _ = std::fs::remove_file(&path);

    let damaged = temp("damaged");
    let damaged_str = damaged.to_str().unwrap().to_string();
    // The footer (and the end-of-stream marker before it) holds the
    // checksums; every byte before it is covered by one.
    let footer_len = i32::from_le_bytes(bytes[bytes.len() - 10..][..4].try_into().unwrap());
    let covered = bytes.len() - 10 - footer_len as usize - 8;
    let (mut identical, mut refused) = (0usize, 0usize);
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&damaged, &flipped).unwrap();
        match load(&damaged_str, None) {
            Ok(got) => {
                assert!(
                    bit / 8 >= covered,
                    "bit {bit} (byte {}) is covered by a checksum but loaded",
                    bit / 8
                );
                assert!(
                    state(&got) == want,
                    "bit {bit} (byte {}) loaded a different state",
                    bit / 8
                );
                identical += 1;
            }
            Err(EngineError::Checkpoint(m)) => {
                assert!(m.starts_with(&damaged_str), "error without the file: {m}");
                refused += 1;
            }
            Err(other) => panic!("bit {bit}: not a checkpoint error: {other}"),
        }
    }
    let _ = std::fs::remove_file(&damaged);
    // What loads is a flip in the footer that the reader does not use
    // (padding, the end-of-stream marker): a small part of the file.
    assert!(
        identical * 20 < bytes.len() * 8,
        "{refused} refused, {identical} identical of {} bits",
        bytes.len() * 8
    );
}

#[test]
fn a_damaged_payload_is_named() {
    let path = temp("named");
    let path_str = path.to_str().unwrap().to_string();
    save(&engine(), &path_str).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cases: [(&[u8], &[u8], &str); 2] = [
        // Customer ids live only in the record batch body.
        (
            b"charlie",
            b"charlix",
            "the customer state (record batch 0, bytes ",
        ),
        // The rules are stored as text in the schema metadata; the reader
        // uses the footer's copy, the last one in the file.
        (b"ltv >= 50", b"ltv >= 90", "metadata `segstream.rules`"),
    ];
    for (from, to, named) in cases {
        let at = bytes
            .windows(from.len())
            .rposition(|w| w == from)
            .expect("marker in the file");
        let mut changed = bytes.clone();
        changed[at..at + to.len()].copy_from_slice(to);
        std::fs::write(&path, &changed).unwrap();
        let Err(EngineError::Checkpoint(m)) = load(&path_str, None) else {
            panic!("a changed `{}` loaded", String::from_utf8_lossy(from));
        };
        assert!(m.contains(named), "{m}");
        assert!(m.contains("does not match its checksum"), "{m}");
    }
    let _ = std::fs::remove_file(&path);
}
