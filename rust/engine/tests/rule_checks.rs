//! Rule sets that would give a wrong answer without an error: node names that
//! clash with output columns (a table with two columns of one name), and
//! comparisons that can never be true (`= NULL`, a stage the lifecycle does
//! not have). Each must be a compile error that names the problem.

use std::collections::HashSet;

use proptest::prelude::*;
use segstream_engine::output::snapshot_batch;
use segstream_engine::rules::compile_ruleset;
use segstream_engine::{Engine, RuleSetSpec};
use serde_json::{json, Value};

fn spec(value: Value) -> RuleSetSpec {
    RuleSetSpec::from_json(&value.to_string()).expect("a well-formed rule set")
}

fn compile_error(value: Value) -> String {
    match compile_ruleset(&spec(value.clone())) {
        Ok(_) => panic!("expected a compile error for {value}"),
        Err(e) => e.to_string(),
    }
}

/// A rule set whose snapshot has every kind of column: each trait type and
/// both distinct-count aggregates.
fn full_rules() -> Value {
    json!({
        "traits": {"tier": "string", "score": "int", "ratio": "float",
                   "opted_in": "bool", "signup_at": "timestamp"},
        "segments": [
            {"name": "cross_sell", "rule": "distinct_categories >= 2 AND distinct_products >= 2"},
        ],
        "lifecycles": [
            {"name": "value", "stages": [{"name": "high", "rule": "ltv >= 100"}]},
        ],
    })
}

/// The snapshot's columns other than the nodes' own.
fn fixed_snapshot_columns() -> Vec<String> {
    let engine = Engine::new(spec(full_rules())).expect("full rules compile");
    snapshot_batch(&engine)
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "cross_sell" && n != "value")
        .collect()
}

