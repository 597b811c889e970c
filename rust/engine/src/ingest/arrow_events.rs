//! Applying an Arrow batch of events.

use std::collections::BTreeMap;

use arrow_array::{Array, RecordBatch};

use super::columns::{
    find, id_column, int_column, text_column, AmountColumn, IdColumn, TagColumn, TsColumn,
};
use super::{event_id_hash, BatchStats, Touched};
use crate::engine::Rejected;
use crate::error::{EngineError, Result};
use crate::state::{CustomerId, EventKind, EventRow, EventTags, IdKind, State};

/// A batch whose columns passed schema validation.
pub struct Resolved {
    rows: usize,
    ids: IdColumn,
    kind: IdKind,
    ts: TsColumn,
    event_type: Option<arrow_array::StringArray>,
    amount: Option<AmountColumn>,
    quantity: Option<(arrow_array::Int64Array, arrow_array::ArrayRef)>,
    event_id: Option<arrow_array::StringArray>,
    products: Option<TagColumn>,
    categories: Option<TagColumn>,
    flags: Option<TagColumn>,
    shard: Option<Shard>,
}

/// A slice of the customers, by a hash of their id: engines given the shards
/// `0..count` of the same input hold disjoint customers, and merge into the
/// engine that would have read it all (`Engine::merge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// The shard of a customer id. (A null id belongs to shard 0, which
    /// reports the row as rejected.)
    #[inline]
    pub fn of(id: CustomerId<'_>, count: u32) -> u32 {
        let h = match id {
            CustomerId::Str(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
            CustomerId::Int(v) => xxhash_rust::xxh3::xxh3_64(&v.to_le_bytes()),
        };
        (h % count.max(1) as u64) as u32
    }
}

impl Resolved {
    /// Only the rows of customers in `shard` will be applied (or rejected).
    pub fn restrict_to(&mut self, shard: Option<Shard>) {
        self.shard = shard.filter(|s| s.count > 1);
    }

