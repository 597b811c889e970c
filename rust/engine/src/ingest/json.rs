//! Decoding JSON messages straight into the engine: the flat event form, the
//! Segment/RudderStack e-commerce spec (`track` and `identify`) and flat
//! trait upserts. Each message is applied whole or rejected with a reason.

use serde_json::{Map, Value as J};

use super::arrow_traits::trait_from_json;
use super::columns::parse_decimal;
use super::event_types::money_kind;
use super::{event_id_hash, BatchStats, Touched};
use crate::engine::Rejected;
use crate::rules::expr::Value;
use crate::rules::ruleset::{EventTypesSpec, RuleSetSpec, DEFAULT_MAX_FUTURE_MS};
use crate::state::{int_id_from_text, EventKind, EventRow, EventTags, IdKind, State};
use crate::time::{format_ts, parse_timestamp_ms, MAX_TS, MIN_TS};

/// Largest message accepted.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A decoded message.
enum Decoded {
    Event(OwnedEvent),
    Traits {
        id: JsonId,
        values: Vec<(usize, Value)>,
    },
}

#[derive(Clone)]
enum JsonId {
    Str(String),
    Int(i64),
}

struct OwnedEvent {
    id: JsonId,
    ts: i64,
    kind: Kind,
    amount: i64,
    quantity: Option<i64>,
    products: Vec<String>,
    categories: Vec<String>,
    flags: Vec<String>,
    event_id: Option<String>,
}

enum Kind {
    Purchase,
    Refund,
    Signal(String),
}

/// The rule set's input settings that messages are read with.
#[derive(Debug, Clone, Copy)]
pub struct JsonRules<'a> {
    /// Extra purchase and refund names.
    pub aliases: Option<&'a EventTypesSpec>,
    /// Later event times are rejected (wall clock plus `max_future`).
    pub latest: i64,
}

impl<'a> JsonRules<'a> {
    /// The settings of `spec`, with `wall_ms` as the wall clock.
    pub fn of(spec: &'a RuleSetSpec, wall_ms: i64) -> Self {
        let ahead = spec.max_future_ms().unwrap_or(DEFAULT_MAX_FUTURE_MS);
        JsonRules {
            aliases: spec.event_types.as_ref(),
            latest: wall_ms.saturating_add(ahead),
        }
    }
}

/// Applies messages; returns rejected message indexes with reasons.
pub fn apply_json_messages(
    state: &mut State,
    clock: Option<i64>,
    messages: &[&[u8]],
    rules: JsonRules<'_>,
    touched: &mut Touched,
    traits_touched: &mut Touched,
) -> (Rejected, BatchStats) {
    let mut rejected = Vec::new();
    let mut stats = BatchStats::default();
    let mut tags = EventTags::default();
    for (i, raw) in messages.iter().enumerate() {
        let decoded = match decode(state, raw, &rules) {
            Ok(d) => d,
            Err(reason) => {
                rejected.push((i, reason));
                continue;
            }
        };
        match decoded {
            Decoded::Traits { id, values } => {
                let Some(c) = intern(state, &id) else {
                    rejected.push((i, id_mismatch(state)));
                    continue;
                };
                for (t, v) in values {
                    state.traits.values[t][c as usize] = v;
                }
                traits_touched.add(c);
                stats.applied += 1;
            }
            Decoded::Event(ev) => {
                let kind = match &ev.kind {
                    Kind::Purchase => EventKind::Purchase,
                    Kind::Refund => EventKind::Refund,
                    Kind::Signal(name) => EventKind::Signal(state.keyed.signal_index(name)),
                };
                let known = state.ids.len();
                let Some(c) = intern(state, &ev.id) else {
                    rejected.push((i, id_mismatch(state)));
                    continue;
                };
                stats.applied += 1;
                stats.max_ts = Some(stats.max_ts.map_or(ev.ts, |m| m.max(ev.ts)));
                if matches!(kind, EventKind::Signal(None)) {
                    // No rule reads this signal; a new customer still exists and is evaluated.
                    if c as usize >= known {
                        touched.add(c);
                    }
                    continue;
                }
                if let Some(eid) = &ev.event_id {
                    if !state.seen_events.insert((c, event_id_hash(eid.as_bytes()))) {
                        stats.applied -= 1;
                        stats.duplicates += 1;
                        continue;
                    }
                }
                tags.clear();
                for p in &ev.products {
                    state.keyed.tag_product(&mut tags, p);
                }
                for cat in &ev.categories {
                    state.keyed.tag_category(&mut tags, cat);
                }
                for f in &ev.flags {
                    state.keyed.tag_flag(&mut tags, f);
                }
                let row = EventRow {
                    ts: ev.ts,
                    kind,
                    amount: ev.amount,
                    quantity: ev.quantity,
                    tags: &tags,
                };
                state.apply(c, &row, clock);
                touched.add(c);
            }
        }
    }
    (rejected, stats)
}