#[test]
fn every_snapshot_column_name_is_refused_as_a_segment_or_lifecycle_name() {
    let columns = fixed_snapshot_columns();
    assert!(columns.contains(&"customer_id".to_string()));
    assert!(columns.contains(&"tier".to_string()));
    for name in &columns {
        let mut as_segment = full_rules();
        as_segment["segments"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": name, "rule": "orders >= 1"}));
        let message = compile_error(as_segment);
        assert!(
            message.contains(&format!("segment `{name}`")) && message.contains("column"),
            "{name}: {message}"
        );
        let mut as_lifecycle = full_rules();
        as_lifecycle["lifecycles"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": name, "stages": [{"name": "any", "rule": "orders >= 1"}]}));
        let message = compile_error(as_lifecycle);
        assert!(
            message.contains(&format!("lifecycle `{name}`")) && message.contains("column"),
            "{name}: {message}"
        );
    }
}

#[test]
fn a_segment_named_like_a_trait_is_refused_with_both_named() {
    let message = compile_error(json!({
        "traits": {"tier": "string"},
        "segments": [{"name": "tier", "rule": "tier = 'gold'"}],
    }));
    assert!(message.contains("segment `tier`"), "{message}");
    assert!(message.contains("trait `tier`"), "{message}");
}

#[test]
fn a_trait_named_customer_id_is_refused() {
    let message = compile_error(json!({
        "traits": {"customer_id": "string"},
        "segments": [{"name": "buyers", "rule": "orders >= 1"}],
    }));
    assert!(message.contains("trait `customer_id`"), "{message}");
}

#[test]
fn the_holdout_column_suffix_is_reserved() {
    let message = compile_error(json!({
        "segments": [
            {"name": "vip", "rule": "ltv >= 100", "holdout": 10},
            {"name": "vip__holdout", "rule": "orders >= 1"},
        ],
    }));
    assert!(message.contains("`vip__holdout`"), "{message}");
    assert!(message.contains("__holdout"), "{message}");
}

#[test]
fn comparisons_with_null_are_refused_with_the_test_to_write() {
    let cases = [
        ("last_refund_at = NULL", "IS NULL"),
        ("last_refund_at <> NULL", "IS NOT NULL"),
        ("last_refund_at != NULL", "IS NOT NULL"),
        ("NULL = last_refund_at", "IS NULL"),
        ("orders >= 1 AND last_refund_at = (NULL)", "IS NULL"),
        ("last_refund_at IN (NULL)", "IS NULL"),
        // Expressions that are NULL whatever the state.
        ("month(NULL) = 5", "IS NULL"),
        ("coalesce(NULL, NULL) = 1", "IS NULL"),
        ("ltv + NULL > 5", "IS NULL"),
        ("-NULL < 0", "IS NULL"),
    ];
    for (rule, hint) in cases {
        let message = compile_error(json!({"segments": [{"name": "s", "rule": rule}]}));
        assert!(
            message.contains("never true") && message.contains(hint),
            "{rule}: {message}"
        );
    }
    // NULL that only may be NULL is fine.
    for rule in [
        "coalesce(last_refund_at, NULL) < now()",
        "last_refund_at IS NULL",
        "coalesce(max_order, 0) > 5",
    ] {
        compile_ruleset(&spec(json!({"segments": [{"name": "s", "rule": rule}]})))
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
    }
}

fn vip(rule: &str) -> Value {
    json!({
        "segments": [{"name": "lapsed", "rule": rule}],
        "lifecycles": [{"name": "vip", "stages": [
            {"name": "gold", "rule": "ltv >= 100"},
            {"name": "silver", "rule": "ltv >= 10"},
        ]}],
    })
}

#[test]
fn an_unknown_stage_is_refused_with_the_nearest_stage() {
    for rule in [
        "stage('vip') = 'gld'",
        "'gld' = stage('vip')",
        "stage('vip') <> 'gld'",
        "stage('vip') IN ('silver', 'gld')",
    ] {
        let message = compile_error(vip(rule));
        assert!(
            message.contains("lifecycle `vip` has no stage `gld`"),
            "{rule}: {message}"
        );
        assert!(message.contains("did you mean `gold`"), "{rule}: {message}");
    }
    compile_ruleset(&spec(vip("stage('vip') IN ('silver', 'gold')"))).expect("known stages");
}

fn name_pool() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "customer_id",
        "ltv",
        "orders",
        "last_refund_at",
        "distinct_categories",
        "tier",
        "score",
        "vip",
        "vip__holdout",
        "buyers",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the names, a rule set either fails to compile or gives a
    /// snapshot whose column names are all different.
    #[test]
    fn snapshot_columns_never_repeat(
        segments in prop::collection::vec(name_pool(), 0..4),
        lifecycles in prop::collection::vec(name_pool(), 0..3),
        traits in prop::collection::vec(name_pool(), 0..3),
    ) {
        let traits: serde_json::Map<String, Value> =
            traits.into_iter().map(|t| (t, json!("string"))).collect();
        let value = json!({
            "traits": traits,
            "segments": segments.iter()
                .map(|n| json!({"name": n, "rule": "distinct_categories >= 1", "holdout": 5}))
                .collect::<Vec<_>>(),
            "lifecycles": lifecycles.iter()
                .map(|n| json!({"name": n, "stages": [{"name": "any", "rule": "orders >= 1"}]}))
                .collect::<Vec<_>>(),
        });
        if let Ok(engine) = Engine::new(spec(value)) {
            let schema = snapshot_batch(&engine).schema();
            let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
            let unique: HashSet<&String> = names.iter().copied().collect();
            prop_assert_eq!(unique.len(), names.len(), "{:?}", names);
            // The only `__holdout` columns are the engine's own, one per segment
            // with a holdout (every generated segment has one), right after it.
            for (i, n) in names.iter().enumerate() {
                if let Some(segment) = n.strip_suffix("__holdout") {
                    prop_assert!(segments.iter().any(|s| s == segment), "{:?}", names);
                    prop_assert_eq!(names[i - 1].as_str(), segment, "{:?}", names);
                }
            }
        }
    }
}