    /// Earliest and latest readable event time in the batch.
    pub fn ts_range(&self) -> Option<(i64, i64)> {
        let mut out: Option<(i64, i64)> = None;
        for i in 0..self.rows {
            if let Ok(t) = self.ts.get(i) {
                out = Some(out.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
            }
        }
        out
    }
}

/// Checks the batch's columns against the engine (changing nothing).
pub fn resolve(
    state: &State,
    map: &BTreeMap<String, String>,
    batch: &RecordBatch,
) -> Result<Resolved> {
    let required = |name: &str| {
        find(batch, map, name).ok_or_else(|| {
            let shown = map.get(name).map(|s| s.as_str()).unwrap_or(name);
            let have: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            EngineError::schema(
                name,
                format!("required column `{shown}` is missing (columns present: {}); map yours with the column map", have.join(", ")),
            )
        })
    };
    let ids = id_column("customer_id", required("customer_id")?)?;
    let kind = match ids {
        IdColumn::Str(_) => IdKind::Str,
        IdColumn::Int(..) => IdKind::Int,
    };
    if let Some(have) = state.ids.kind() {
        if have != kind {
            return Err(EngineError::schema(
                "customer_id",
                format!(
                    "this engine holds {} ids but the batch has {} ids",
                    kind_name(have),
                    kind_name(kind)
                ),
            ));
        }
    }
    let ts = TsColumn::new("ts", required("ts")?)?;
    let event_type = find(batch, map, "event_type")
        .map(|c| text_column("event_type", c))
        .transpose()?;
    let amount = find(batch, map, "amount")
        .map(|c| AmountColumn::new("amount", c))
        .transpose()?;
    let quantity = find(batch, map, "quantity")
        .map(|c| int_column("quantity", c, true))
        .transpose()?;
    let event_id = find(batch, map, "event_id")
        .map(|c| text_column("event_id", c))
        .transpose()?;
    let products = if state.keyed.wants_products() {
        find(batch, map, "product_ids")
            .map(|c| TagColumn::new("product_ids", c))
            .transpose()?
    } else {
        None
    };
    let categories = if state.keyed.wants_categories() {
        find(batch, map, "categories")
            .map(|c| TagColumn::new("categories", c))
            .transpose()?
    } else {
        None
    };
    let flags = if state.keyed.wants_flags() {
        find(batch, map, "flags")
            .map(|c| TagColumn::new("flags", c))
            .transpose()?
    } else {
        None
    };
    Ok(Resolved {
        rows: batch.num_rows(),
        ids,
        kind,
        ts,
        event_type,
        amount,
        quantity,
        event_id,
        products,
        categories,
        flags,
        shard: None,
    })
}

/// Applies each valid row of a resolved batch; invalid rows are returned with their reason.
pub fn apply_resolved(
    state: &mut State,
    clock: Option<i64>,
    r: &Resolved,
    touched: &mut Touched,
) -> (Rejected, BatchStats) {
    let Resolved {
        rows,
        ids,
        kind,
        ts,
        event_type,
        amount,
        quantity,
        event_id,
        products,
        categories,
        flags,
        shard,
    } = r;
    let kind = *kind;
    // From here on nothing can fail as a whole: rows are applied or rejected one by one.
    if *rows > 0 {
        let _ = state.ids.set_kind(kind);
    }
    let scale_digits = state_scale_digits(state);
    let mut rejected = Vec::new();
    let mut stats = BatchStats::default();
    let mut tags = EventTags::default();
    // First pass: the rows to apply (this shard's), with who (for customers
    // already known) and what. The second pass walks them knowing the rows
    // ahead, and prefetches their state.
    let mut ahead: Vec<Ahead> = Vec::with_capacity(*rows);
    for i in 0..*rows {
        let id = match ids {
            IdColumn::Str(a) if !a.is_null(i) => Some(CustomerId::Str(a.value(i))),
            IdColumn::Int(a, _) if !a.is_null(i) => Some(CustomerId::Int(a.value(i))),
            _ => None,
        };
        if let Some(sh) = shard {
            if id.map_or(0, |id| Shard::of(id, sh.count)) != sh.index {
                continue;
            }
        }
        let c = id.and_then(|id| state.ids.lookup(id));
        ahead.push(Ahead {
            row: i as u32,
            customer: c.unwrap_or(UNKNOWN),
            kind: event_kind(event_type.as_ref(), i, state),
            ts: ts.get(i).unwrap_or(i64::MAX),
        });
    }
    for p in 0..ahead.len() {
        prefetch_row(state, clock, &ahead, p + PREFETCH_DISTANCE, false);
        prefetch_row(state, clock, &ahead, p + PREFETCH_DISTANCE / 2, true);
        let Ahead {
            row,
            customer: looked_up,
            kind,
            ..
        } = ahead[p];
        let i = row as usize;
        let cid = match ids {
            IdColumn::Str(a) => {
                if a.is_null(i) {
                    rejected.push((i, "customer_id is null".into()));
                    continue;
                }
                CustomerId::Str(a.value(i))
            }
            IdColumn::Int(a, orig) => {
                if orig.is_null(i) {
                    rejected.push((i, "customer_id is null".into()));
                    continue;
                }
                if a.is_null(i) {
                    rejected.push((i, "customer_id does not fit in int64".into()));
                    continue;
                }
                CustomerId::Int(a.value(i))
            }
        };
        let t = match ts.get(i) {
            Ok(t) => t,
            Err(reason) => {
                rejected.push((i, reason));
                continue;
            }
        };
        let Some(ev_kind) = kind else {
            rejected.push((i, "event_type is empty".into()));
            continue;
        };
        let money = !matches!(ev_kind, EventKind::Signal(_));
        let amt = match (amount, money) {
            (_, false) => 0,
            (None, true) => {
                rejected.push((
                    i,
                    "amount is required for purchases and refunds (column missing)".into(),
                ));
                continue;
            }
            (Some(col), true) => match col.get(i, scale_digits) {
                Ok(Some(v)) if v >= 0 => v,
                Ok(Some(_)) => {
                    rejected.push((i, "amount is negative; send refunds as event_type `refund` with a positive amount".into()));
                    continue;
                }
                Ok(None) => {
                    rejected.push((i, "amount is null".into()));
                    continue;
                }
                Err(reason) => {
                    rejected.push((i, reason));
                    continue;
                }
            },
        };
        let qty = match quantity {
            Some((a, orig)) if !orig.is_null(i) => {
                if a.is_null(i) {
                    rejected.push((i, "quantity is not an integer".into()));
                    continue;
                }
                let q = a.value(i);
                if q < 0 {
                    rejected.push((i, format!("quantity {q} is negative")));
                    continue;
                }
                Some(q)
            }
            _ => None,
        };
        // Unreferenced signals change nothing; skip them early.
        if matches!(ev_kind, EventKind::Signal(None)) {
            // No rule reads this signal, but the customer exists from now on
            // (a rule such as `orders = 0` may hold for them).
            let (c, new) = intern(state, looked_up, cid);
            if new {
                state.ensure(c as usize + 1);
                touched.add(c);
            }
            stats.applied += 1;
            stats.max_ts = Some(stats.max_ts.map_or(t, |m| m.max(t)));
            continue;
        }
        tags.clear();
        if money {
            if let Some(col) = products {
                col.for_each(i, |p| state.keyed.tag_product(&mut tags, p));
            }
            if let Some(col) = categories {
                col.for_each(i, |c| state.keyed.tag_category(&mut tags, c));
            }
            if let Some(col) = flags {
                col.for_each(i, |f| state.keyed.tag_flag(&mut tags, f));
            }
        }
        let (c, new) = intern(state, looked_up, cid);
        if new {
            state.ensure(c as usize + 1);
        }
        if let Some(ids) = event_id {
            if !ids.is_null(i)
                && !state
                    .seen_events
                    .insert((c, event_id_hash(ids.value(i).as_bytes())))
            {
                stats.duplicates += 1;
                continue;
            }
        }
        let row = EventRow {
            ts: t,
            kind: ev_kind,
            amount: amt,
            quantity: qty,
            tags: &tags,
        };
        state.apply(c, &row, clock);
        touched.add(c);
        stats.applied += 1;
        stats.max_ts = Some(stats.max_ts.map_or(t, |m| m.max(t)));
    }
    (rejected, stats)
}

/// No index yet: a customer new in this batch, or a row to be rejected.
const UNKNOWN: u32 = u32::MAX;
/// A row to apply, as the first pass saw it.
#[derive(Clone, Copy)]
struct Ahead {
    /// Row in the batch.
    row: u32,
    /// The customer's index, or `UNKNOWN`.
    customer: u32,
    /// What the event is (`None`: empty event_type, rejected).
    kind: Option<EventKind>,
    /// Event time (`i64::MAX` if unreadable: rejected later).
    ts: i64,
}
/// Rows between a prefetch and the use of what it fetched: enough to cover a
/// memory access (~100 ns) at the rate rows are applied.
const PREFETCH_DISTANCE: usize = 32;

/// What an event is, from its `event_type` (`None`: empty, which is rejected).
#[inline]
fn event_kind(
    event_type: Option<&arrow_array::StringArray>,
    i: usize,
    state: &State,
) -> Option<EventKind> {
    match event_type {
        Some(a) if !a.is_null(i) => match a.value(i) {
            "purchase" => Some(EventKind::Purchase),
            "refund" => Some(EventKind::Refund),
            "" => None,
            other => Some(EventKind::Signal(state.keyed.signal_index(other))),
        },
        _ => Some(EventKind::Purchase),
    }
}

#[inline]
fn prefetch_row(state: &State, clock: Option<i64>, ahead: &[Ahead], at: usize, deep: bool) {
    if let Some(&Ahead {
        customer: c,
        kind: Some(kind),
        ts,
        ..
    }) = ahead.get(at)
    {
        if c != UNKNOWN && !matches!(kind, EventKind::Signal(None)) {
            state.keyed.prefetch(c as usize, kind, ts, clock, deep);
            if !deep && !matches!(kind, EventKind::Signal(_)) {
                state.agg.prefetch(c as usize);
            }
        }
    }
}

/// The customer's index: the first pass's lookup, or interned now (new customer).
#[inline]
fn intern(state: &mut State, looked_up: u32, id: CustomerId<'_>) -> (u32, bool) {
    if looked_up != UNKNOWN {
        return (looked_up, false);
    }
    match id {
        CustomerId::Str(s) => state.ids.intern_str(s),
        CustomerId::Int(v) => state.ids.intern_int(v),
    }
}

fn kind_name(k: IdKind) -> &'static str {
    match k {
        IdKind::Str => "text",
        IdKind::Int => "integer",
    }
}

/// Currency scale digits, kept on the state so decoders need no rules.
fn state_scale_digits(state: &State) -> u32 {
    state.scale_digits
}
