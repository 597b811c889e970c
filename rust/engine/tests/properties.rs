//! Property tests of the engine's contracts:
//!
//! (a) the same events in any order and any batching give the same state and
//!     memberships (aggregates are commutative; timers make time-driven rules
//!     exact whatever the clock did on the way);
//! (b) the rule compiler never panics, whatever the rule text;
//! (c) loading a damaged or arbitrary checkpoint file is an error, never a panic;
//! (d) advancing the clock in random steps ends in the same memberships, with
//!     the same time-driven changes, as one step;
//! (e) a rule that compiles never panics when evaluated, whatever values the
//!     engine accepts (extreme timestamps, amounts, traits, clock targets).
//!
//!     cargo test --release -p segstream-engine --test properties

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_cast::display::array_value_to_string;
use arrow_schema::DataType;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use segstream_engine::output::snapshot_batch;
use segstream_engine::rules::compile_ruleset;
use segstream_engine::{Change, Engine, RuleSetSpec};
use serde_json::json;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2024-01-01T00:00:00Z
const T0: i64 = 1_704_067_200_000;

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Ev {
    customer: u8,
    ts: i64,
    kind: &'static str,
    cents: i64,
    quantity: Option<i64>,
    products: Vec<&'static str>,
    categories: Vec<&'static str>,
    flags: Vec<&'static str>,
}

const KINDS: [&str; 5] = [
    "purchase",
    "purchase",
    "refund",
    "page_view",
    "support_case",
];
const PRODUCTS: [&str; 3] = ["p1", "p2", "p3"];
const CATEGORIES: [&str; 4] = ["kitchen", "tableware", "grocery", "toys"];
const FLAGS: [&str; 2] = ["gift", "b2b"];

fn tags(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(pool), 0..3)
}

fn event() -> impl Strategy<Value = Ev> {
    (
        0u8..8,
        0i64..(200 * 24),
        prop::sample::select(&KINDS[..]),
        0i64..15_000,
        prop::option::of(0i64..8),
        tags(&PRODUCTS),
        tags(&CATEGORIES),
        tags(&FLAGS),
    )
        .prop_map(
            |(customer, hour, kind, cents, quantity, products, categories, flags)| Ev {
                customer,
                ts: T0 + hour * HOUR,
                kind,
                cents,
                quantity,
                products,
                categories,
                flags,
            },
        )
}

fn list_column(rows: impl Iterator<Item = Vec<&'static str>>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for v in row {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// The events as one Arrow batch with the engine's column names.
fn batch(events: &[Ev], str_ids: bool) -> RecordBatch {
    let ids: ArrayRef = if str_ids {
        Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| format!("c{}", e.customer)),
        ))
    } else {
        Arc::new(Int64Array::from_iter_values(
            events.iter().map(|e| 1000 + e.customer as i64),
        ))
    };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", ids),
        (
            "ts",
            Arc::new(
                TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.ts))
                    .with_timezone("UTC"),
            ),
        ),
        (
            "event_type",
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.kind))),
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.cents as f64 / 100.0),
            )),
        ),
        (
            "quantity",
            Arc::new(Int64Array::from_iter(events.iter().map(|e| e.quantity))),
        ),
        (
            "product_ids",
            list_column(events.iter().map(|e| e.products.clone())),
        ),
        (
            "categories",
            list_column(events.iter().map(|e| e.categories.clone())),
        ),
        ("flags", list_column(events.iter().map(|e| e.flags.clone()))),
    ];
    RecordBatch::try_from_iter(cols).expect("valid batch")
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// Order-independent rules: everything the language offers except cooldown
/// (which by design depends on the history of memberships).
fn rules(lateness: &str) -> RuleSetSpec {
    let spec = json!({
        "currency_scale": 2,
        "allowed_lateness": lateness,
        "segments": [
            {"name": "big", "rule": "ltv >= 100"},
            {"name": "dormant", "rule": "orders >= 2 AND last_purchase_at <= now() - INTERVAL '90 days'"},
            {"name": "lapsed", "rule": "last_purchase_at < now() - INTERVAL '30 days'"},
            {"name": "cross_sell", "rule": "has_category('kitchen') AND NOT has_category('tableware') AND last_purchase_at(category => 'kitchen') <= now() - INTERVAL '30 days'"},
            {"name": "replenish", "rule": "purchases(product => 'p1', within => INTERVAL '60 days') >= 2"},
            {"name": "recent_spend", "rule": "spend(within => INTERVAL '30 days') >= 50"},
            {"name": "browsers", "rule": "events('page_view', within => INTERVAL '7 days') >= 2 AND orders <= 1"},
            {"name": "support", "rule": "events('support_case', within => INTERVAL '10 days') >= 1"},
            {"name": "refunders", "rule": "last_refund_at >= now() - INTERVAL '30 days'"},
            {"name": "gifts", "rule": "purchases(flag => 'gift') * 2 > orders"},
            {"name": "seasonal", "rule": "purchased_in_month(month(now() - INTERVAL '60 days'))"},
            {"name": "upsell", "rule": "NOT has_product('p2') AND first_purchase_at(product => 'p1') <= now() - INTERVAL '20 days' AND first_purchase_at(product => 'p1') > now() - INTERVAL '50 days'"},
            {"name": "suppressed", "rule": "in_segment('refunders') OR in_segment('support')"},
            {"name": "loyal", "rule": "ltv >= 30 AND NOT in_segment('suppressed')", "holdout": 20},
            {"name": "bulk", "rule": "max_quantity >= 5 OR items >= 10"},
            {"name": "since_march", "rule": "spend(category => 'grocery', since => TIMESTAMP '2024-03-01') >= 20"},
            {"name": "february", "rule": "purchases(between => (TIMESTAMP '2024-02-01', TIMESTAMP '2024-03-01')) >= 1"},
            {"name": "variety", "rule": "aov >= 20 AND distinct_categories >= 2 AND distinct_products >= 1"},
            {"name": "recent_kitchen", "rule": "spend(category => 'kitchen', flag => 'gift', within => INTERVAL '45 days') > 10 OR last_event_at('page_view') >= now() - INTERVAL '3 days'"}
        ],
        "lifecycles": [
            {"name": "vip", "stages": [
                {"name": "gold", "rule": "ltv >= 200"},
                {"name": "silver", "rule": "ltv >= 100"},
                {"name": "bronze", "rule": "ltv >= 30"},
                {"name": "regular", "rule": "orders >= 1"}
            ]},
            {"name": "activity", "stages": [
                {"name": "active", "rule": "purchases(within => INTERVAL '14 days') >= 1"},
                {"name": "cooling", "rule": "purchases(within => INTERVAL '45 days') >= 1"},
                {"name": "cold", "rule": "orders >= 1"}
            ]}
        ]
    });
    RuleSetSpec::from_json(&spec.to_string()).expect("valid rule set")
}

