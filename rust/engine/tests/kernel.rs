//! The columnar evaluation against the scalar interpreter it replaced, and
//! grouped ingest against row-by-row ingest.
//!
//! (a) on random states and instants, every lowered rule gives the truth the
//!     scalar interpreter gives, and its breakpoint is sound: the truth holds
//!     still from the instant up to the breakpoint, and the breakpoint is never
//!     earlier than the interpreter's first candidate;
//! (b) a batch applied grouped by customer leaves the state that applying its
//!     rows one by one, in arrival order, leaves.
//!
//!     cargo test --release -p segstream-engine --test kernel

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use proptest::prelude::*;
use segstream_engine::eval::kernel::{Inputs, Kernel};
use segstream_engine::eval::program::{lower_rule, TRUE};
use segstream_engine::eval::scalar::EvalCtx;
use segstream_engine::output::snapshot_batch;
use segstream_engine::rules::NodeKind;
use segstream_engine::time::timers::NEVER;
use segstream_engine::{Engine, RuleSetSpec};
use serde_json::json;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_704_067_200_000;
const KINDS: [&str; 4] = ["purchase", "purchase", "refund", "page_view"];
const CATEGORIES: [&str; 3] = ["kitchen", "tableware", "toys"];

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
        0u8..12,
        0i64..(120 * 24),
        prop::sample::select(&KINDS[..]),
        0i64..40_000,
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
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| 500 - e.customer as i64),
            )) as ArrayRef,
        ),
        (
            "ts",
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.ts))) as ArrayRef,
        ),
        (
            "event_type",
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.kind))) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.cents as f64 / 100.0),
            )) as ArrayRef,
        ),
        ("categories", Arc::new(cats.finish()) as ArrayRef),
    ])
    .unwrap()
}

/// Rule atoms over every kind of state and operation the lowering knows.
fn atom() -> impl Strategy<Value = String> {
    let k = 0i64..400;
    let d = 1i64..60;
    prop_oneof![
        (k.clone()).prop_map(|k| format!("ltv >= {k}")),
        (0i64..6).prop_map(|k| format!("{k} < orders")),
        (k.clone()).prop_map(|k| format!("{k} >= ltv")),
        (
            prop::sample::select(&["=", "<>", "<", "<=", ">", ">="][..]),
            0i64..6
        )
            .prop_map(|(op, k)| format!("orders {op} {k}")),
        d.clone()
            .prop_map(|d| format!("last_purchase_at < now() - INTERVAL '{d} days'")),
        d.clone()
            .prop_map(|d| format!("first_purchase_at >= now() - INTERVAL '{d} days'")),
        (
            d.clone(),
            prop::sample::select(&["=", "<", ">=", "<>"][..]),
            0i64..4
        )
            .prop_map(|(d, op, k)| format!("purchases(within => INTERVAL '{d} days') {op} {k}")),
        (d.clone(), k.clone())
            .prop_map(|(d, k)| format!("spend(within => INTERVAL '{d} days') >= {k}")),
        (d.clone(), 0i64..3).prop_map(|(d, k)| format!(
            "{k} <= events('page_view', within => INTERVAL '{d} days')"
        )),
        Just("has_category('kitchen')".to_string()),
        Just("NOT has_category('tableware')".to_string()),
        k.clone().prop_map(|k| format!("aov > {k}")),
        d.clone().prop_map(|d| format!(
            "coalesce(last_refund_at, first_purchase_at) <= now() - INTERVAL '{d} days'"
        )),
        Just("refunded * 2 >= gross_spend".to_string()),
        Just("max_order IS NULL".to_string()),
        Just("last_refund_at IS NOT NULL".to_string()),
        (1i64..13).prop_map(|m| format!("month(last_purchase_at) = {m}")),
        (1i64..13).prop_map(|m| format!("purchased_in_month({m})")),
        k.clone().prop_map(|k| format!("ltv / 2 > {k}")),
        (0i64..9).prop_map(|k| format!("orders + refunds > {k}")),
        k.clone().prop_map(|k| format!("gross_spend * 1.5 > {k}")),
        d.clone().prop_map(|d| format!(
            "last_purchase_at(category => 'kitchen') <= now() - INTERVAL '{d} days'"
        )),
        d.prop_map(|d| format!("now() - last_purchase_at > INTERVAL '{d} days' IS TRUE")),
        Just("in_segment('base')".to_string()),
        Just("stage('tier') = 'gold'".to_string()),
        Just("stage('tier') <> 'silver'".to_string()),
    ]
}

