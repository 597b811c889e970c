//! JSON views for one customer and for segment sizes.

use serde_json::{json, Map, Value as J};

use super::changes::holdout_flag;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::membership::NO_STAGE;
use crate::rules::compile::NodeKind;
use crate::rules::expr::Value;
use crate::state::aggregates::{NO_FIRST, NO_LAST};
use crate::state::CustomerId;
use crate::time::format_ts;

/// One customer's aggregates, traits, segments and stages.
pub fn profile_json(engine: &Engine, id: CustomerId<'_>) -> Result<J> {
    let c = engine
        .state
        .ids
        .lookup(id)
        .ok_or_else(|| EngineError::NotFound(format!("unknown customer `{}`", id.to_text())))?
        as usize;
    let a = &engine.state.agg;
    let scale = engine.rules.scale as f64;
    let money = |v: i64| json!(v as f64 / scale);
    let ts = |v: i64, none: i64| {
        if v == none {
            J::Null
        } else {
            json!(format_ts(v))
        }
    };
    let mut m = Map::new();
    m.insert(
        "customer_id".into(),
        match engine.state.ids.get(c as u32) {
            CustomerId::Str(s) => json!(s),
            CustomerId::Int(i) => json!(i),
        },
    );
    m.insert("ltv".into(), money(a.ltv(c)));
    m.insert("gross_spend".into(), money(a.row(c).gross));
    m.insert("refunded".into(), money(a.row(c).refunded));
    m.insert(
        "max_order".into(),
        if a.row(c).orders > 0 {
            money(a.row(c).max_order)
        } else {
            J::Null
        },
    );
    m.insert(
        "aov".into(),
        if a.row(c).orders > 0 {
            money(a.ltv(c) / a.row(c).orders as i64)
        } else {
            J::Null
        },
    );
    m.insert("orders".into(), json!(a.row(c).orders));
    m.insert("refunds".into(), json!(a.row(c).refunds));
    m.insert("items".into(), json!(a.row(c).items));
    m.insert("max_quantity".into(), json!(a.row(c).max_quantity));
    m.insert(
        "first_purchase_at".into(),
        ts(a.row(c).first_purchase, NO_FIRST),
    );
    m.insert(
        "last_purchase_at".into(),
        ts(a.row(c).last_purchase, NO_LAST),
    );
    m.insert("last_refund_at".into(), ts(a.row(c).last_refund, NO_LAST));
    let k = &engine.state.keyed;
    if k.needs.category_set {
        let names: Vec<&str> = k.category_sets[c].iter().map(|&s| k.symbol(s)).collect();
        m.insert("categories".into(), json!(names));
    }
    if k.needs.product_set {
        let names: Vec<&str> = k.product_sets[c].iter().map(|&s| k.symbol(s)).collect();
        m.insert("products".into(), json!(names));
    }
    let mut traits = Map::new();
    for (t, (name, _)) in engine.state.traits.decl.iter().enumerate() {
        let v = match &engine.state.traits.values[t][c] {
            Value::Null => J::Null,
            Value::Bool(b) => json!(b),
            Value::Int(i) => json!(i),
            Value::Float(f) => json!(f),
            Value::Str(s) => json!(&**s),
            Value::Ts(t) => json!(format_ts(*t)),
            Value::Money(v) => money(*v),
            Value::Interval(v) => json!(v),
        };
        traits.insert(name.clone(), v);
    }
    m.insert("traits".into(), J::Object(traits));
    let mut segments = Vec::new();
    let mut holdouts = Vec::new();
    let mut stages = Map::new();
    for (i, node) in engine.rules.nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Segment { holdout, .. } => {
                if engine.members.is_member(i, c) {
                    segments.push(json!(node.name));
                    if holdout_flag(
                        engine.state.ids.get(c as u32),
                        &node.name,
                        &engine.rules.salt,
                        *holdout,
                    ) {
                        holdouts.push(json!(node.name));
                    }
                }
            }
            NodeKind::Lifecycle { stages: st } => {
                let s = engine.members.stage(i, c);
                stages.insert(
                    node.name.clone(),
                    if s == NO_STAGE {
                        J::Null
                    } else {
                        json!(st[s as usize].0)
                    },
                );
            }
        }
    }
    m.insert("segments".into(), J::Array(segments));
    m.insert("holdout".into(), J::Array(holdouts));
    m.insert("stages".into(), J::Object(stages));
    let due = engine.timers.due(c as u32);
    m.insert(
        "next_check_at".into(),
        if due == i64::MAX {
            J::Null
        } else {
            json!(format_ts(due))
        },
    );
    Ok(J::Object(m))
}

/// Segment sizes, and customers per stage for lifecycles.
pub fn stats_json(engine: &Engine) -> J {
    let mut m = Map::new();
    for (i, node) in engine.rules.nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Segment { .. } => {
                m.insert(node.name.clone(), json!(engine.members.segment_count(i)));
            }
            NodeKind::Lifecycle { stages } => {
                let mut s = Map::new();
                for (j, (name, _)) in stages.iter().enumerate() {
                    s.insert(name.clone(), json!(engine.members.stage_counts(i)[j]));
                }
                m.insert(node.name.clone(), J::Object(s));
            }
        }
    }
    J::Object(m)
}
