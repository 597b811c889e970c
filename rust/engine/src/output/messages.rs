//! Kafka messages for a changes table: one JSON object per change, keyed by
//! customer id, grouped by the partition Kafka's default partitioner would
//! choose for the key.
//!
//! The service used to turn every change into a Python dict, an ISO string and
//! a `json.dumps` call; here a whole batch is written into one buffer per
//! partition, with the end offset of each key and value, so Python only hands
//! slices to the producer.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, SecondsFormat};

/// The messages of one partition: keys and values back to back, with the end
/// offset of each, in the order of the changes table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PartitionMessages {
    /// The partition these messages belong to.
    pub partition: u32,
    /// Every key's bytes, concatenated.
    pub keys: Vec<u8>,
    /// `keys[key_ends[i-1]..key_ends[i]]` is message i's key.
    pub key_ends: Vec<u32>,
    /// Every value's bytes, concatenated.
    pub values: Vec<u8>,
    /// `values[value_ends[i-1]..value_ends[i]]` is message i's value.
    pub value_ends: Vec<u32>,
}

impl PartitionMessages {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), which its default
/// partitioner applies to the key bytes.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for a non-empty key.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// The partition of each row's key (the text of `column`'s cell), for a
/// producer that splits a table of events by partition, as keyed sends would.
pub fn key_partitions(column: &dyn Array, partitions: u32) -> Result<Vec<u32>, String> {
    if partitions == 0 {
        return Err("a topic has at least one partition".into());
    }
    if !matches!(
        column.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Int32 | DataType::Int64
    ) {
        return Err(format!(
            "keys must be strings or integers, not {}",
            column.data_type()
        ));
    }
    let mut key = Vec::with_capacity(32);
    Ok((0..column.len())
        .map(|row| {
            key.clear();
            write_text(column, row, &mut key);
            partition_for_key(&key, partitions)
        })
        .collect())
}

/// Encodes every row of `batch` as a JSON object (its columns in schema order;
/// timestamps as ISO 8601 UTC text with milliseconds), keyed by the text of
/// column `key_column`, into one `PartitionMessages` per partition that has
/// any (ascending by partition).
pub fn encode_messages(
    batch: &RecordBatch,
    key_column: &str,
    partitions: u32,
) -> Result<Vec<PartitionMessages>, String> {
    if partitions == 0 {
        return Err("the changes topic must have at least one partition".into());
    }
    let schema = batch.schema();
    let key_index = schema
        .index_of(key_column)
        .map_err(|_| format!("the changes table has no `{key_column}` column"))?;
    let names: Vec<Vec<u8>> = schema
        .fields()
        .iter()
        .map(|f| serde_json::to_vec(f.name()).expect("a string serializes"))
        .collect();
    for field in schema.fields() {
        if !supported(field.data_type()) {
            return Err(format!(
                "column `{}` has type {}, which the message encoder does not write",
                field.name(),
                field.data_type()
            ));
        }
    }
    let mut out: Vec<PartitionMessages> = (0..partitions)
        .map(|partition| PartitionMessages {
            partition,
            ..Default::default()
        })
        .collect();
    let mut key = Vec::with_capacity(32);
    for row in 0..batch.num_rows() {
        key.clear();
        write_text(batch.column(key_index).as_ref(), row, &mut key);
        let target = &mut out[partition_for_key(&key, partitions) as usize];
        target.keys.extend_from_slice(&key);
        target.key_ends.push(offset(target.keys.len())?);
        let value = &mut target.values;
        value.push(b'{');
        for (i, column) in batch.columns().iter().enumerate() {
            if i > 0 {
                value.push(b',');
            }
            value.extend_from_slice(&names[i]);
            value.push(b':');
            write_json(column.as_ref(), row, value);
        }
        value.push(b'}');
        let end = offset(value.len())?;
        target.value_ends.push(end);
    }
    out.retain(|p| !p.is_empty());
    Ok(out)
}

fn offset(len: usize) -> Result<u32, String> {
    u32::try_from(len).map_err(|_| "one partition's changes exceed 4 GiB of JSON".to_string())
}

fn supported(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Boolean
            | DataType::Int32
            | DataType::Int64
            | DataType::Float64
            | DataType::Null
            | DataType::Timestamp(TimeUnit::Millisecond, _)
    )
}

/// The key text of a cell: strings as they are, integers in decimal.
fn write_text(column: &dyn Array, row: usize, out: &mut Vec<u8>) {
    match column.data_type() {
        DataType::Utf8 => out.extend_from_slice(column.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => {
            out.extend_from_slice(column.as_string::<i64>().value(row).as_bytes())
        }
        DataType::Int64 => out.extend_from_slice(
            column
                .as_primitive::<Int64Type>()
                .value(row)
                .to_string()
                .as_bytes(),
        ),
        DataType::Int32 => out.extend_from_slice(
            column
                .as_primitive::<Int32Type>()
                .value(row)
                .to_string()
                .as_bytes(),
        ),
        _ => write_json(column, row, out),
    }
}

fn write_json(column: &dyn Array, row: usize, out: &mut Vec<u8>) {
    if column.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    match column.data_type() {
        DataType::Utf8 => {
            serde_json::to_writer(&mut *out, column.as_string::<i32>().value(row))
                .expect("writing to a Vec cannot fail");
        }
        DataType::LargeUtf8 => {
            serde_json::to_writer(&mut *out, column.as_string::<i64>().value(row))
                .expect("writing to a Vec cannot fail");
        }
        DataType::Boolean => {
            let v = column.as_boolean().value(row);
            out.extend_from_slice(if v { b"true" } else { b"false" });
        }
        DataType::Int32 => {
            let v = column.as_primitive::<Int32Type>().value(row);
            out.extend_from_slice(v.to_string().as_bytes());
        }
        DataType::Int64 => {
            let v = column.as_primitive::<Int64Type>().value(row);
            out.extend_from_slice(v.to_string().as_bytes());
        }
        DataType::Float64 => {
            let v = column.as_primitive::<Float64Type>().value(row);
            // JSON has no NaN or infinity.
            match serde_json::Number::from_f64(v) {
                Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let ms = column.as_primitive::<TimestampMillisecondType>().value(row);
            match DateTime::from_timestamp_millis(ms) {
                Some(t) => {
                    out.push(b'"');
                    out.extend_from_slice(
                        t.to_rfc3339_opts(SecondsFormat::Millis, true).as_bytes(),
                    );
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        _ => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's own UtilsTest (murmur2 of these strings' UTF-8 bytes).
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (text, expected) in cases {
            assert_eq!(murmur2(text.as_bytes()) as i32, expected, "{text}");
        }
    }
}
