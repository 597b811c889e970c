//! What each `event_type` value means (purchase, refund, a signal a rule
//! reads, or one nobody reads), decided once per distinct value, and how
//! many rows carried it: the table every run reports, so that a value read
//! the wrong way (`order` counted as browsing) shows instead of hiding.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use super::columns::text_column;
use super::{money_event, MoneyEvent};
use crate::error::{EngineError, Result};
use crate::rules::ruleset::EventTypesSpec;
use crate::state::{EventKind, State};

/// How an `event_type` value was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadAs {
    /// An order.
    Purchase,
    /// Money back.
    Refund,
    /// A signal that a rule reads.
    Signal,
    /// A signal that no rule reads: it only makes the customer known.
    Ignored,
    /// Empty text: the rows were rejected.
    Rejected,
}

impl ReadAs {
    /// The name used in summaries: purchase, refund, signal, ignored, rejected.
    pub fn name(self) -> &'static str {
        match self {
            ReadAs::Purchase => "purchase",
            ReadAs::Refund => "refund",
            ReadAs::Signal => "signal",
            ReadAs::Ignored => "ignored",
            ReadAs::Rejected => "rejected",
        }
    }
}

/// Rows seen with one `event_type` value (`None`: null or no column, read
/// as purchases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeCount {
    /// The value as given.
    pub name: Option<String>,
    /// Rows that carried it.
    pub rows: usize,
    /// How they were read.
    pub read_as: ReadAs,
}

/// Adds `more` into `total`, by value.
pub fn merge_counts(total: &mut Vec<EventTypeCount>, more: Vec<EventTypeCount>) {
    for m in more {
        match total
            .iter_mut()
            .find(|t| t.name == m.name && t.read_as == m.read_as)
        {
            Some(t) => t.rows += m.rows,
            None => total.push(m),
        }
    }
}

/// Whether a value names a purchase or a refund: the built-in names
/// (`money_event`) or the rule set's `event_types`, ignoring ASCII case.
pub fn money_kind(text: &str, aliases: Option<&EventTypesSpec>) -> Option<MoneyEvent> {
    money_event(text).or_else(|| {
        let a = aliases?;
        let is = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case(text));
        if is(&a.purchase) {
            Some(MoneyEvent::Purchase)
        } else if is(&a.refund) {
            Some(MoneyEvent::Refund)
        } else {
            None
        }
    })
}

/// What a value means under the rule set's extra names and signals.
pub fn classify(text: &str, aliases: Option<&EventTypesSpec>, state: &State) -> Option<EventKind> {
    if text.is_empty() {
        return None;
    }
    Some(match money_kind(text, aliases) {
        Some(MoneyEvent::Purchase) => EventKind::Purchase,
        Some(MoneyEvent::Refund) => EventKind::Refund,
        None => EventKind::Signal(
            state
                .keyed
                .signal_names()
                .find(|(n, _)| *n == text)
                .map(|(_, i)| i),
        ),
    })
}

fn read_as(kind: Option<EventKind>) -> ReadAs {
    match kind {
        None => ReadAs::Rejected,
        Some(EventKind::Purchase) => ReadAs::Purchase,
        Some(EventKind::Refund) => ReadAs::Refund,
        Some(EventKind::Signal(Some(_))) => ReadAs::Signal,
        Some(EventKind::Signal(None)) => ReadAs::Ignored,
    }
}

/// The `event_type` column as the reader found it: a dictionary is read per
/// entry, never per row.
pub enum EventTypeColumn {
    /// Dictionary keys per row and the dictionary's values.
    Dict {
        /// Per row, the index of its value in `values`.
        keys: Vec<usize>,
        /// The original column, for which rows are null.
        valid: ArrayRef,
        /// The dictionary's distinct texts.
        values: StringArray,
    },
    /// Plain text.
    Text(StringArray),
}

impl EventTypeColumn {
    /// Reads the column: text, or a dictionary of text.
    pub fn new(name: &str, col: &ArrayRef) -> Result<Self> {
        if let DataType::Dictionary(_, value) = col.data_type() {
            if matches!(
                **value,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                let dict = col.as_any_dictionary();
                let values = text_column(name, dict.values())?;
                return Ok(EventTypeColumn::Dict {
                    keys: dict.normalized_keys(),
                    valid: col.clone(),
                    values,
                });
            }
            return Err(EngineError::schema(
                name,
                format!("expected text, found {}", col.data_type()),
            ));
        }
        Ok(EventTypeColumn::Text(text_column(name, col)?))
    }
}

/// One batch's distinct values: each row maps to an entry, whose meaning
/// was decided once and whose count grows with the rows.
pub struct EventKinds<'a> {
    column: Option<&'a EventTypeColumn>,
    /// Per entry: the value (None for null / no column), its meaning, rows.
    entries: Vec<(Option<&'a str>, Option<EventKind>, usize)>,
    /// Plain text: value -> entry.
    index: FxHashMap<&'a str, u32>,
    /// Dictionary: entry per dictionary key (u32::MAX until seen).
    by_key: Vec<u32>,
    aliases: Option<&'a EventTypesSpec>,
}

const NULL_ENTRY: u32 = 0;

impl<'a> EventKinds<'a> {
    /// A table for the batch's column (or its absence).
    pub fn new(column: Option<&'a EventTypeColumn>, aliases: Option<&'a EventTypesSpec>) -> Self {
        let by_key = match column {
            Some(EventTypeColumn::Dict { values, .. }) => vec![u32::MAX; values.len()],
            _ => Vec::new(),
        };
        EventKinds {
            column,
            // Entry 0: null or absent, read as a purchase (DESIGN: the default).
            entries: vec![(None, Some(EventKind::Purchase), 0)],
            index: FxHashMap::default(),
            by_key,
            aliases,
        }
    }

    /// What row `i` is (`None`: empty text, which is rejected); counts the row.
    #[inline]
    pub fn get(&mut self, i: usize, state: &State) -> Option<EventKind> {
        let entry = match self.column {
            None => NULL_ENTRY,
            Some(EventTypeColumn::Text(a)) => {
                if a.is_null(i) {
                    NULL_ENTRY
                } else {
                    let text = a.value(i);
                    match self.index.get(text) {
                        Some(&e) => e,
                        None => self.add(text, state),
                    }
                }
            }
            Some(EventTypeColumn::Dict {
                keys,
                valid,
                values,
            }) => {
                if valid.is_null(i) {
                    NULL_ENTRY
                } else {
                    let key = keys[i];
                    match self.by_key[key] {
                        u32::MAX => {
                            let e = self.add(values.value(key), state);
                            self.by_key[key] = e;
                            e
                        }
                        e => e,
                    }
                }
            }
        };
        let slot = &mut self.entries[entry as usize];
        slot.2 += 1;
        slot.1
    }

    fn add(&mut self, text: &'a str, state: &State) -> u32 {
        // Two dictionary entries may hold the same text: one entry per value.
        if let Some(&e) = self.index.get(text) {
            return e;
        }
        let kind = classify(text, self.aliases, state);
        self.entries.push((Some(text), kind, 0));
        let e = (self.entries.len() - 1) as u32;
        self.index.insert(text, e);
        e
    }

    /// The values seen, with their rows and meaning, in first-seen order.
    pub fn counts(&self) -> Vec<EventTypeCount> {
        self.entries
            .iter()
            .filter(|(_, _, rows)| *rows > 0)
            .map(|(name, kind, rows)| EventTypeCount {
                name: name.map(str::to_owned),
                rows: *rows,
                read_as: read_as(*kind),
            })
            .collect()
    }
}
