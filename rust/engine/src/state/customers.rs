//! Customer ids interned to dense `u32` indexes. All per-customer columns are
//! indexed by these.

use compact_str::CompactString;
use rustc_hash::FxHashMap;

/// The kind of ids an engine holds; fixed by the first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Any text column (utf8, large_utf8, dictionary).
    Str,
    /// Any integer column, kept as `i64`; a value beyond it is a rejected row.
    Int,
}

/// The one rule every decoder follows for an id of the other kind than the
/// engine holds: an integer id is its decimal text (`42` is `"42"`), and a
/// text id is an integer only when it is exactly that text (`"42"`, `"-7"`;
/// not `"042"`, `"+42"` or `" 42"`). So an id converts the same way in
/// Arrow, JSON and trait batches, and two different ids never become one
/// customer. `None`: the text names no integer customer.
pub fn int_id_from_text(text: &str) -> Option<i64> {
    let v: i64 = text.parse().ok()?;
    // Canonical only: "042" and "+42" parse to 42 but are other ids.
    (text.len() == decimal_len(v)).then_some(v)
}

/// Characters in `v` written in decimal: `int_id_from_text`'s canonical test
/// without formatting the number (a parse that accepted a sign or leading
/// zeros is longer than this).
fn decimal_len(v: i64) -> usize {
    let sign = usize::from(v < 0);
    let digits = v
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |d| d as usize + 1);
    sign + digits
}

/// A borrowed customer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerId<'a> {
    /// Borrowed from the input column or the interner.
    Str(&'a str),
    /// As given (see `int_id_from_text` for text naming an integer).
    Int(i64),
}

impl CustomerId<'_> {
    /// Bytes that identify the customer in hashes (holdout, change ids).
    pub fn write_key(&self, out: &mut Vec<u8>) {
        match self {
            CustomerId::Str(s) => out.extend_from_slice(s.as_bytes()),
            CustomerId::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        }
    }

    /// Text rendering.
    pub fn to_text(&self) -> String {
        match self {
            CustomerId::Str(s) => s.to_string(),
            CustomerId::Int(i) => i.to_string(),
        }
    }
}

/// Interner from id to dense index.
#[derive(Debug, Clone, Default)]
pub struct CustomerIds {
    kind: Option<IdKind>,
    /// Keys of up to 24 bytes sit inside the table's slot, so a lookup
    /// touches one cache line instead of following a pointer to the text.
    str_index: FxHashMap<CompactString, u32>,
    str_ids: Vec<Box<str>>,
    int_index: IntIndex,
    int_ids: Vec<i64>,
}

/// Integer ids to indexes. Small non-negative ids (the usual case: a
/// database key) are looked up directly in a table indexed by the id, one
/// memory access and no hashing; the others go to a hash map. The table
/// grows only while it stays within a few slots per customer, so sparse ids
/// cannot make it large.
#[derive(Debug, Clone, Default)]
struct IntIndex {
    /// `direct[id]` is the index of `id`, or `ABSENT`.
    direct: Vec<u32>,
    other: FxHashMap<i64, u32>,
    len: usize,
}

const ABSENT: u32 = u32::MAX;
/// Table slots allowed per known customer (plus a floor for small engines).
const SLOTS_PER_CUSTOMER: usize = 8;
const MIN_TABLE: usize = 1 << 16;

impl IntIndex {
    #[inline]
    fn get(&self, id: i64) -> Option<u32> {
        if let Some(&c) = usize::try_from(id).ok().and_then(|i| self.direct.get(i)) {
            return (c != ABSENT).then_some(c);
        }
        self.other.get(&id).copied()
    }

    /// The index of `id`, or `next` after recording it.
    #[inline]
    fn get_or_insert(&mut self, id: i64, next: u32) -> (u32, bool) {
        if let Some(c) = self.get(id) {
            return (c, false);
        }
        self.len += 1;
        match usize::try_from(id) {
            Ok(i) if i < self.direct.len() => self.direct[i] = next,
            Ok(i) if self.can_cover(i) => {
                self.widen(i + 1);
                self.direct[i] = next;
            }
            _ => {
                self.other.insert(id, next);
            }
        }
        (next, true)
    }

    fn can_cover(&self, i: usize) -> bool {
        let want = (i + 1).next_power_of_two();
        want <= MIN_TABLE.max(SLOTS_PER_CUSTOMER * (self.len + 1))
    }

