//! The snapshot: one row per customer with the aggregates under their
//! rule-language names, a boolean column per segment (and, for a segment
//! with a holdout, a `<segment>__holdout` column) and a stage column per
//! lifecycle.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::changes::holdout_flag;
use crate::engine::Engine;
use crate::membership::NO_STAGE;
use crate::rules::compile::{CompiledRules, NodeKind};
use crate::rules::expr::Value;
use crate::rules::ruleset::TraitType;
use crate::state::aggregates::{Base, NO_FIRST, NO_LAST};
use crate::state::IdKind;

/// The ids of the given customers as an Arrow array.
pub fn ids_for(engine: &Engine, customers: &[u32]) -> ArrayRef {
    let ids = &engine.state.ids;
    match ids.kind() {
        Some(IdKind::Int) => Arc::new(Int64Array::from_iter_values(
            customers.iter().map(|&c| ids.int_ids()[c as usize]),
        )),
        _ => Arc::new(StringArray::from_iter_values(
            customers.iter().map(|&c| &*ids.str_ids()[c as usize]),
        )),
    }
}

/// All ids, in index order.
pub fn ids_array(engine: &Engine) -> ArrayRef {
    let all: Vec<u32> = (0..engine.num_customers() as u32).collect();
    ids_for(engine, &all)
}

/// The snapshot's membership columns, in its order: per segment its boolean
/// column and, with a holdout, `<segment>__holdout`; per lifecycle its stage.
/// What the bulk `memberships` output keeps of the snapshot.
pub fn membership_columns(rules: &CompiledRules) -> Vec<String> {
    let mut out = Vec::new();
    for node in &rules.nodes {
        out.push(node.name.clone());
        if let NodeKind::Segment { holdout, .. } = &node.kind {
            if *holdout > 0.0 {
                out.push(holdout_column(&node.name));
            }
        }
    }
    out
}

/// Name of the column that flags a segment's control group: `<segment>__holdout`.
pub fn holdout_column(segment: &str) -> String {
    format!("{segment}__holdout")
}

