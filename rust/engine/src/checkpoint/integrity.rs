//! Checkpoint integrity: an xxh3 checksum of every payload (the file's
//! header with its copy of the schema, each record batch exactly as
//! written, each metadata entry), kept in the footer's
//! custom metadata and verified on load before any column is decoded, so a
//! damaged file is refused with the part that failed named, never loaded
//! with other numbers in it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::err;
use crate::error::{EngineError, Result};

/// Footer metadata key of the checksums (format 3 on).
pub const CHECKSUMS: &str = "segstream.checksums";

/// What the footer stores: hex xxh3-128 of the header, per record batch,
/// in file order, and per schema metadata entry, by key.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Checksums {
    /// The bytes before the first record batch: the magic and the schema
    /// copy that the reader skips (it reads the footer's), so that no flip
    /// there goes unnoticed either.
    pub header: String,
    /// Each record batch block (header and body) as it lies in the file.
    pub record_batches: Vec<String>,
    /// Each schema metadata entry (key and value).
    pub metadata: BTreeMap<String, String>,
}

fn hex(hash: &Xxh3) -> String {
    format!("{:032x}", hash.digest128())
}

/// The checksum of one metadata entry: key and value, each length-prefixed
/// so that moving bytes between them changes it.
fn entry_sum(key: &str, value: &str) -> String {
    let mut h = Xxh3::new();
    for part in [key, value] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h)
}

/// Checksums of every schema metadata entry, by key.
pub fn metadata_sums(meta: &HashMap<String, String>) -> BTreeMap<String, String> {
    meta.iter()
        .map(|(k, v)| (k.clone(), entry_sum(k, v)))
        .collect()
}

/// A writer that also hashes the bytes written while a hash is running, so
/// a record batch is hashed exactly as the IPC writer lays it out, without
/// a copy.
pub struct HashingWriter<W> {
    inner: W,
    hash: Option<Xxh3>,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, hashing from the first byte on.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Some(Xxh3::new()),
        }
    }

    /// Starts hashing what is written from now on.
    pub fn start(&mut self) {
        self.hash = Some(Xxh3::new());
    }

    /// Stops hashing and returns the hex checksum of what was written since `start`.
    pub fn finish(&mut self) -> String {
        self.hash.take().map(|h| hex(&h)).unwrap_or_default()
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hash {
            h.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A region of the file: offset and length in bytes.
pub type Block = (u64, u64);

/// Verifies the stored checksums against the schema metadata and the
/// record batch blocks (which `check_blocks` found inside the file). The
/// error names the entry or block that does not match.
pub fn verify(
    file: &mut File,
    stored: &str,
    meta: &HashMap<String, String>,
    blocks: &[Block],
) -> Result<()> {
    let damaged = |what: String| {
        err(format!(
            "{what} does not match its checksum: the file is damaged (its content is not what was written)"
        ))
    };
    let sums: Checksums = serde_json::from_str(stored)
        .map_err(|_| err(format!("the file is damaged (unreadable `{CHECKSUMS}`)")))?;
    let actual = metadata_sums(meta);
    for (key, want) in &sums.metadata {
        match actual.get(key) {
            Some(got) if got == want => {}
            Some(_) => return Err(damaged(format!("metadata `{key}`"))),
            None => {
                return Err(err(format!(
                    "the file is damaged (metadata `{key}` is missing)"
                )))
            }
        }
    }
    if let Some(key) = actual.keys().find(|k| !sums.metadata.contains_key(*k)) {
        return Err(err(format!(
            "the file is damaged (metadata `{key}` has no checksum)"
        )));
    }
    let header_len = blocks.first().map_or(0, |b| b.0);
    if block_sum(file, 0, header_len)? != sums.header {
        return Err(damaged(format!(
            "the file's header (magic and schema, bytes 0..{header_len})"
        )));
    }
    if sums.record_batches.len() != blocks.len() {
        return Err(err(format!(
            "the file is damaged ({} record batches, {} checksums)",
            blocks.len(),
            sums.record_batches.len()
        )));
    }
    for (i, (&(offset, len), want)) in blocks.iter().zip(&sums.record_batches).enumerate() {
        if &block_sum(file, offset, len)? != want {
            return Err(damaged(format!(
                "the customer state (record batch {i}, bytes {offset}..{})",
                offset + len
            )));
        }
    }
    Ok(())
}

/// The checksum of `len` bytes of the file from `offset`, read in pieces.
fn block_sum(file: &mut File, offset: u64, len: u64) -> Result<String> {
    let io = |e: std::io::Error| EngineError::Checkpoint(format!("reading the file: {e}"));
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..n]).map_err(io)?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex(&h))
}
