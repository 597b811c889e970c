//! Applying an Arrow batch of events.

use std::collections::BTreeMap;

use arrow_array::{Array, RecordBatch};

use super::columns::{
    find, id_column, int_column, text_column, AmountColumn, IdColumn, TagColumn, TsColumn,
};
use super::event_types::{EventKinds, EventTypeColumn};
use super::{event_id_hash, BatchStats, Touched};
use crate::engine::Rejected;
use crate::error::{EngineError, Result};
use crate::rules::ruleset::{EventTypesSpec, RuleSetSpec};
use crate::state::{CustomerId, EventKind, EventRow, EventTags, IdKind, State};
use crate::time::TsFormat;

/// A batch whose columns passed schema validation.
pub struct Resolved {
    rows: usize,
    ids: IdColumn,
    kind: IdKind,
    ts: TsColumn,
    event_type: Option<EventTypeColumn>,
    /// The rule set's extra purchase and refund names.
    aliases: Option<EventTypesSpec>,
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

    /// Applies the rule set's input settings: its extra `event_types` names,
    /// and `max_future` ahead of `wall_ms` (the wall clock) as the latest
    /// time accepted.
    pub fn follow_rules(&mut self, spec: &RuleSetSpec, wall_ms: i64) {
        self.aliases = spec.event_types.clone();
        let ahead = spec
            .max_future_ms()
            .unwrap_or(crate::rules::ruleset::DEFAULT_MAX_FUTURE_MS);
        self.ts.refuse_after(wall_ms.saturating_add(ahead));
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
    // Ids of the other kind are converted by the rule every decoder shares.
    let ids = id_column("customer_id", required("customer_id")?)?.into_kind(state.ids.kind())?;
    let kind = ids.kind();
    let ts = TsColumn::new("ts", required("ts")?, TsFormat::default())?;
    let event_type = find(batch, map, "event_type")
        .map(|c| EventTypeColumn::new("event_type", c))
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
        aliases: None,
        amount,
        quantity,
        event_id,
        products,
        categories,
        flags,
        shard: None,
    })
}

/// Applies the rows of a resolved batch in two passes. The first walks the
/// rows in arrival order: it validates each (rejecting it with a reason),
/// interns new customers (so indexes follow first appearance), drops
/// duplicate `event_id`s and translates tags. The second applies the valid
/// rows grouped by customer index (a radix sort, stable, so one customer's
/// rows keep their order): the state columns are walked front to back, and a
/// customer with several rows in the batch is loaded once.
pub fn apply_resolved(
    state: &mut State,
    clock: Option<i64>,
    r: &Resolved,
    touched: &mut Touched,
    scratch: &mut GroupScratch,
) -> (Rejected, BatchStats) {
    let (mut grouped, rejected, stats) = group_resolved(state, r, touched, std::mem::take(scratch));
    grouped.apply_through(state, clock, u32::MAX);
    *scratch = grouped.into_scratch();
    (rejected, stats)
}

/// The buffers one batch is grouped in. The engine keeps them from batch to
/// batch: a batch of a million rows needs about 100 MB of them, and fresh
/// allocations of that size come from the kernel as zeroed pages, one fault
/// per page, every batch.
#[derive(Default)]
pub struct GroupScratch {
    /// Per row: the customer index if the id was known before the batch.
    known: Vec<u32>,
    pending: Vec<Pending>,
    sorted: Vec<Pending>,
    keys: Vec<u64>,
    buf: Vec<u64>,
    arena: TagArena,
}

/// A copy starts with empty buffers: they hold nothing between batches.
impl Clone for GroupScratch {
    fn clone(&self) -> Self {
        GroupScratch::default()
    }
}

impl std::fmt::Debug for GroupScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupScratch")
            .field("rows", &self.pending.capacity())
            .finish()
    }
}

/// Rows ahead of the current one whose id slot is prefetched.
const ID_PREFETCH: usize = 16;

/// Looks up, for every row, the index of its customer as known before the
/// batch (`UNKNOWN` for a new or null id), in a loop of its own: the lookups
/// are independent cache misses, which overlap here (prefetched for integer
/// ids) instead of stalling the validation loop one by one.
fn look_up_ids(state: &State, ids: &IdColumn, out: &mut Vec<u32>) {
    out.clear();
    match ids {
        IdColumn::Int(a, _) => {
            let v = a.values();
            out.extend(v.iter().enumerate().map(|(i, &id)| {
                if let Some(&ahead) = v.get(i + ID_PREFETCH) {
                    state.ids.prefetch_int(ahead);
                }
                state.ids.lookup_int(id).unwrap_or(UNKNOWN)
            }));
        }
        IdColumn::Str(a) => out.extend((0..a.len()).map(|i| {
            if a.is_null(i) {
                UNKNOWN
            } else {
                state.ids.lookup_str(a.value(i)).unwrap_or(UNKNOWN)
            }
        })),
    }
}

/// `GroupScratch::known` for an id not interned before the batch.
const UNKNOWN: u32 = u32::MAX;