fn id_mismatch(state: &State) -> String {
    match state.ids.kind() {
        Some(IdKind::Int) => {
            "customer id is not an integer, but this engine holds integer ids".into()
        }
        _ => "customer id does not match the engine's id type".into(),
    }
}

fn intern(state: &mut State, id: &JsonId) -> Option<u32> {
    let kind = state.ids.kind();
    let (c, new) = match (kind, id) {
        (Some(IdKind::Str) | None, JsonId::Str(s)) => {
            let _ = state.ids.set_kind(IdKind::Str);
            state.ids.intern_str(s)
        }
        (Some(IdKind::Str), JsonId::Int(v)) => state.ids.intern_str(&v.to_string()),
        (Some(IdKind::Int) | None, JsonId::Int(v)) => {
            let _ = state.ids.set_kind(IdKind::Int);
            state.ids.intern_int(*v)
        }
        (Some(IdKind::Int), JsonId::Str(s)) => state.ids.intern_int(int_id_from_text(s)?),
    };
    if new {
        state.ensure(c as usize + 1);
    }
    Some(c)
}

fn decode(state: &State, raw: &[u8], rules: &JsonRules<'_>) -> Result<Decoded, String> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "message of {} bytes is larger than the {} byte limit",
            raw.len(),
            MAX_MESSAGE_BYTES
        ));
    }
    let v: J = serde_json::from_slice(raw).map_err(|e| format!("malformed JSON: {e}"))?;
    let J::Object(obj) = v else {
        return Err("message is not a JSON object".into());
    };
    match obj.get("type").and_then(J::as_str) {
        Some("track") => decode_track(&obj, state.scale_digits, rules),
        Some("identify") | Some("traits") => {
            let id = customer(&obj)?;
            let traits = match obj.get("traits") {
                Some(J::Object(t)) => t,
                None => return Err("identify message has no `traits` object".into()),
                Some(_) => return Err("`traits` is not an object".into()),
            };
            let mut values = Vec::new();
            for (t, (name, ty)) in state.traits.decl.iter().enumerate() {
                if let Some(v) = traits.get(name) {
                    values.push((
                        t,
                        trait_from_json(*ty, v).map_err(|e| format!("trait `{name}`: {e}"))?,
                    ));
                }
            }
            Ok(Decoded::Traits { id, values })
        }
        Some(other) => Err(format!(
            "unknown message type `{other}` (expected track, identify or traits; flat events have no `type`)"
        )),
        None => match obj.get("type") {
            Some(J::Null) | None => decode_flat(&obj, state.scale_digits, rules),
            Some(other) => Err(format!("message `type` must be a string, got {other}")),
        },
    }
}