/// The same rules plus a cooldown segment (for the time-only property).
fn rules_with_cooldown(lateness: &str) -> RuleSetSpec {
    let mut spec = rules(lateness);
    let mut extra = RuleSetSpec::from_json(
        &json!({"segments": [
            {"name": "win_back", "rule": "last_purchase_at <= now() - INTERVAL '20 days' AND last_purchase_at > now() - INTERVAL '40 days'", "cooldown": "30 days"},
            {"name": "active_cd", "rule": "purchases(within => INTERVAL '10 days') >= 1", "cooldown": "5 days"}
        ]})
        .to_string(),
    )
    .expect("valid rule set");
    spec.segments.append(&mut extra.segments);
    spec
}

// ---------------------------------------------------------------------------
// Comparing engines
// ---------------------------------------------------------------------------

/// The snapshot as id -> rendered row, plus the column names: independent of
/// the order in which customers were first seen.
fn snapshot_by_id(engine: &Engine) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let b = snapshot_batch(engine);
    let names = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // Timestamps as raw epoch ms (displaying a zoned timestamp needs chrono-tz).
    let cols: Vec<ArrayRef> = b
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(..) => {
                arrow_cast::cast(c, &DataType::Int64).expect("timestamp as int64")
            }
            _ => c.clone(),
        })
        .collect();
    let mut rows = BTreeMap::new();
    for r in 0..b.num_rows() {
        let row: Vec<String> = cols
            .iter()
            .map(|c| array_value_to_string(c, r).expect("displayable"))
            .collect();
        rows.insert(row[0].clone(), row);
    }
    (names, rows)
}

fn same_engines(a: &Engine, b: &Engine, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.clock(), b.clock(), "{}: clock", what);
    prop_assert_eq!(a.num_customers(), b.num_customers(), "{}: customers", what);
    let (na, ra) = snapshot_by_id(a);
    let (nb, rb) = snapshot_by_id(b);
    prop_assert_eq!(na.clone(), nb, "{}: snapshot columns", what);
    for (id, row) in &ra {
        let other = rb.get(id);
        prop_assert!(other.is_some(), "{}: customer {} missing", what, id);
        let other = other.unwrap();
        for (i, name) in na.iter().enumerate() {
            prop_assert_eq!(
                &row[i],
                &other[i],
                "{}: customer {} column `{}`",
                what,
                id,
                name
            );
        }
    }
    prop_assert_eq!(
        a.members().counts(),
        b.members().counts(),
        "{}: segment and stage counts",
        what
    );
    Ok(())
}