    /// Grows the table to cover ids below `n`, moving in the ids of the map it now covers.
    fn widen(&mut self, n: usize) {
        let size = n.next_power_of_two().max(1024);
        self.direct.resize(size, ABSENT);
        let moved: Vec<i64> = self
            .other
            .keys()
            .copied()
            .filter(|&id| usize::try_from(id).is_ok_and(|i| i < size))
            .collect();
        for id in moved {
            if let Some(c) = self.other.remove(&id) {
                self.direct[id as usize] = c;
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.direct.capacity() * 4 + self.other.capacity() * (8 + 4 + 1)
    }
}

impl CustomerIds {
    /// The id kind, once known.
    pub fn kind(&self) -> Option<IdKind> {
        self.kind
    }

    /// Fixes the id kind (first batch) or checks it.
    pub fn set_kind(&mut self, kind: IdKind) -> Result<(), IdKind> {
        match self.kind {
            None => {
                self.kind = Some(kind);
                Ok(())
            }
            Some(k) if k == kind => Ok(()),
            Some(k) => Err(k),
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.str_ids.len() + self.int_ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of a text id, adding it if new. The bool says whether it was new.
    #[inline]
    pub fn intern_str(&mut self, id: &str) -> (u32, bool) {
        if let Some(&i) = self.str_index.get(id) {
            return (i, false);
        }
        let i = self.str_ids.len() as u32;
        self.str_ids.push(id.into());
        self.str_index.insert(CompactString::new(id), i);
        (i, true)
    }

    /// Index of an integer id, adding it if new.
    #[inline]
    pub fn intern_int(&mut self, id: i64) -> (u32, bool) {
        let next = self.int_ids.len() as u32;
        let (i, new) = self.int_index.get_or_insert(id, next);
        if new {
            self.int_ids.push(id);
        }
        (i, new)
    }

    /// Starts loading the index slot of an integer id (see `lookup_int`).
    #[inline(always)]
    pub fn prefetch_int(&self, id: i64) {
        if let Some(slot) = usize::try_from(id)
            .ok()
            .and_then(|i| self.int_index.direct.get(i))
        {
            crate::state::prefetch::prefetch_read(slot);
        }
    }

    /// The index of an integer id, if it was interned.
    #[inline(always)]
    pub fn lookup_int(&self, id: i64) -> Option<u32> {
        self.int_index.get(id)
    }

    /// The index of a text id, if it was interned.
    #[inline(always)]
    pub fn lookup_str(&self, id: &str) -> Option<u32> {
        self.str_index.get(id).copied()
    }

    /// Index of a known id.
    pub fn lookup(&self, id: CustomerId<'_>) -> Option<u32> {
        match id {
            CustomerId::Str(s) => self.str_index.get(s).copied(),
            CustomerId::Int(i) => self.int_index.get(i),
        }
    }

    /// The id at an index.
    pub fn get(&self, c: u32) -> CustomerId<'_> {
        match self.kind {
            Some(IdKind::Int) => CustomerId::Int(self.int_ids[c as usize]),
            _ => CustomerId::Str(&self.str_ids[c as usize]),
        }
    }

    /// All text ids in index order.
    pub fn str_ids(&self) -> &[Box<str>] {
        &self.str_ids
    }

    /// All integer ids in index order.
    pub fn int_ids(&self) -> &[i64] {
        &self.int_ids
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let strs: usize = self.str_ids.iter().map(|s| s.len()).sum();
        // Each text id is stored twice (vector + map key, inline up to 24 bytes).
        strs + self
            .str_index
            .keys()
            .filter(|k| k.is_heap_allocated())
            .map(|k| k.len())
            .sum::<usize>()
            + self.str_ids.capacity() * 16
            + self.str_index.capacity() * (24 + 4 + 1)
            + self.int_ids.capacity() * 8
            + self.int_index.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_integer_id_round_trips_through_its_text(v in any::<i64>()) {
            prop_assert_eq!(int_id_from_text(&v.to_string()), Some(v));
        }

        #[test]
        fn a_text_names_an_integer_only_as_its_exact_decimal(text in "[ +-]?0*[0-9]{1,20} ?") {
            match int_id_from_text(&text) {
                Some(v) => prop_assert_eq!(v.to_string(), text),
                None => prop_assert!(text.parse::<i64>().map_or(true, |v| v.to_string() != text)),
            }
        }
    }

    #[test]
    fn padded_signed_and_spaced_texts_are_other_ids() {
        for text in [
            "042",
            "+42",
            " 42",
            "42 ",
            "-0",
            "",
            "4_2",
            "9223372036854775808",
        ] {
            assert_eq!(int_id_from_text(text), None, "{text:?}");
        }
        assert_eq!(int_id_from_text("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(int_id_from_text("0"), Some(0));
    }
}