fn customer(obj: &Map<String, J>) -> Result<JsonId, String> {
    for key in ["customer_id", "userId", "user_id", "anonymousId"] {
        match obj.get(key) {
            Some(J::String(s)) if !s.is_empty() => return Ok(JsonId::Str(s.clone())),
            Some(J::Number(n)) => {
                return n
                    .as_i64()
                    .map(JsonId::Int)
                    .ok_or_else(|| format!("{key} {n} is not an integer"));
            }
            Some(J::Null) | None => continue,
            Some(J::String(_)) => return Err(format!("{key} is empty")),
            Some(other) => return Err(format!("{key} must be a string or integer, got {other}")),
        }
    }
    Err("missing customer id (customer_id, userId or anonymousId)".into())
}

fn timestamp(v: Option<&J>, key: &str, rules: &JsonRules<'_>) -> Result<i64, String> {
    let ms = match v {
        Some(J::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("{key} {n} is not integer epoch ms"))?,
        Some(J::String(s)) => parse_timestamp_ms(s).map_err(|e| format!("{key} {e}"))?,
        None | Some(J::Null) => return Err(format!("missing {key}")),
        Some(other) => return Err(format!("{key} must be a string or epoch ms, got {other}")),
    };
    if !(MIN_TS..=MAX_TS).contains(&ms) {
        return Err(format!("{key} is outside the years 1900..9999"));
    }
    if ms > rules.latest {
        return Err(format!(
            "{key} {} is later than {} (the wall clock plus max_future)",
            format_ts(ms),
            format_ts(rules.latest)
        ));
    }
    Ok(ms)
}

fn money(v: Option<&J>, key: &str, scale: u32) -> Result<Option<i64>, String> {
    let m = match v {
        None | Some(J::Null) => return Ok(None),
        Some(J::Number(n)) => {
            if let Some(i) = n.as_i64() {
                i.checked_mul(10i64.pow(scale))
                    .ok_or_else(|| format!("{key} is too large"))?
            } else {
                parse_decimal(&n.to_string(), scale)
                    .ok_or_else(|| format!("{key} {n} is not a usable amount"))?
            }
        }
        Some(J::String(s)) => {
            parse_decimal(s, scale).ok_or_else(|| format!("{key} `{s}` is not a number"))?
        }
        Some(other) => return Err(format!("{key} must be a number, got {other}")),
    };
    if m < 0 {
        return Err(format!(
            "{key} is negative; send refunds as refund events with a positive amount"
        ));
    }
    Ok(Some(m))
}

fn strings(v: Option<&J>, key: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(J::Null) => Ok(Vec::new()),
        Some(J::String(s)) => Ok(vec![s.clone()]),
        Some(J::Array(items)) => items
            .iter()
            .filter(|x| !x.is_null())
            .map(|x| match x {
                J::String(s) => Ok(s.clone()),
                J::Number(n) => Ok(n.to_string()),
                other => Err(format!("{key} holds {other}, expected strings")),
            })
            .collect(),
        Some(other) => Err(format!("{key} must be a list of strings, got {other}")),
    }
}

fn quantity(v: Option<&J>) -> Result<Option<i64>, String> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Number(n)) => match n.as_i64() {
            Some(q) if q >= 0 => Ok(Some(q)),
            _ => Err(format!("quantity {n} is not a non-negative integer")),
        },
        Some(other) => Err(format!("quantity must be an integer, got {other}")),
    }
}