fn change_key(c: &Change) -> (u32, u32, &'static str, u8, u8, i64, &'static str) {
    (
        c.customer,
        c.node,
        c.kind.as_str(),
        c.from,
        c.to,
        c.at,
        c.cause.as_str(),
    )
}

/// Splits `events` into consecutive batches of the given sizes (the last takes the rest).
fn split<'a>(events: &'a [Ev], sizes: &[usize]) -> Vec<&'a [Ev]> {
    let mut out = Vec::new();
    let mut rest = events;
    for &s in sizes {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(s.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

// ---------------------------------------------------------------------------
// (c) helpers: temp files and panics caught inside `checkpoint::load`
// ---------------------------------------------------------------------------

static FILE_SEQ: AtomicUsize = AtomicUsize::new(0);

fn temp_path(tag: &str) -> PathBuf {
    let n = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "segstream-prop-{}-{tag}-{n}.arrow",
        std::process::id()
    ))
}

thread_local! {
    /// Panics seen on this thread while the flag is set (load catches them).
    static WATCH: Cell<Option<usize>> = const { Cell::new(None) };
}

fn install_panic_watch() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let watched = WATCH.with(|w| match w.get() {
                Some(n) => {
                    w.set(Some(n + 1));
                    true
                }
                None => false,
            });
            if watched {
                // Shown once: arrow-ipc panics on some damaged files; `load`
                // catches it and returns an error.
                static SHOWN: Once = Once::new();
                SHOWN.call_once(|| {
                    eprintln!("(first) panic caught inside checkpoint::load: {info}")
                });
            } else {
                prev(info);
            }
        }));
    });
}

/// Runs `f`, returning its value and how many panics happened inside it
/// (panics that `f` itself caught included).
fn count_panics<T>(f: impl FnOnce() -> T) -> (T, usize) {
    install_panic_watch();
    WATCH.with(|w| w.set(Some(0)));
    let out = f();
    let n = WATCH.with(|w| w.replace(None)).unwrap_or(0);
    (out, n)
}

/// A valid checkpoint of an engine that saw `events`, as bytes.
fn checkpoint_bytes(events: &[Ev], str_ids: bool) -> Vec<u8> {
    let mut engine = Engine::new(rules_with_cooldown("0 ms")).unwrap();
    if !events.is_empty() {
        engine.ingest(&batch(events, str_ids)).unwrap();
    }
    let path = temp_path("valid");
    segstream_engine::checkpoint::save(&engine, path.to_str().unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

fn load_bytes(bytes: &[u8]) -> (segstream_engine::Result<Engine>, usize) {
    let path = temp_path("load");
    std::fs::write(&path, bytes).unwrap();
    let p = path.to_str().unwrap().to_string();
    let out = count_panics(|| segstream_engine::checkpoint::load(&p, None));
    let _ = std::fs::remove_file(&path);
    out
}

#[derive(Debug, Clone)]
enum Damage {
    /// Overwrite the byte at (fraction of the length) with a value.
    Set(f64, u8),
    /// Flip one bit.
    Flip(f64, u8),
    /// Cut the file at a fraction of its length.
    Truncate(f64),
    /// Insert bytes at a fraction of the length.
    Insert(f64, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (0.0f64..1.0, any::<u8>()).prop_map(|(p, v)| Damage::Set(p, v)),
        4 => (0.0f64..1.0, 0u8..8).prop_map(|(p, b)| Damage::Flip(p, b)),
        1 => (0.0f64..1.0).prop_map(Damage::Truncate),
        1 => (0.0f64..1.0, prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, v)| Damage::Insert(p, v)),
    ]
}

fn apply_damage(bytes: &mut Vec<u8>, d: &Damage) {
    let at = |p: f64, len: usize| ((p * len as f64) as usize).min(len.saturating_sub(1));
    match d {
        Damage::Set(p, v) => {
            let i = at(*p, bytes.len());
            bytes[i] = *v;
        }
        Damage::Flip(p, b) => {
            let i = at(*p, bytes.len());
            bytes[i] ^= 1 << b;
        }
        Damage::Truncate(p) => bytes.truncate(at(*p, bytes.len())),
        Damage::Insert(p, v) => {
            let i = at(*p, bytes.len());
            bytes.splice(i..i, v.iter().copied());
        }
    }
}

// ---------------------------------------------------------------------------
// (b) rule text
// ---------------------------------------------------------------------------

const TOKENS: &[&str] = &[
    "ltv",
    "orders",
    "refunds",
    "gross_spend",
    "refunded",
    "max_order",
    "aov",
    "items",
    "max_quantity",
    "distinct_categories",
    "distinct_products",
    "first_purchase_at",
    "last_purchase_at",
    "last_refund_at",
    "now()",
    "now",
    "has_category",
    "has_product",
    "purchases",
    "spend",
    "events",
    "last_event_at",
    "purchased_in_month",
    "month",
    "year",
    "in_segment",
    "stage",
    "coalesce",
    "industry",
    "size",
    "(",
    ")",
    "(",
    ")",
    ",",
    "=>",
    "category",
    "product",
    "flag",
    "within",
    "since",
    "between",
    "AND",
    "OR",
    "NOT",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "BETWEEN",
    "IN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "CAST",
    "AS",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "0",
    "1",
    "-1",
    "2.5",
    "1e308",
    "9223372036854775807",
    "99999999999999999999",
    "0.001",
    "'kitchen'",
    "'p1'",
    "'page_view'",
    "''",
    "'x'",
    "'gold'",
    "'vip'",
    "'seg'",
    "INTERVAL '30 days'",
    "INTERVAL '1 ms'",
    "INTERVAL '2 months'",
    "INTERVAL 'x'",
    "INTERVAL '-5 days'",
    "INTERVAL '9223372036854775807 weeks'",
    "TIMESTAMP '2024-05-01 10:00:00'",
    "DATE '2024-05-01'",
    "TIMESTAMP 'nope'",
    "DATE '99999-01-01'",
    "[",
    "]",
    "?",
    "$1",
    "::",
    ":",
    ";",
    "\"q\"",
    "é",
];

fn rule_text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Anything at all.
        2 => any::<String>(),
        2 => "[ -~]{0,80}",
        // Token soup: mostly well-formed-looking SQL.
        6 => prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.join(" ")),
        // Deep nesting.
        1 => (1usize..200, prop::sample::select(&["(", "NOT ", "-", "coalesce("][..]))
            .prop_map(|(n, open)| format!("{}ltv{}", open.repeat(n), if open.ends_with('(') { ")".repeat(n) } else { String::new() })),
    ]
}