/// The first pass of `apply_resolved` alone: validates, interns and groups
/// the rows, applying none, so that the caller can apply them a range of
/// customers at a time (`Grouped::apply_through`) and evaluate each range
/// while its state is still in cache.
pub fn group_resolved(
    state: &mut State,
    r: &Resolved,
    touched: &mut Touched,
    mut scratch: GroupScratch,
) -> (Grouped, Rejected, BatchStats) {
    let Resolved {
        rows,
        ids,
        kind,
        ts,
        event_type,
        aliases,
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
    let mut known = std::mem::take(&mut scratch.known);
    look_up_ids(state, ids, &mut known);
    let mut arena = std::mem::take(&mut scratch.arena);
    arena.clear();
    let mut pending = std::mem::take(&mut scratch.pending);
    pending.clear();
    pending.reserve(*rows);
    // The customer index of row `i`: known before the batch, or interned now.
    let intern_row = |state: &mut State, i: usize, cid: CustomerId<'_>| -> u32 {
        match known[i] {
            UNKNOWN => intern(state, cid).0,
            c => state.aliases.resolve(c),
        }
    };
    let mut kinds = EventKinds::new(event_type.as_ref(), aliases.as_ref());
    for i in 0..*rows {
        let cid = match ids {
            IdColumn::Str(a) => {
                if a.is_null(i) {
                    if shard.is_none_or(|sh| sh.index == 0) {
                        kinds.get(i, state);
                        rejected.push((i, "customer_id is null".into()));
                    }
                    continue;
                }
                CustomerId::Str(a.value(i))
            }
            IdColumn::Int(a, orig) => {
                if orig.is_null(i) || a.is_null(i) {
                    if shard.is_none_or(|sh| sh.index == 0) {
                        kinds.get(i, state);
                        rejected.push((i, ids.unreadable(i)));
                    }
                    continue;
                }
                CustomerId::Int(a.value(i))
            }
        };
        if let Some(sh) = shard {
            if Shard::of(cid, sh.count) != sh.index {
                continue;
            }
        }
        let ev_kind = kinds.get(i, state);
        let t = match ts.get(i) {
            Ok(t) => t,
            Err(reason) => {
                rejected.push((i, reason));
                continue;
            }
        };
        let Some(ev_kind) = ev_kind else {
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
            let c = intern_row(state, i, cid);
            touched.add(c);
            stats.applied += 1;
            stats.max_ts = Some(stats.max_ts.map_or(t, |m| m.max(t)));
            continue;
        }
        let mut tag = NO_TAGS;
        if money {
            tags.clear();
            if let Some(col) = products {
                col.for_each(i, |p| state.keyed.tag_product(&mut tags, p));
            }
            if let Some(col) = categories {
                col.for_each(i, |c| state.keyed.tag_category(&mut tags, c));
            }
            if let Some(col) = flags {
                col.for_each(i, |f| state.keyed.tag_flag(&mut tags, f));
            }
            tag = arena.push(&tags);
        }
        let c = intern_row(state, i, cid);
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
        pending.push(Pending {
            customer: c,
            tag,
            ts: t,
            amount: amt,
            quantity: qty.unwrap_or(-1),
            kind: ev_kind,
        });
        touched.add(c);
        stats.applied += 1;
        stats.max_ts = Some(stats.max_ts.map_or(t, |m| m.max(t)));
    }
    stats.event_types = kinds.counts();
    let n = state.len();
    state.ensure(n);
    // The rows themselves in customer order (independent loads that overlap),
    // so the apply loop below reads them front to back.
    by_customer(&pending, n, &mut scratch.keys, &mut scratch.buf);
    let mut sorted = std::mem::take(&mut scratch.sorted);
    sorted.clear();
    sorted.extend(scratch.keys.iter().map(|&k| pending[k as u32 as usize]));
    let grouped = Grouped {
        sorted,
        arena,
        tags,
        next: 0,
        spare: GroupScratch {
            known,
            pending,
            ..scratch
        },
    };
    (grouped, rejected, stats)
}

/// A batch's valid rows in customer order, applied front to back.
pub struct Grouped {
    sorted: Vec<Pending>,
    arena: TagArena,
    tags: EventTags,
    /// The first row not applied yet.
    next: usize,
    /// The scratch buffers not in use while the rows are applied.
    spare: GroupScratch,
}

impl Grouped {
    /// The buffers back, for the next batch.
    pub fn into_scratch(self) -> GroupScratch {
        GroupScratch {
            sorted: self.sorted,
            arena: self.arena,
            ..self.spare
        }
    }

    /// Applies the rows not applied yet whose customer index is at most
    /// `last`. `clock` bounds window pruning.
    pub fn apply_through(&mut self, state: &mut State, clock: Option<i64>, last: u32) {
        let sorted = &self.sorted;
        while let Some(ev) = sorted.get(self.next).filter(|ev| ev.customer <= last) {
            let p = self.next;
            prefetch_row(state, clock, sorted, p + PREFETCH_DISTANCE, false);
            prefetch_row(state, clock, sorted, p + PREFETCH_DISTANCE / 2, true);
            self.arena.fill(ev.tag, &mut self.tags);
            let row = EventRow {
                ts: ev.ts,
                kind: ev.kind,
                amount: ev.amount,
                quantity: (ev.quantity >= 0).then_some(ev.quantity),
                tags: &self.tags,
            };
            state.apply(ev.customer, &row, clock);
            self.next += 1;
        }
    }
}