fn opt_id(v: Option<&J>) -> Option<String> {
    match v {
        Some(J::String(s)) => Some(s.clone()),
        Some(J::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn decode_flat(obj: &Map<String, J>, scale: u32, rules: &JsonRules<'_>) -> Result<Decoded, String> {
    let id = customer(obj)?;
    let ts = timestamp(obj.get("ts").or_else(|| obj.get("timestamp")), "ts", rules)?;
    let kind = match obj.get("event_type") {
        None | Some(J::Null) => Kind::Purchase,
        Some(J::String(s)) if !s.is_empty() => match money_kind(s, rules.aliases) {
            Some(super::MoneyEvent::Purchase) => Kind::Purchase,
            Some(super::MoneyEvent::Refund) => Kind::Refund,
            None => Kind::Signal(s.clone()),
        },
        Some(other) => {
            return Err(format!(
                "event_type must be a non-empty string, got {other}"
            ))
        }
    };
    let amount = match kind {
        Kind::Signal(_) => 0,
        _ => money(obj.get("amount"), "amount", scale)?
            .ok_or("amount is required for purchases and refunds")?,
    };
    Ok(Decoded::Event(OwnedEvent {
        id,
        ts,
        kind,
        amount,
        quantity: quantity(obj.get("quantity"))?,
        products: strings(obj.get("product_ids"), "product_ids")?,
        categories: strings(obj.get("categories"), "categories")?,
        flags: strings(obj.get("flags"), "flags")?,
        event_id: opt_id(obj.get("event_id")),
    }))
}

/// `Order Completed` -> `order_completed`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.trim().chars() {
        if ch.is_alphanumeric() {
            out.extend(ch.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

fn decode_track(
    obj: &Map<String, J>,
    scale: u32,
    rules: &JsonRules<'_>,
) -> Result<Decoded, String> {
    let id = customer(obj)?;
    let name = match obj.get("event") {
        Some(J::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("track message has no `event` name".into()),
    };
    let ts = timestamp(
        obj.get("timestamp")
            .or_else(|| obj.get("originalTimestamp"))
            .or_else(|| obj.get("sentAt")),
        "timestamp",
        rules,
    )?;
    let empty = Map::new();
    let props = match obj.get("properties") {
        Some(J::Object(p)) => p,
        None | Some(J::Null) => &empty,
        Some(_) => return Err("`properties` is not an object".into()),
    };
    let event_id = opt_id(obj.get("messageId"));
    let kind = match money_kind(&name, rules.aliases) {
        Some(super::MoneyEvent::Purchase) => Kind::Purchase,
        Some(super::MoneyEvent::Refund) => Kind::Refund,
        None => Kind::Signal(snake(&name)),
    };
    if let Kind::Signal(_) = kind {
        return Ok(Decoded::Event(OwnedEvent {
            id,
            ts,
            kind,
            amount: 0,
            quantity: None,
            products: Vec::new(),
            categories: Vec::new(),
            flags: Vec::new(),
            event_id,
        }));
    }
    let mut products = Vec::new();
    let mut categories = Vec::new();
    let mut qty_total: Option<i64> = None;
    let mut line_total: i64 = 0;
    match props.get("products") {
        None | Some(J::Null) => {}
        Some(J::Array(items)) => {
            for item in items {
                let J::Object(p) = item else {
                    return Err("products[] holds a non-object".into());
                };
                if let Some(pid) = opt_id(p.get("product_id").or_else(|| p.get("sku"))) {
                    products.push(pid);
                }
                if let Some(J::String(c)) = p.get("category") {
                    categories.push(c.clone());
                }
                let q = quantity(p.get("quantity"))?;
                qty_total = Some(qty_total.unwrap_or(0) + q.unwrap_or(1));
                if let Some(price) = money(p.get("price"), "products[].price", scale)? {
                    line_total = line_total.saturating_add(price.saturating_mul(q.unwrap_or(1)));
                }
            }
        }
        Some(_) => return Err("`products` is not a list".into()),
    }
    let total = money(
        props
            .get("total")
            .or_else(|| props.get("revenue"))
            .or_else(|| props.get("value")),
        "total",
        scale,
    )?;
    let amount = match total {
        Some(t) => t,
        None if !products.is_empty() || line_total > 0 => line_total,
        None => return Err(format!("`{name}` has no total, revenue or product prices")),
    };
    let mut flags = Vec::new();
    if props.get("coupon").is_some_and(|c| !c.is_null()) {
        flags.push("coupon".to_string());
    }
    if matches!(props.get("gift"), Some(J::Bool(true))) {
        flags.push("gift".to_string());
    }
    flags.extend(strings(props.get("flags"), "flags")?);
    Ok(Decoded::Event(OwnedEvent {
        id,
        ts,
        kind,
        amount,
        quantity: qty_total,
        products,
        categories,
        flags,
        event_id,
    }))
}