// ---------------------------------------------------------------------------
// (e) rules from a grammar, values at the edges
// ---------------------------------------------------------------------------

// Terms are generated by type, so that most generated rules type-check and
// reach evaluation (an untyped mix compiled one rule in eight, too few to
// test evaluation): numbers, timestamps and intervals each combine only in
// the ways the language allows, with the edge values of each kind.

/// Numbers: integer and money aggregates, traits, windowed counts and
/// sums, calendar parts, and constants at the edges of i64 and f64.
const NUMBERS: &[&str] = &[
    "ltv",
    "orders",
    "refunds",
    "gross_spend",
    "refunded",
    "max_order",
    "aov",
    "items",
    "max_quantity",
    "distinct_categories",
    "score",
    "rating",
    "coalesce(score, 0)",
    "purchases(within => INTERVAL '30 days')",
    "purchases(product => 'p1')",
    "spend(category => 'kitchen', within => INTERVAL '7 days')",
    "spend(since => TIMESTAMP '2024-03-01')",
    "events('page_view', within => INTERVAL '1 ms')",
    "events('support_case')",
    "month(now())",
    "year(signup_at)",
    "month(last_purchase_at)",
    "0",
    "1",
    "-1",
    "7",
    "2.5",
    "1e300",
    "9223372036854775807",
    "4611686018427387904",
    "0.01",
];

/// Timestamps, NULL for a customer who never did the thing, and literals
/// at the ends of the accepted range.
const TIMES: &[&str] = &[
    "first_purchase_at",
    "last_purchase_at",
    "last_refund_at",
    "now()",
    "signup_at",
    "coalesce(signup_at, now())",
    "last_event_at('page_view')",
    "first_purchase_at(product => 'p1')",
    "last_purchase_at(category => 'kitchen')",
    "TIMESTAMP '2024-03-01'",
    "DATE '1900-01-01'",
    "TIMESTAMP '9999-12-31 23:59:59'",
    "DATE '1970-01-01'",
];

/// Intervals, from a millisecond to two thousand years, and differences of
/// timestamps that move with the clock.
const INTERVALS: &[&str] = &[
    "INTERVAL '30 days'",
    "INTERVAL '1 ms'",
    "INTERVAL '100000 weeks'",
    "INTERVAL '0 days'",
    "(now() - signup_at)",
    "(now() - last_purchase_at)",
];

const PREDICATES: &[&str] = &[
    "has_category('kitchen')",
    "has_product('p2')",
    "in_segment('base')",
    "purchased_in_month(3)",
    "purchased_in_month(month(now()), year(now()) - 1)",
    "purchased_in_month(month(signup_at), year(signup_at))",
    "vip",
    "industry = 'x'",
    "signup_at IS NULL",
    "stage('tier') = 'high'",
    "TRUE",
];