/// A validated row waiting to be applied.
#[derive(Clone, Copy)]
struct Pending {
    customer: u32,
    /// Index into the tag arena, or `NO_TAGS`.
    tag: u32,
    ts: i64,
    amount: i64,
    /// Items, or -1 when not given.
    quantity: i64,
    kind: EventKind,
}

const NO_TAGS: u32 = u32::MAX;

/// The translated tags of a batch's rows, in one buffer.
#[derive(Default)]
struct TagArena {
    ids: Vec<u32>,
    /// Per tagged row: where its products, categories, flags, all
    /// categories and all products end in `ids` (each list starts where the
    /// previous one ends; the first starts at the previous row's end).
    ends: Vec<[u32; 5]>,
}

impl TagArena {
    fn clear(&mut self) {
        self.ids.clear();
        self.ends.clear();
    }

    fn push(&mut self, t: &EventTags) -> u32 {
        if t.products.is_empty()
            && t.categories.is_empty()
            && t.flags.is_empty()
            && t.all_categories.is_empty()
            && t.all_products.is_empty()
        {
            return NO_TAGS;
        }
        let mut ends = [0u32; 5];
        for (k, list) in [
            &t.products,
            &t.categories,
            &t.flags,
            &t.all_categories,
            &t.all_products,
        ]
        .into_iter()
        .enumerate()
        {
            self.ids.extend_from_slice(list);
            ends[k] = self.ids.len() as u32;
        }
        self.ends.push(ends);
        (self.ends.len() - 1) as u32
    }

    fn fill(&self, tag: u32, t: &mut EventTags) {
        t.clear();
        if tag == NO_TAGS {
            return;
        }
        let ends = self.ends[tag as usize];
        let mut lo = if tag == 0 {
            0
        } else {
            self.ends[tag as usize - 1][4]
        } as usize;
        for (k, list) in [
            &mut t.products,
            &mut t.categories,
            &mut t.flags,
            &mut t.all_categories,
            &mut t.all_products,
        ]
        .into_iter()
        .enumerate()
        {
            let hi = ends[k] as usize;
            list.extend_from_slice(&self.ids[lo..hi]);
            lo = hi;
        }
    }
}

/// Positions of `pending` ordered by customer index, arrival order kept
/// within a customer, in the low 32 bits of `keys`: a least-significant-digit
/// radix sort over the bits that indexes below `customers` use (`buf` is its
/// second buffer).
fn by_customer(pending: &[Pending], customers: usize, keys: &mut Vec<u64>, buf: &mut Vec<u64>) {
    const DIGIT: u32 = 11;
    let bits = usize::BITS - customers.max(1).leading_zeros();
    keys.clear();
    keys.extend(
        pending
            .iter()
            .enumerate()
            .map(|(p, e)| (e.customer as u64) << 32 | p as u64),
    );
    if keys.len() > 1 && bits > 0 {
        buf.clear();
        buf.resize(keys.len(), 0);
        let mut shift = 32;
        while shift < 32 + bits {
            let mut count = [0usize; 1 << DIGIT];
            for &k in keys.iter() {
                count[((k >> shift) & ((1 << DIGIT) - 1)) as usize] += 1;
            }
            let mut sum = 0;
            for c in count.iter_mut() {
                let here = *c;
                *c = sum;
                sum += here;
            }
            for &k in keys.iter() {
                let d = ((k >> shift) & ((1 << DIGIT) - 1)) as usize;
                buf[count[d]] = k;
                count[d] += 1;
            }
            std::mem::swap(keys, buf);
            shift += DIGIT;
        }
    }
}

/// Rows between a prefetch and the use of what it fetched: enough to cover a
/// memory access (~100 ns) at the rate rows are applied.
const PREFETCH_DISTANCE: usize = 32;

#[inline]
fn prefetch_row(state: &State, clock: Option<i64>, sorted: &[Pending], at: usize, deep: bool) {
    if let Some(ev) = sorted.get(at) {
        state
            .keyed
            .prefetch(ev.customer as usize, ev.kind, ev.ts, clock, deep);
        if !deep && !matches!(ev.kind, EventKind::Signal(_)) {
            state.agg.prefetch(ev.customer as usize);
        }
    }
}

/// The customer's index, interned if new.
#[inline]
fn intern(state: &mut State, id: CustomerId<'_>) -> (u32, bool) {
    let (c, new) = match id {
        CustomerId::Str(s) => state.ids.intern_str(s),
        CustomerId::Int(v) => state.ids.intern_int(v),
    };
    (state.aliases.resolve(c), new)
}

/// Currency scale digits, kept on the state so decoders need no rules.
fn state_scale_digits(state: &State) -> u32 {
    state.scale_digits
}
