//! Customer ids interned to dense `u32` indexes. All per-customer columns are
//! indexed by these.

use compact_str::CompactString;
use rustc_hash::FxHashMap;

/// The kind of ids an engine holds; fixed by the first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Text ids.
    Str,
    /// Integer ids.
    Int,
}

/// A borrowed customer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerId<'a> {
    /// Text id.
    Str(&'a str),
    /// Integer id.
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
    int_index: FxHashMap<i64, u32>,
    int_ids: Vec<i64>,
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
        let mut new = false;
        let i = *self.int_index.entry(id).or_insert_with(|| {
            new = true;
            next
        });
        if new {
            self.int_ids.push(id);
        }
        (i, new)
    }

    /// Index of a known id.
    pub fn lookup(&self, id: CustomerId<'_>) -> Option<u32> {
        match id {
            CustomerId::Str(s) => self.str_index.get(s).copied(),
            CustomerId::Int(i) => self.int_index.get(&i).copied(),
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
            + self.int_index.capacity() * (8 + 4 + 1)
    }
}