fn number() -> impl Strategy<Value = String> {
    prop::sample::select(NUMBERS)
        .prop_map(String::from)
        .prop_recursive(2, 8, 2, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(&["+", "-", "*", "/"][..]),
                    inner.clone()
                )
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                inner.prop_map(|a| format!("(-{a})")),
            ]
        })
}

fn interval() -> impl Strategy<Value = String> {
    prop::sample::select(INTERVALS).prop_map(String::from)
}

/// A timestamp, or a timestamp moved by an interval (`now() - INTERVAL …`).
fn time() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(TIMES).prop_map(String::from);
    prop_oneof![
        2 => atom.clone(),
        1 => (atom, prop::sample::select(&["+", "-"][..]), interval())
            .prop_map(|(t, op, i)| format!("({t} {op} {i})")),
    ]
}

/// Three terms of one type: a comparison's sides, BETWEEN's bounds.
fn same_typed() -> impl Strategy<Value = (String, String, String)> {
    prop_oneof![
        3 => (number(), number(), number()),
        2 => (time(), time(), time()),
        1 => (interval(), interval(), interval()),
    ]
}

fn predicate() -> impl Strategy<Value = String> {
    let cmp = (
        same_typed(),
        prop::sample::select(&["<", "<=", "=", "<>", ">", ">="][..]),
    )
        .prop_map(|((a, b, _), op)| format!("{a} {op} {b}"));
    let leaf = prop_oneof![
        4 => cmp,
        2 => prop::sample::select(PREDICATES).prop_map(String::from),
        1 => same_typed().prop_map(|(a, b, c)| format!("{a} BETWEEN {b} AND {c}")),
        1 => same_typed().prop_map(|(a, b, c)| format!("{a} IN ({b}, {c})")),
        1 => prop_oneof![number(), time()].prop_map(|a| format!("{a} IS NOT NULL")),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} AND {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

/// Timestamps the engine accepts, edges included (years 1900 to 9999).
fn edge_ts() -> impl Strategy<Value = i64> {
    const MIN_TS: i64 = -2_208_988_800_000;
    const MAX_TS: i64 = 253_402_300_799_999;
    prop_oneof![
        6 => (0i64..(400 * 24)).prop_map(|h| T0 + h * HOUR),
        1 => Just(MIN_TS),
        1 => Just(MAX_TS),
        1 => MIN_TS..=MAX_TS,
    ]
}

#[derive(Debug, Clone)]
struct Edge {
    events: Vec<(u8, i64, &'static str, f64, Option<i64>)>,
    traits: Vec<TraitRow>,
    advance: Vec<i64>,
}

fn edges() -> impl Strategy<Value = Edge> {
    let amount = prop_oneof![
        6 => (0i64..100_000).prop_map(|c| c as f64 / 100.0),
        1 => Just(0.0),
        1 => Just(9.2e16),
        1 => Just(1e300),
        1 => Just(f64::NAN),
    ];
    let big = prop_oneof![3 => -1_000i64..1_000, 1 => Just(i64::MIN), 1 => Just(i64::MAX), 1 => any::<i64>()];
    let float = prop_oneof![
        3 => -1e3f64..1e3,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::MAX),
    ];
    let event = (
        0u8..4,
        edge_ts(),
        prop::sample::select(&KINDS[..]),
        amount,
        prop::option::of(prop_oneof![0i64..10, Just(i64::MAX)]),
    );
    let tr = (
        0u8..5,
        prop::option::of(big.clone()),
        prop::option::of(big),
        prop::option::of(float),
    );
    let target = prop_oneof![
        4 => (0i64..(800 * 24)).prop_map(|h| T0 + h * HOUR),
        1 => edge_ts(),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => any::<i64>(),
    ];
    (
        prop::collection::vec(event, 1..20),
        prop::collection::vec(tr, 0..6),
        prop::collection::vec(target, 0..6),
    )
        .prop_map(|(events, traits, advance)| Edge {
            events,
            traits,
            advance,
        })
}

fn edge_events(evs: &[(u8, i64, &'static str, f64, Option<i64>)]) -> RecordBatch {
    let cats = ["kitchen", "toys"];
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "customer_id",
            Arc::new(Int64Array::from_iter_values(evs.iter().map(|e| e.0 as i64))),
        ),
        (
            "ts",
            Arc::new(
                TimestampMillisecondArray::from_iter_values(evs.iter().map(|e| e.1))
                    .with_timezone("UTC"),
            ),
        ),
        (
            "event_type",
            Arc::new(StringArray::from_iter_values(evs.iter().map(|e| e.2))),
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(evs.iter().map(|e| e.3))),
        ),
        (
            "quantity",
            Arc::new(Int64Array::from_iter(evs.iter().map(|e| e.4))),
        ),
        (
            "product_ids",
            list_column(evs.iter().enumerate().map(|(i, _)| vec![PRODUCTS[i % 3]])),
        ),
        (
            "categories",
            list_column(evs.iter().enumerate().map(|(i, _)| vec![cats[i % 2]])),
        ),
    ];
    RecordBatch::try_from_iter(cols).expect("valid batch")
}

/// One trait upsert: customer, then an int, a timestamp and a float trait.
type TraitRow = (u8, Option<i64>, Option<i64>, Option<f64>);

fn edge_traits(rows: &[TraitRow]) -> RecordBatch {
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "customer_id",
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.0 as i64),
            )),
        ),
        (
            "signup_at",
            Arc::new(TimestampMillisecondArray::from_iter(
                rows.iter().map(|r| r.1),
            )),
        ),
        (
            "score",
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
        ),
        (
            "rating",
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.3))),
        ),
    ];
    RecordBatch::try_from_iter(cols).expect("valid batch")
}

