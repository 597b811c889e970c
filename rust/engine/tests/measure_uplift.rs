//! Conversion counters through checkpoints: saving and loading at any point
//! of a history, then going on, gives the uplift table of the engine that
//! never stopped (open windows and closed counters alike survive).
//!
//!     cargo test -p segstream-engine --test measure_uplift

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use proptest::prelude::*;
use segstream_engine::measure::uplift_batch;
use segstream_engine::{checkpoint, Engine, RuleSetSpec};
use serde_json::json;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_704_067_200_000;
const KINDS: [&str; 5] = ["purchase", "purchase", "refund", "unsubscribe", "page_view"];
const CATEGORIES: [&str; 3] = ["kitchen", "tableware", "garden"];

#[derive(Debug, Clone)]
struct Ev {
    customer: u8,
    ts: i64,
    kind: &'static str,
    cents: i64,
    categories: Vec<&'static str>,
}

fn event() -> impl Strategy<Value = Ev> {
    (
        0u8..8,
        0i64..(30 * 24),
        prop::sample::select(&KINDS[..]),
        0i64..10_000,
        prop::collection::vec(prop::sample::select(&CATEGORIES[..]), 0..3),
    )
        .prop_map(|(customer, hour, kind, cents, categories)| Ev {
            customer,
            ts: T0 + hour * 3_600_000,
            kind,
            cents,
            categories,
        })
}

fn batch(events: &[Ev]) -> RecordBatch {
    let mut cats = ListBuilder::new(StringBuilder::new());
    for e in events {
        for c in &e.categories {
            cats.values().append_value(c);
        }
        cats.append(true);
    }
    let col = |a: ArrayRef| a;
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            col(Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| format!("c{}", e.customer)),
            ))),
        ),
        (
            "ts",
            col(Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.ts),
            ))),
        ),
        (
            "event_type",
            col(Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.kind),
            ))),
        ),
        (
            "amount",
            col(Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.cents as f64 / 100.0),
            ))),
        ),
        ("categories", col(Arc::new(cats.finish()))),
    ])
    .unwrap()
}

fn rules() -> RuleSetSpec {
    let spec = json!({
        "segments": [
            {"name": "kitchen", "rule": "purchases(category => 'kitchen') >= 1", "holdout": 50,
             "conversion": {"within": "5 days", "category": "tableware"},
             "backlash": {"event": "unsubscribe", "within": "3 days"}},
            {"name": "lapsed", "rule": "orders >= 1 AND last_purchase_at <= now() - INTERVAL '4 days'",
             "holdout": 30, "conversion": {"within": "6 days"}}
        ]
    });
    RuleSetSpec::from_json(&spec.to_string()).unwrap()
}

fn table(e: &Engine) -> RecordBatch {
    uplift_batch(e, T0 - DAY, T0 + 60 * DAY).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_checkpoint_anywhere_changes_no_counter(
        mut events in prop::collection::vec(event(), 1..60),
        cut in 0usize..60,
        size in 1usize..8,
    ) {
        events.sort_by_key(|e| e.ts);
        let cut = cut.min(events.len());
        let dir = std::env::temp_dir().join(format!("segstream-measure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("uplift.arrow");
        let path = path.to_str().unwrap();

        let mut straight = Engine::new(rules()).unwrap();
        let mut resumed = Engine::new(rules()).unwrap();
        for chunk in events[..cut].chunks(size) {
            straight.ingest(&batch(chunk)).unwrap();
            resumed.ingest(&batch(chunk)).unwrap();
        }
        checkpoint::save(&resumed, path).unwrap();
        let mut resumed = checkpoint::load(path, None).unwrap();
        prop_assert_eq!(table(&straight), table(&resumed));
        for chunk in events[cut..].chunks(size) {
            straight.ingest(&batch(chunk)).unwrap();
            resumed.ingest(&batch(chunk)).unwrap();
        }
        for e in [&mut straight, &mut resumed] {
            e.advance_to(T0 + 45 * DAY).unwrap();
        }
        prop_assert_eq!(table(&straight), table(&resumed));
    }
}

#[test]
fn a_checkpoint_of_rules_without_conversions_has_no_conversion_column() {
    let spec =
        RuleSetSpec::from_json(r#"{"segments": [{"name": "a", "rule": "orders >= 1"}]}"#).unwrap();
    let mut e = Engine::new(spec).unwrap();
    e.ingest(&batch(&[Ev {
        customer: 1,
        ts: T0,
        kind: "purchase",
        cents: 100,
        categories: vec![],
    }]))
    .unwrap();
    let b = checkpoint::checkpoint_batch(&e).unwrap();
    assert!(b.column_by_name("conversion_open").is_none());
    assert!(!b
        .schema()
        .metadata()
        .contains_key("segstream.conversion_counters"));
    assert_eq!(table(&e).num_rows(), 0);
}
