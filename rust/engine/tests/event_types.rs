//! The per-batch event_type table: every value counted once per row, read the
//! same from plain text and from a dictionary, with the rule set's names.

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, RecordBatch, StringArray};
use segstream_engine::ingest::{EventTypeCount, ReadAs};
use segstream_engine::{Engine, RuleSetSpec};

const T: i64 = 1_714_557_600_000;

fn engine() -> Engine {
    let spec = RuleSetSpec::from_json(
        r#"{"segments": [{"name": "b", "rule": "orders >= 1 OR events('page_view') >= 1"}],
            "event_types": {"purchase": ["order"]}}"#,
    )
    .unwrap();
    Engine::new(spec).unwrap()
}

fn batch(types: ArrayRef) -> RecordBatch {
    let n = types.len();
    let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let ts: Vec<String> = vec!["2024-05-01T10:00:00Z".into(); n];
    RecordBatch::try_from_iter([
        ("customer_id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("ts", Arc::new(StringArray::from(ts)) as ArrayRef),
        ("event_type", types),
        (
            "amount",
            Arc::new(Float64Array::from(vec![5.0; n])) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn table(mut counts: Vec<EventTypeCount>) -> Vec<(Option<String>, usize, ReadAs)> {
    counts.sort_by(|a, b| a.name.cmp(&b.name));
    counts
        .into_iter()
        .map(|c| (c.name, c.rows, c.read_as))
        .collect()
}

#[test]
fn text_and_dictionary_columns_give_the_same_table() {
    let values = [
        Some("Order"),
        Some("purchase"),
        Some("page_view"),
        Some("Order"),
        None,
        Some("signup"),
        Some(""),
    ];
    let want = vec![
        (None, 1, ReadAs::Purchase),
        (Some("".into()), 1, ReadAs::Rejected),
        (Some("Order".into()), 2, ReadAs::Purchase),
        (Some("page_view".into()), 1, ReadAs::Signal),
        (Some("purchase".into()), 1, ReadAs::Purchase),
        (Some("signup".into()), 1, ReadAs::Ignored),
    ];
    let text: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    let dict: ArrayRef = Arc::new(values.into_iter().collect::<DictionaryArray<Int32Type>>());
    for types in [text, dict] {
        let mut e = engine();
        let out = e.ingest(&batch(types)).unwrap();
        assert_eq!(table(out.event_types), want);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.max_ts, Some(T));
    }
}

#[test]
fn a_time_past_max_future_is_rejected_and_does_not_move_the_clock() {
    let mut e = engine();
    let b = RecordBatch::try_from_iter([
        (
            "customer_id",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
        (
            "ts",
            Arc::new(StringArray::from(vec![
                "2024-05-01T10:00:00Z",
                "9999-01-01",
            ])) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![1.0, 1.0])) as ArrayRef,
        ),
    ])
    .unwrap();
    let out = e.ingest(&b).unwrap();
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].1.contains("max_future"),
        "{:?}",
        out.rejected
    );
    assert_eq!(e.clock, Some(T));
}