fn edge_rules(rule: &str, lateness: &str) -> serde_json::Value {
    json!({
        "allowed_lateness": lateness,
        "traits": {"signup_at": "timestamp", "score": "int", "rating": "float", "vip": "bool", "industry": "string"},
        "segments": [
            {"name": "base", "rule": "orders >= 1"},
            {"name": "r", "rule": rule, "cooldown": "3 days", "holdout": 50}
        ],
        "lifecycles": [{"name": "tier", "stages": [{"name": "high", "rule": rule}, {"name": "low", "rule": "TRUE"}]}]
    })
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// (a) Any order, any batching: the same state and memberships, and still
    /// the same after the clock moves on.
    #[test]
    fn order_and_batching_do_not_matter(
        (events, shuffled, sizes) in prop::collection::vec(event(), 1..50).prop_flat_map(|evs| {
            (Just(evs.clone()), Just(evs).prop_shuffle(), prop::collection::vec(1usize..12, 0..12))
        }),
        str_ids in any::<bool>(),
        lateness in prop::sample::select(&["0 ms", "2 days"][..]),
        later_days in 1i64..400,
    ) {
        let spec = rules(lateness);
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.ts);
        let mut one = Engine::new(spec.clone()).unwrap();
        let out = one.ingest(&batch(&sorted, str_ids)).unwrap();
        prop_assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);

        let mut many = Engine::new(spec).unwrap();
        for part in split(&shuffled, &sizes) {
            let out = many.ingest(&batch(part, str_ids)).unwrap();
            prop_assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
        }
        same_engines(&one, &many, "after ingest")?;

        let until = sorted.last().unwrap().ts + later_days * DAY;
        one.advance_to(until).unwrap();
        many.advance_to(until).unwrap();
        same_engines(&one, &many, "after advance_to")?;
    }

    /// (d) Advancing in random steps (some of them backwards, which must do
    /// nothing) gives the same memberships and the same changes as one step.
    #[test]
    fn advancing_in_steps_equals_one_step(
        events in prop::collection::vec(event(), 1..40),
        str_ids in any::<bool>(),
        lateness in prop::sample::select(&["0 ms", "3 days"][..]),
        steps in prop::collection::vec(-10 * DAY..60 * DAY, 0..25),
        total_days in 1i64..500,
    ) {
        let mut base = Engine::new(rules_with_cooldown(lateness)).unwrap();
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.ts);
        base.ingest(&batch(&sorted, str_ids)).unwrap();
        let start = base.clock().unwrap();
        let until = start + total_days * DAY;

        let mut jump = base.clone();
        let mut jump_changes: Vec<_> = jump.advance_to(until).unwrap().iter().map(change_key).collect();

        let mut stepped = base;
        let mut stepped_changes = Vec::new();
        let mut t = start;
        for s in steps {
            // A step back in time is refused and changes nothing.
            t = (t + s).min(until);
            match stepped.advance_to(t) {
                Ok(changes) => stepped_changes.extend(changes.iter().map(change_key)),
                Err(e) => prop_assert!(t < stepped.clock().unwrap(), "{e}"),
            }
        }
        stepped_changes.extend(stepped.advance_to(until).unwrap().iter().map(change_key));

        prop_assert!(stepped_changes.iter().all(|c| c.6 == "time"));
        jump_changes.sort();
        stepped_changes.sort();
        prop_assert_eq!(jump_changes, stepped_changes, "time-driven changes differ");
        same_engines(&jump, &stepped, "after advancing")?;
        for c in 0..jump.num_customers() as u32 {
            prop_assert_eq!(jump.timers().due(c), stepped.timers().due(c), "timer of customer {}", c);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// (b) Compiling any rule text returns Ok or Err, never panics; the same
    /// for the rule in a lifecycle stage and for arbitrary durations and names.
    #[test]
    fn rule_compiler_never_panics(
        rule in rule_text(),
        name in prop_oneof![Just("seg".to_string()), "[a-z_]{1,8}", any::<String>()],
        duration in prop_oneof![Just("30 days".to_string()), "[0-9 a-z-]{0,20}", any::<String>()],
    ) {
        let spec = json!({
            "traits": {"industry": "string", "size": "int"},
            "allowed_lateness": duration.clone(),
            "segments": [
                {"name": name, "rule": rule.clone(), "cooldown": duration},
                {"name": "other", "rule": "orders >= 1"}
            ],
            "lifecycles": [{"name": "vip", "stages": [{"name": "gold", "rule": rule}]}]
        });
        if let Ok(spec) = RuleSetSpec::from_json(&spec.to_string()) {
            let _ = compile_ruleset(&spec);
            let _ = segstream_engine::rules::describe::describe(&spec);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (c) Arbitrary bytes are never a checkpoint: load returns Err.
    #[test]
    fn loading_arbitrary_bytes_is_an_error(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4096),
            // An Arrow IPC file's magic around garbage gets past the first check.
            prop::collection::vec(any::<u8>(), 0..4096).prop_map(|mut v| {
                let mut b = b"ARROW1\0\0".to_vec();
                b.append(&mut v);
                b.extend_from_slice(b"ARROW1");
                b
            }),
        ],
    ) {
        // (a panic inside arrow-ipc, caught by `load`, is allowed: it is an error to the caller)
        let (res, _caught_inside_load) = load_bytes(&bytes);
        prop_assert!(res.is_err(), "arbitrary bytes loaded as a checkpoint");
    }

    /// (c) A damaged checkpoint loads as an error, or as an engine that works
    /// (snapshot, advance_to, ingest, save), never a panic.
    #[test]
    fn damaged_checkpoints_never_panic(
        events in prop::collection::vec(event(), 0..20),
        str_ids in any::<bool>(),
        damages in prop::collection::vec(damage(), 1..4),
        more in prop::collection::vec(event(), 1..5),
    ) {
        let mut bytes = checkpoint_bytes(&events, str_ids);
        for d in &damages {
            if bytes.is_empty() {
                break;
            }
            apply_damage(&mut bytes, d);
        }
        // A panic inside arrow-ipc on a damaged file is caught by `load` and
        // becomes an error; what must never happen is one escaping `load`
        // (which would fail this case) or a loaded engine that panics later.
        let (res, _caught_inside_load) = load_bytes(&bytes);
        if let Ok(mut engine) = res {
            let used = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = snapshot_batch(&engine);
                let t = engine.clock().unwrap_or(T0);
                let _ = engine.advance_to(t.saturating_add(400 * DAY));
                let _ = engine.ingest(&batch(&more, str_ids));
                let path = temp_path("resave");
                let _ = segstream_engine::checkpoint::save(&engine, path.to_str().unwrap());
                let _ = std::fs::remove_file(&path);
            }));
            prop_assert!(used.is_ok(), "an engine loaded from a damaged checkpoint panicked when used");
        }
    }
}

