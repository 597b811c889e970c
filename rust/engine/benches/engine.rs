//! Engine hot paths without Python: evaluated and deferred ingest, the
//! evaluation kernel over everyone, and the timer wheel.
//!
//!     cargo bench -p segstream-engine --bench engine
//!
//! Events are generated here (seeded): skewed customer ids, time order,
//! purchases with a refund and a page view now and then, one or two
//! categories each; the rules are the Python engine benchmark's.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use segstream_engine::time::TimerIndex;
use segstream_engine::{Engine, RuleSetSpec};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_704_067_200_000; // 2024-01-01
const CATEGORIES: [&str; 20] = [
    "kitchen",
    "tableware",
    "grocery",
    "cookware",
    "garden",
    "toys",
    "books",
    "beauty",
    "sports",
    "electronics",
    "apparel",
    "shoes",
    "pets",
    "baby",
    "office",
    "music",
    "outdoor",
    "health",
    "auto",
    "crafts",
];

const RULES: &str = r#"{
  "currency_scale": 2, "allowed_lateness": "1 hour",
  "segments": [
    {"name": "lapsed", "rule": "last_purchase_at < now() - INTERVAL '90 days'"},
    {"name": "dormant", "rule": "orders >= 2 AND last_purchase_at < now() - INTERVAL '90 days'"},
    {"name": "lapsed_vip", "rule": "stage('vip_tier') = 'gold' AND last_purchase_at < now() - INTERVAL '60 days'"},
    {"name": "one_and_done", "rule": "orders = 1 AND first_purchase_at < now() - INTERVAL '180 days'"},
    {"name": "cross_sell_tableware", "rule": "has_category('kitchen') AND NOT has_category('tableware') AND last_purchase_at(category => 'kitchen') <= now() - INTERVAL '30 days'"},
    {"name": "frequent_buyers", "rule": "purchases(within => INTERVAL '30 days') >= 3"},
    {"name": "recent_big_spender", "rule": "spend(within => INTERVAL '30 days') >= 300"},
    {"name": "browsers", "rule": "events('page_view', within => INTERVAL '7 days') >= 2 AND purchases(within => INTERVAL '30 days') = 0"},
    {"name": "suppress_refunders", "rule": "refunds >= 2 OR (refunds >= 1 AND refunded * 2 >= gross_spend)"},
    {"name": "high_value_repeaters", "rule": "orders >= 3 AND aov >= 100"}
  ],
  "lifecycles": [{"name": "vip_tier", "stages": [
    {"name": "gold", "rule": "ltv >= 2000"}, {"name": "silver", "rule": "ltv >= 1000"},
    {"name": "bronze", "rule": "ltv >= 250"}, {"name": "regular", "rule": "orders >= 1"}]}]
}"#;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `events` events of `customers` customers over a year, in batches of `rows`.
fn events(customers: u64, events: usize, rows: usize, string_ids: bool) -> Vec<RecordBatch> {
    let mut rng = Rng(20240101);
    let mut ts: Vec<i64> = (0..events)
        .map(|_| T0 + (rng.next() % (366 * DAY as u64)) as i64)
        .collect();
    ts.sort_unstable();
    let mut out = Vec::new();
    for lo in (0..events).step_by(rows) {
        let hi = (lo + rows).min(events);
        let n = hi - lo;
        let mut ids = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut amounts = Vec::with_capacity(n);
        let mut cats = ListBuilder::new(StringBuilder::new());
        for _ in 0..n {
            // Skewed: a few customers buy often, most rarely.
            let u = rng.unit();
            ids.push(((u * u) * customers as f64) as i64);
            let p = rng.unit();
            let (ty, amount) = if p < 0.85 {
                (
                    "purchase",
                    (rng.unit() * 120.0 * 100.0).round() / 100.0 + 1.0,
                )
            } else if p < 0.90 {
                ("refund", (rng.unit() * 60.0 * 100.0).round() / 100.0 + 1.0)
            } else {
                ("page_view", 0.0)
            };
            types.push(ty);
            amounts.push(amount);
            for _ in 0..1 + (rng.next() % 2) {
                cats.values()
                    .append_value(CATEGORIES[(rng.next() % 20) as usize]);
            }
            cats.append(true);
        }
        let id_col: ArrayRef = if string_ids {
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("c{i:09}")),
            ))
        } else {
            Arc::new(Int64Array::from(ids))
        };
        let batch = RecordBatch::try_from_iter(vec![
            ("customer_id", id_col),
            (
                "ts",
                Arc::new(Int64Array::from(ts[lo..hi].to_vec())) as ArrayRef,
            ),
            ("event_type", Arc::new(StringArray::from(types)) as ArrayRef),
            ("amount", Arc::new(Float64Array::from(amounts)) as ArrayRef),
            ("categories", Arc::new(cats.finish()) as ArrayRef),
        ])
        .unwrap();
        out.push(batch);
    }
    out
}

fn engine() -> Engine {
    Engine::new(RuleSetSpec::from_json(RULES).unwrap()).unwrap()
}

fn ingest(c: &mut Criterion) {
    let n = 1_000_000;
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    for (label, string_ids) in [("int ids", false), ("string ids", true)] {
        let batches = events(100_000, n, 65_536, string_ids);
        g.bench_function(format!("evaluated, 11 nodes, {label}"), |b| {
            b.iter_batched(
                engine,
                |mut e| {
                    for batch in &batches {
                        e.ingest(batch).unwrap();
                    }
                    e
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("deferred, 11 nodes, {label}"), |b| {
            b.iter_batched(
                engine,
                |mut e| {
                    for batch in &batches {
                        e.ingest_deferred(batch, None).unwrap();
                    }
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn evaluation(c: &mut Criterion) {
    let mut e = engine();
    for batch in &events(200_000, 1_000_000, 65_536, false) {
        e.ingest_deferred(batch, None).unwrap();
    }
    e.settle_deferred();
    let nodes = e.rules().nodes.len() as u64;
    let mut g = c.benchmark_group("kernel");
    g.sample_size(10);
    g.throughput(Throughput::Elements(e.num_customers() as u64 * nodes));
    g.bench_function("recompute everyone, 11 nodes (customer x node)", |b| {
        b.iter(|| e.recompute())
    });
    g.finish();
}

fn timers(c: &mut Criterion) {
    let n: u32 = 1_000_000;
    let mut g = c.benchmark_group("timers");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    let mut rng = Rng(7);
    let due: Vec<i64> = (0..n)
        .map(|_| T0 + (rng.next() % (365 * DAY as u64)) as i64)
        .collect();
    g.bench_function("set 1M, then move each once", |b| {
        b.iter(|| {
            let mut t = TimerIndex::default();
            for (c, &d) in due.iter().enumerate() {
                t.set(c as u32, d);
            }
            for (c, &d) in due.iter().enumerate() {
                t.set(c as u32, d + DAY);
            }
            t
        })
    });
    g.bench_function("set 1M, pop all in 365 daily steps", |b| {
        b.iter_batched(
            || {
                let mut t = TimerIndex::default();
                for (c, &d) in due.iter().enumerate() {
                    t.set(c as u32, d);
                }
                t
            },
            |mut t| {
                let mut out = Vec::new();
                for day in 1..=366 {
                    out.clear();
                    t.pop_all_due(T0 + day * DAY, &mut out);
                }
                t
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, ingest, evaluation, timers);
criterion_main!(benches);
