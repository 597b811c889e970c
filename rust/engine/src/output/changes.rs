//! The membership-changes table (DESIGN.md § Membership changes).

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use xxhash_rust::xxh3::xxh3_64;

use super::snapshot::ids_for;
use crate::engine::{Engine, RemovedNodeExit};
use crate::membership::{Change, NO_STAGE};
use crate::rules::compile::NodeKind;
use crate::state::{CustomerId, IdKind};

/// Schema of the changes table for an id kind.
pub fn change_schema(kind: Option<IdKind>) -> SchemaRef {
    let id_type = match kind {
        Some(IdKind::Int) => DataType::Int64,
        _ => DataType::Utf8,
    };
    Arc::new(Schema::new(vec![
        Field::new("customer_id", id_type, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("change", DataType::Utf8, false),
        Field::new("from_stage", DataType::Utf8, true),
        Field::new("to_stage", DataType::Utf8, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("cause", DataType::Utf8, false),
        Field::new("holdout", DataType::Boolean, false),
        Field::new("capped", DataType::Boolean, false),
        Field::new("change_id", DataType::Utf8, false),
    ]))
}

/// True when the customer falls in the segment's control group: a
/// deterministic hash of customer, segment and salt.
pub fn holdout_flag(id: CustomerId<'_>, segment: &str, salt: &str, percent: f64) -> bool {
    if percent <= 0.0 {
        return false;
    }
    let mut key = Vec::with_capacity(64);
    id.write_key(&mut key);
    key.push(0);
    key.extend_from_slice(segment.as_bytes());
    key.push(0);
    key.extend_from_slice(salt.as_bytes());
    let bucket = xxh3_64(&key) % 10_000;
    (bucket as f64) < percent * 100.0
}

fn change_id(id: CustomerId<'_>, segment: &str, change: &str, to: Option<&str>, at: i64) -> String {
    let mut key = Vec::with_capacity(64);
    id.write_key(&mut key);
    for part in [segment, change, to.unwrap_or("")] {
        key.push(0);
        key.extend_from_slice(part.as_bytes());
    }
    key.push(0);
    key.extend_from_slice(&at.to_le_bytes());
    format!("{:016x}", xxh3_64(&key))
}

/// Builds the changes table.
pub fn changes_batch(
    engine: &Engine,
    changes: &[Change],
    removed: &[RemovedNodeExit],
) -> RecordBatch {
    let n = changes.len() + removed.len();
    let mut customers: Vec<u32> = Vec::with_capacity(n);
    let mut segment = StringBuilder::with_capacity(n, n * 12);
    let mut change = StringBuilder::with_capacity(n, n * 6);
    let mut from = StringBuilder::new();
    let mut to = StringBuilder::new();
    let mut at = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut cause = StringBuilder::with_capacity(n, n * 5);
    let mut holdout = BooleanBuilder::with_capacity(n);
    let mut capped = BooleanBuilder::with_capacity(n);
    let mut ids = StringBuilder::with_capacity(n, n * 16);
    let rules = &engine.rules;
    for ch in changes {
        let node = &rules.nodes[ch.node as usize];
        let cid = engine.state.ids.get(ch.customer);
        customers.push(ch.customer);
        segment.append_value(&node.name);
        change.append_value(ch.kind.as_str());
        let (f, t, h) = match &node.kind {
            NodeKind::Segment { holdout, .. } => (
                None,
                None,
                holdout_flag(cid, &node.name, &rules.salt, *holdout),
            ),
            NodeKind::Lifecycle { stages } => {
                let name = |s: u8| (s != NO_STAGE).then(|| stages[s as usize].0.as_str());
                (name(ch.from), name(ch.to), false)
            }
        };
        from.append_option(f);
        to.append_option(t);
        at.append_value(ch.at);
        cause.append_value(ch.cause.as_str());
        holdout.append_value(h);
        capped.append_value(ch.capped);
        ids.append_value(change_id(cid, &node.name, ch.kind.as_str(), t, ch.at));
    }
    for r in removed {
        let cid = engine.state.ids.get(r.customer);
        customers.push(r.customer);
        segment.append_value(&r.name);
        change.append_value("exit");
        from.append_option(r.from_stage.as_deref());
        to.append_null();
        at.append_value(r.at);
        cause.append_value("rules");
        holdout.append_value(false);
        capped.append_value(false);
        ids.append_value(change_id(cid, &r.name, "exit", None, r.at));
    }
    let columns: Vec<ArrayRef> = vec![
        ids_for(engine, &customers),
        Arc::new(segment.finish()),
        Arc::new(change.finish()),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        Arc::new(at.finish()),
        Arc::new(cause.finish()),
        Arc::new(holdout.finish()),
        Arc::new(capped.finish()),
        Arc::new(ids.finish()),
    ];
    RecordBatch::try_new(change_schema(engine.state.ids.kind()), columns)
        .expect("changes columns match their schema")
}