fn rule() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

fn engine_with(rule: &str) -> Engine {
    let spec = json!({
        "currency_scale": 2,
        "allowed_lateness": "0 seconds",
        "segments": [
            {"name": "base", "rule": "orders >= 2"},
            {"name": "probe", "rule": rule}
        ],
        "lifecycles": [{"name": "tier", "stages": [
            {"name": "gold", "rule": "ltv >= 300"},
            {"name": "silver", "rule": "ltv >= 100"}]}]
    });
    Engine::new(RuleSetSpec::from_json(&spec.to_string()).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn kernel_agrees_with_the_scalar_interpreter(
        rule in rule(),
        events in prop::collection::vec(event(), 1..60),
        offsets in prop::collection::vec(0i64..(200 * DAY), 12),
    ) {
        let mut engine = engine_with(&rule);
        engine.ingest(&batch(&events)).unwrap();
        let probe = engine.rules().node_index("probe").unwrap();
        let NodeKind::Segment { rule: expr, .. } = &engine.rules().nodes[probe].kind else {
            unreachable!()
        };
        let program = lower_rule(engine.rules(), expr);
        let n = engine.num_customers();
        let customers: Vec<u32> = (0..n as u32).collect();
        // Each customer at its own instant, some before their events.
        let now: Vec<i64> = (0..n).map(|i| T0 - 10 * DAY + offsets[i % offsets.len()]).collect();
        let mut next = vec![NEVER; n];
        let mut kernel = Kernel::default();
        let inputs = Inputs {
            rules: engine.rules(),
            state: engine.state(),
            members: engine.members(),
            customers: &customers,
            now: &now,
        };
        let all: Vec<u16> = (0..n as u16).collect();
        let truth = kernel.run(&program, &inputs, &all, &mut next).to_vec();
        let scalar = |c: usize, at: i64| {
            let mut ctx = EvalCtx {
                rules: engine.rules(),
                state: engine.state(),
                members: engine.members(),
                c,
                now: at,
                next: NEVER,
            };
            (ctx.truth(expr), ctx.next)
        };
        for c in 0..n {
            let (want, first_candidate) = scalar(c, now[c]);
            prop_assert_eq!(truth[c] == TRUE, want, "rule {} customer {} at {}", rule, c, now[c]);
            prop_assert!(next[c] > now[c]);
            prop_assert!(
                next[c] >= first_candidate,
                "breakpoint {} before the interpreter's first candidate {} ({})",
                next[c], first_candidate, rule
            );
            // Nothing flips before the breakpoint: probe the instants where
            // the interpreter would have looked, up to it.
            let mut at = now[c];
            for _ in 0..64 {
                let (_, cand) = scalar(c, at);
                if cand >= next[c] || cand == NEVER {
                    break;
                }
                prop_assert_eq!(scalar(c, cand).0, want, "flip at {} before breakpoint {} ({})", cand, next[c], rule);
                at = cand;
            }
            if next[c] != NEVER {
                prop_assert_eq!(scalar(c, next[c] - 1).0, want, "flip just before the breakpoint ({})", rule);
            }
        }
    }

    #[test]
    fn grouped_ingest_equals_row_by_row(
        events in prop::collection::vec(event(), 1..80),
    ) {
        let rules = "orders >= 1 AND purchases(within => INTERVAL '10 days') >= 2";
        let mut grouped = engine_with(rules);
        grouped.ingest_deferred(&batch(&events), None).unwrap();
        let mut one_by_one = engine_with(rules);
        for e in &events {
            one_by_one.ingest_deferred(&batch(std::slice::from_ref(e)), None).unwrap();
        }
        grouped.settle_deferred();
        one_by_one.settle_deferred();
        let a = snapshot_batch(&grouped);
        let b = snapshot_batch(&one_by_one);
        prop_assert_eq!(a, b);
    }
}