/// A block length in the footer far beyond the file (the reader would
/// allocate it before reading, and an allocation failure aborts the process)
/// is an error naming the damage.
#[test]
fn a_block_longer_than_the_file_is_an_error_not_an_abort() {
    let events = vec![Ev {
        customer: 1,
        ts: 0,
        kind: "purchase",
        cents: 500,
        quantity: None,
        products: vec![],
        categories: vec![],
        flags: vec![],
    }];
    let mut bytes = checkpoint_bytes(&events, false);
    let n = bytes.len();
    let footer_len = i32::from_le_bytes(bytes[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer_at = n - 10 - footer_len;
    let body = {
        let footer = arrow_ipc::root_as_footer(&bytes[footer_at..n - 10]).unwrap();
        footer.recordBatches().unwrap().get(0).bodyLength()
    };
    let needle = body.to_le_bytes();
    let at = bytes[footer_at..n - 10]
        .windows(8)
        .position(|w| w == needle)
        .expect("the body length is in the footer");
    bytes[footer_at + at..footer_at + at + 8].copy_from_slice(&(1i64 << 52).to_le_bytes());
    let (res, _) = load_bytes(&bytes);
    let err = res.expect_err("a block outside the file must not load");
    assert!(err.to_string().contains("outside the file"), "{err}");
}

/// (e) Rules that compile never panic when evaluated: on events, traits
/// and clock targets at the edges of what the engine accepts, and across a
/// checkpoint round trip and a rule replacement. Run with a hand-held runner
/// so that it can also check that enough generated rules compiled. Each case
/// runs a whole engine life, so the default is 32 cases (about 9 in 10
/// compile); `PROPTEST_CASES=384` runs more, and `SHOW_RULE_ERRORS=1` prints
/// why the others did not compile.
#[test]
fn compiled_rules_never_panic_when_evaluated() {
    use proptest::test_runner::{Config, TestRunner};
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 4000,
        ..Config::default()
    });
    let compiled = AtomicUsize::new(0);
    let strategy = (
        predicate(),
        edges(),
        prop::sample::select(&["0 ms", "1 day"][..]),
    );
    let result = runner.run(&strategy, |(rule, edge, lateness)| {
        let Ok(spec) = RuleSetSpec::from_json(&edge_rules(&rule, lateness).to_string()) else {
            return Ok(());
        };
        let mut engine = match Engine::new(spec) {
            Ok(e) => e,
            Err(e) => {
                if std::env::var_os("SHOW_RULE_ERRORS").is_some() {
                    eprintln!("{}", e.to_string().lines().next().unwrap_or(""));
                }
                return Ok(());
            }
        };
        compiled.fetch_add(1, Ordering::Relaxed);
        let (first, second) = edge.events.split_at(edge.events.len() / 2);
        if !first.is_empty() {
            engine.ingest(&edge_events(first)).unwrap();
        }
        if !edge.traits.is_empty() {
            engine.update_traits(&edge_traits(&edge.traits)).unwrap();
        }
        if !second.is_empty() {
            engine.ingest(&edge_events(second)).unwrap();
        }
        for &t in &edge.advance {
            // Times before the clock are refused; the rest must work.
            if engine.clock().is_none_or(|c| t >= c) {
                engine.advance_to(t).unwrap();
            }
        }
        let _ = snapshot_batch(&engine);
        let path = temp_path("edge");
        segstream_engine::checkpoint::save(&engine, path.to_str().unwrap()).unwrap();
        let loaded = segstream_engine::checkpoint::load(path.to_str().unwrap(), None);
        let _ = std::fs::remove_file(&path);
        let mut loaded = loaded.unwrap();
        loaded
            .advance_to(loaded.clock().unwrap_or(T0).saturating_add(30 * DAY))
            .unwrap();
        let other = edge_rules(
            "ltv >= 1 AND last_purchase_at < now() - INTERVAL '2 days'",
            lateness,
        );
        let _ = engine.replace_rules(RuleSetSpec::from_json(&other.to_string()).unwrap());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let compiled = compiled.into_inner();
    eprintln!("(e): {compiled} of {cases} generated rules compiled and were evaluated");
    assert!(
        compiled * 5 >= cases as usize,
        "only {compiled} of {cases} generated rules compiled"
    );
}

/// A timestamp trait far in the past, compared with a moving `now()`: the
/// breakpoint computation once divided i64::MIN by -1 and panicked (the same
/// panic was reachable from a damaged checkpoint that loads).
#[test]
fn extreme_timestamp_trait_does_not_panic() {
    let spec = json!({
        "traits": {"signup_at": "timestamp"},
        "segments": [{"name": "old_signup", "rule": "signup_at < now() - INTERVAL '30 days'"}]
    });
    let mut engine = Engine::new(RuleSetSpec::from_json(&spec.to_string()).unwrap()).unwrap();
    let ev = Ev {
        customer: 1,
        ts: 0,
        kind: "purchase",
        cents: 100,
        quantity: None,
        products: vec![],
        categories: vec![],
        flags: vec![],
    };
    engine.ingest(&batch(&[ev], false)).unwrap();
    let traits = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![1001i64])) as ArrayRef,
        ),
        (
            "signup_at",
            Arc::new(TimestampMillisecondArray::from(vec![i64::MIN])) as ArrayRef,
        ),
    ])
    .unwrap();
    let out = engine.update_traits(&traits);
    assert!(out.is_ok());
}

/// The undamaged checkpoint round-trips (guards the damage test against
/// testing only files that never loaded in the first place).
#[test]
fn valid_checkpoint_round_trips() {
    let events: Vec<Ev> = (0..30)
        .map(|i| Ev {
            customer: (i % 7) as u8,
            ts: T0 + i * 5 * HOUR,
            kind: KINDS[i as usize % KINDS.len()],
            cents: 1_000 + i * 37,
            quantity: Some(i % 4),
            products: vec![PRODUCTS[i as usize % 3]],
            categories: vec![CATEGORIES[i as usize % 4]],
            flags: vec![],
        })
        .collect();
    for str_ids in [false, true] {
        let bytes = checkpoint_bytes(&events, str_ids);
        let (res, panics) = load_bytes(&bytes);
        assert_eq!(panics, 0);
        let loaded = res.expect("valid checkpoint loads");
        let mut original = Engine::new(rules_with_cooldown("0 ms")).unwrap();
        original.ingest(&batch(&events, str_ids)).unwrap();
        assert_eq!(snapshot_by_id(&loaded), snapshot_by_id(&original));
    }
}
