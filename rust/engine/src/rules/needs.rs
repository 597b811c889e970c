//! What state the compiled rules need: keyed accumulators (filtered counts,
//! spend, first/last times, windows) and optional sets. The engine keeps
//! exactly these and nothing else.

use serde::{Deserialize, Serialize};

/// Which events feed an accumulator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Source {
    /// Purchases (and, for spend, refunds) whose tags match every given filter.
    Purchase {
        /// `product =>`
        product: Option<String>,
        /// `category =>`
        category: Option<String>,
        /// `flag =>`
        flag: Option<String>,
    },
    /// A named signal (`page_view`, …).
    Signal(String),
}

/// Which part of time an accumulator covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Window {
    /// All history.
    All,
    /// `ts >= start` (fixed).
    Since(i64),
    /// `start <= ts < end` (fixed).
    Between(i64, i64),
}

/// What an accumulator measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Measure {
    /// Matching purchase or signal events.
    Count,
    /// Net money (purchases minus refunds).
    Spend,
    /// Earliest matching time.
    First,
    /// Latest matching time.
    Last,
}

/// A scalar, mergeable per-customer accumulator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Accumulator {
    /// Events feeding it.
    pub source: Source,
    /// Fixed time range.
    pub window: Window,
    /// What it measures.
    pub measure: Measure,
}

/// A sliding-window history: `(ts, signed amount)` of matching events, kept
/// for `lookback` behind the clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct History {
    /// Events feeding it.
    pub source: Source,
    /// Longest `within` any rule asks of this source.
    pub lookback: i64,
}

/// Everything the rules need kept per customer beyond the base aggregates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Needs {
    /// Scalar accumulators.
    pub accumulators: Vec<Accumulator>,
    /// Sliding windows.
    pub histories: Vec<History>,
    /// Full set of categories ever bought (for `distinct_categories`).
    pub category_set: bool,
    /// Full set of products ever bought (for `distinct_products`).
    pub product_set: bool,
    /// Months with a purchase (for `purchased_in_month`).
    pub months: bool,
}

impl Needs {
    /// Index of an accumulator, adding it if new.
    pub fn accumulator(&mut self, acc: Accumulator) -> usize {
        if let Some(i) = self.accumulators.iter().position(|a| *a == acc) {
            return i;
        }
        self.accumulators.push(acc);
        self.accumulators.len() - 1
    }

    /// Index of the history for `source`, widening its lookback if needed.
    pub fn history(&mut self, source: Source, lookback: i64) -> usize {
        if let Some(i) = self.histories.iter().position(|h| h.source == source) {
            self.histories[i].lookback = self.histories[i].lookback.max(lookback);
            return i;
        }
        self.histories.push(History { source, lookback });
        self.histories.len() - 1
    }

    /// What `other` needs that `self` did not keep, in words; empty if nothing.
    pub fn missing_from(&self, other: &Needs) -> Vec<String> {
        let mut out = Vec::new();
        for a in &other.accumulators {
            if !self.accumulators.contains(a) {
                out.push(format!(
                    "{} of {} over {}",
                    measure_word(a.measure),
                    source_word(&a.source),
                    window_word(a.window)
                ));
            }
        }
        for h in &other.histories {
            let kept = self.histories.iter().find(|k| k.source == h.source);
            match kept {
                Some(k) if k.lookback >= h.lookback => {}
                Some(k) => out.push(format!(
                    "{} for {} days (kept: {} days)",
                    source_word(&h.source),
                    h.lookback / 86_400_000,
                    k.lookback / 86_400_000
                )),
                None => out.push(format!(
                    "a {}-day history of {}",
                    h.lookback / 86_400_000,
                    source_word(&h.source)
                )),
            }
        }
        if other.category_set && !self.category_set {
            out.push("the set of categories bought".into());
        }
        if other.product_set && !self.product_set {
            out.push("the set of products bought".into());
        }
        if other.months && !self.months {
            out.push("the months with a purchase".into());
        }
        out
    }
}

fn measure_word(m: Measure) -> &'static str {
    match m {
        Measure::Count => "counts",
        Measure::Spend => "spend",
        Measure::First => "first time",
        Measure::Last => "last time",
    }
}

/// Human description of a source.
pub fn source_word(s: &Source) -> String {
    match s {
        Source::Signal(n) => format!("signal `{n}`"),
        Source::Purchase {
            product,
            category,
            flag,
        } => {
            let mut parts = Vec::new();
            if let Some(p) = product {
                parts.push(format!("product `{p}`"));
            }
            if let Some(c) = category {
                parts.push(format!("category `{c}`"));
            }
            if let Some(f) = flag {
                parts.push(format!("flag `{f}`"));
            }
            if parts.is_empty() {
                "purchases".into()
            } else {
                format!("purchases with {}", parts.join(" and "))
            }
        }
    }
}

fn window_word(w: Window) -> String {
    match w {
        Window::All => "all time".into(),
        Window::Since(s) => format!("since {}", crate::time::format_ts(s)),
        Window::Between(a, b) => format!(
            "{}..{}",
            crate::time::format_ts(a),
            crate::time::format_ts(b)
        ),
    }
}