/// Per customer: a member of segment `node` who falls in its control group.
/// False for non-members, so an audience is `segment AND NOT segment__holdout`
/// and the column's count is the control group's size.
fn held_out(engine: &Engine, node: usize, percent: f64, n: usize) -> BooleanArray {
    let name = &engine.rules.nodes[node].name;
    let salt = &engine.rules.salt;
    (0..n)
        .map(|c| {
            Some(
                engine.members.is_member(node, c)
                    && holdout_flag(engine.state.ids.get(c as u32), name, salt, percent),
            )
        })
        .collect()
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Builds the snapshot table.
pub fn snapshot_batch(engine: &Engine) -> RecordBatch {
    let n = engine.num_customers();
    let a = &engine.state.agg;
    let scale = engine.rules.spec.currency_scale as i8;
    let money_type = DataType::Decimal128(18, scale);
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let id_type = match engine.state.ids.kind() {
        Some(IdKind::Int) => DataType::Int64,
        _ => DataType::Utf8,
    };
    fields.push(Field::new("customer_id", id_type, false));
    cols.push(ids_array(engine));
    let money =
        |name: &str, vals: Vec<Option<i64>>, fields: &mut Vec<Field>, cols: &mut Vec<ArrayRef>| {
            let arr = Decimal128Array::from(
                vals.into_iter()
                    .map(|v| v.map(i128::from))
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(18, scale)
            .expect("valid decimal precision");
            fields.push(Field::new(name, money_type.clone(), true));
            cols.push(Arc::new(arr));
        };
    let rows = &a.rows()[..n];
    money(
        "ltv",
        rows.iter().map(|r| Some(r.ltv())).collect(),
        &mut fields,
        &mut cols,
    );
    money(
        "gross_spend",
        rows.iter().map(|r| Some(r.gross)).collect(),
        &mut fields,
        &mut cols,
    );
    money(
        "refunded",
        rows.iter().map(|r| Some(r.refunded)).collect(),
        &mut fields,
        &mut cols,
    );
    money(
        "max_order",
        rows.iter().map(|r| r.max_order()).collect(),
        &mut fields,
        &mut cols,
    );
    money(
        "aov",
        rows.iter().map(|r| r.aov()).collect(),
        &mut fields,
        &mut cols,
    );
    let mut int = |name: &str, get: fn(&Base) -> u32| {
        fields.push(Field::new(name, DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| get(r) as i64),
        )));
    };
    int("orders", |r| r.orders);
    int("refunds", |r| r.refunds);
    int("items", |r| r.items);
    int("max_quantity", |r| r.max_quantity);
    let mut ts = |name: &str, get: fn(&Base) -> i64, none: i64| {
        fields.push(Field::new(name, ts_type(), true));
        let arr = TimestampMillisecondArray::from(
            rows.iter()
                .map(|r| Some(get(r)).filter(|&v| v != none))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        cols.push(Arc::new(arr));
    };
    ts("first_purchase_at", |r| r.first_purchase, NO_FIRST);
    ts("last_purchase_at", |r| r.last_purchase, NO_LAST);
    ts("last_refund_at", |r| r.last_refund, NO_LAST);
    let k = &engine.state.keyed;
    if k.needs.category_set {
        fields.push(Field::new("distinct_categories", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(
            k.category_sets[..n].iter().map(|s| s.len() as i64),
        )));
    }
    if k.needs.product_set {
        fields.push(Field::new("distinct_products", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(
            k.product_sets[..n].iter().map(|s| s.len() as i64),
        )));
    }
    for (t, (name, ty)) in engine.state.traits.decl.iter().enumerate() {
        let vals = &engine.state.traits.values[t];
        let (field, arr): (Field, ArrayRef) = match ty {
            TraitType::String => {
                let mut b = StringBuilder::new();
                for v in &vals[..n] {
                    match v {
                        Value::Str(s) => b.append_value(s),
                        _ => b.append_null(),
                    }
                }
                (Field::new(name, DataType::Utf8, true), Arc::new(b.finish()))
            }
            TraitType::Int => {
                let mut b = Int64Builder::new();
                for v in &vals[..n] {
                    b.append_option(if let Value::Int(i) = v {
                        Some(*i)
                    } else {
                        None
                    });
                }
                (
                    Field::new(name, DataType::Int64, true),
                    Arc::new(b.finish()),
                )
            }
            TraitType::Float => {
                let mut b = Float64Builder::new();
                for v in &vals[..n] {
                    b.append_option(if let Value::Float(f) = v {
                        Some(*f)
                    } else {
                        None
                    });
                }
                (
                    Field::new(name, DataType::Float64, true),
                    Arc::new(b.finish()),
                )
            }
            TraitType::Bool => {
                let mut b = BooleanBuilder::new();
                for v in &vals[..n] {
                    b.append_option(if let Value::Bool(x) = v {
                        Some(*x)
                    } else {
                        None
                    });
                }
                (
                    Field::new(name, DataType::Boolean, true),
                    Arc::new(b.finish()),
                )
            }
            TraitType::Timestamp => {
                let mut b = TimestampMillisecondBuilder::new().with_timezone("UTC");
                for v in &vals[..n] {
                    b.append_option(if let Value::Ts(x) = v { Some(*x) } else { None });
                }
                (Field::new(name, ts_type(), true), Arc::new(b.finish()))
            }
        };
        fields.push(field);
        cols.push(arr);
    }
    for (i, node) in engine.rules.nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Segment { holdout, .. } => {
                fields.push(Field::new(&node.name, DataType::Boolean, false));
                let mut b = BooleanBuilder::with_capacity(n);
                for cell in engine.members.column(i, n) {
                    b.append_value(cell == 1);
                }
                cols.push(Arc::new(b.finish()));
                if *holdout > 0.0 {
                    fields.push(Field::new(
                        holdout_column(&node.name),
                        DataType::Boolean,
                        false,
                    ));
                    cols.push(Arc::new(held_out(engine, i, *holdout, n)));
                }
            }
            NodeKind::Lifecycle { stages } => {
                fields.push(Field::new(&node.name, DataType::Utf8, true));
                let arr = StringArray::from_iter(
                    engine
                        .members
                        .column(i, n)
                        .map(|s| (s != NO_STAGE).then(|| stages[s as usize].0.as_str())),
                );
                cols.push(Arc::new(arr));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .expect("snapshot columns match their schema")
}
