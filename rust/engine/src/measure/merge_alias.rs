//! Profile merges (`Engine::merge_customers`): rows of `(customer_id, into)`
//! say that two ids are one person. The rules for chains and repeats
//! (docs/measure.md § Profile merges):
//!
//! - merging an id into itself, or into an id the engine has never seen, is
//!   an error naming the row;
//! - `into` may itself have been merged: the row then means its survivor;
//! - merging an id that already lives in the same survivor changes nothing
//!   (replayed alias messages, and the cycle `a -> b, b -> a`, are no-ops);
//! - merging an id that was already merged into another survivor is an
//!   error (merge the survivors instead);
//! - an id the engine has not seen yet becomes an alias: its events go to
//!   the survivor from then on.
//!
//! The whole table is checked before anything changes.

use crate::error::{EngineError, Result};
use crate::state::{CustomerId, State};

/// One row of a merge, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Merge a known customer into another; both are survivors until now.
    Merge {
        /// Index of the customer absorbed.
        from: u32,
        /// Index of the survivor.
        into: u32,
    },
    /// An id never seen becomes an alias of a survivor.
    AliasNew {
        /// The new id.
        id: CustomerId<'a>,
        /// Index of the survivor its events will go to.
        into: u32,
    },
    /// Nothing to do: both ids already are one profile.
    Same,
}

/// Checks every row against the state and the rows before it; returns the
/// steps in row order, or the error of the first bad row (nothing changed).
pub fn plan<'a>(state: &State, rows: &[(CustomerId<'a>, CustomerId<'a>)]) -> Result<Vec<Step<'a>>> {
    // Survivors as the rows before this one leave them: planned merges on
    // top of the state's aliases, and ids planned to become aliases.
    let mut planned: rustc_hash::FxHashMap<u32, u32> = Default::default();
    let mut new_ids: Vec<(CustomerId<'a>, u32)> = Vec::new();
    let resolve = |planned: &rustc_hash::FxHashMap<u32, u32>, c: u32| {
        let c = state.aliases.resolve(c);
        planned.get(&c).copied().unwrap_or(c)
    };
    let mut steps = Vec::with_capacity(rows.len());
    for (i, &(from, into)) in rows.iter().enumerate() {
        let row = |m: String| EngineError::Invalid(format!("merge_customers row {i}: {m}"));
        if from == into {
            return Err(row(format!(
                "customer `{}` cannot be merged into itself",
                from.to_text()
            )));
        }
        let Some(target) = state.ids.lookup(into) else {
            return Err(row(format!(
                "unknown customer `{}`: merge into a customer the engine has seen",
                into.to_text()
            )));
        };
        let target = resolve(&planned, target);
        let step = match state.ids.lookup(from) {
            None => match new_ids.iter().find(|(id, _)| *id == from) {
                Some(&(_, t)) if resolve(&planned, t) == target => Step::Same,
                Some(&(_, t)) => return Err(already(i, from, state, resolve(&planned, t))),
                None => {
                    new_ids.push((from, target));
                    Step::AliasNew {
                        id: from,
                        into: target,
                    }
                }
            },
            Some(c) => {
                let survivor = resolve(&planned, c);
                if survivor == target {
                    Step::Same
                } else if survivor != c {
                    return Err(already(i, from, state, survivor));
                } else {
                    for t in planned.values_mut() {
                        if *t == c {
                            *t = target;
                        }
                    }
                    planned.insert(c, target);
                    Step::Merge {
                        from: c,
                        into: target,
                    }
                }
            }
        };
        steps.push(step);
    }
    Ok(steps)
}

fn already(row: usize, id: CustomerId<'_>, state: &State, survivor: u32) -> EngineError {
    EngineError::Invalid(format!(
        "merge_customers row {row}: `{}` was already merged into `{}`; merge `{}` instead",
        id.to_text(),
        state.ids.get(survivor).to_text(),
        state.ids.get(survivor).to_text(),
    ))
}

/// A customer id read from a JSON message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedId {
    /// Text id.
    Str(String),
    /// Integer id.
    Int(i64),
}

impl OwnedId {
    fn from_json(v: Option<&serde_json::Value>) -> Option<OwnedId> {
        match v? {
            serde_json::Value::String(s) if !s.is_empty() => Some(OwnedId::Str(s.clone())),
            serde_json::Value::Number(n) => n.as_i64().map(OwnedId::Int),
            _ => None,
        }
    }

    /// The id as the engine's kind of ids takes it (None: an integer engine
    /// and a text that is no integer).
    pub fn as_id(&self, ints: bool) -> Option<OwnedId> {
        match (self, ints) {
            (OwnedId::Str(s), true) => s.trim().parse().ok().map(OwnedId::Int),
            (OwnedId::Int(v), false) => Some(OwnedId::Str(v.to_string())),
            (id, _) => Some(id.clone()),
        }
    }

    /// Borrowed form.
    pub fn borrow(&self) -> CustomerId<'_> {
        match self {
            OwnedId::Str(s) => CustomerId::Str(s),
            OwnedId::Int(v) => CustomerId::Int(*v),
        }
    }
}

/// An `alias` message of the Segment/RudderStack spec (`previousId` ->
/// `userId`), or None for any other message. Cheap for other messages: one
/// substring search before any parsing.
pub fn alias_message(msg: &[u8]) -> Option<std::result::Result<(OwnedId, OwnedId), String>> {
    if !msg.windows(7).any(|w| w == b"\"alias\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(msg).ok()?;
    if v.get("type").and_then(|t| t.as_str()) != Some("alias") {
        return None;
    }
    let prev = OwnedId::from_json(v.get("previousId"));
    let user = OwnedId::from_json(v.get("userId"));
    Some(match (prev, user) {
        (Some(p), Some(u)) => Ok((p, u)),
        (None, _) => Err("alias message has no `previousId`".into()),
        (_, None) => Err("alias message has no `userId`".into()),
    })
}

/// The alias messages of a batch, by position (each read or the reason it
/// cannot be), and the positions of the other messages.
#[allow(clippy::type_complexity)]
pub fn split_aliases(
    messages: &[&[u8]],
) -> (
    Vec<(usize, std::result::Result<(OwnedId, OwnedId), String>)>,
    Vec<usize>,
) {
    let mut aliases = Vec::new();
    let mut others = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        match alias_message(m) {
            Some(a) => aliases.push((i, a)),
            None => others.push(i),
        }
    }
    (aliases, others)
}
