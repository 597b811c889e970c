//! Checkpoints: the whole state as one Arrow IPC file (one row per
//! customer) plus metadata: format version, rules and their fingerprint,
//! clock and source offsets, and a checksum of each (`integrity`). Any
//! Arrow tool can read it.

mod integrity;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema};
use serde_json::json;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::membership::Memberships;
use crate::output::snapshot::ids_array;
use crate::rules::expr::Value;
use crate::rules::ruleset::RuleSetSpec;
use crate::state::conversion_columns::COUNTERS_KEY;
use crate::state::{Aggregates, IdKind, SeenEvents};

/// Version written by this build; files with a larger one are refused.
/// Version 3 keeps a checksum of each payload in the footer, checked before
/// decoding; version 2 files carry one checksum of the decoded content;
/// version 1 files load without one.
pub const FORMAT_VERSION: u32 = 3;

/// Metadata key of the one checksum of format 2.
const CHECKSUM: &str = "segstream.checksum";

/// Feeds what is written into a hash instead of storing it.
struct HashWriter(xxhash_rust::xxh3::Xxh3);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Format 2's checksum, verified when such a file is loaded: xxh3 of the
/// decoded columns, as the Arrow IPC stream format lays them out, and every
/// metadata entry but the checksum itself, in key order.
fn legacy_checksum(batch: &RecordBatch, meta: &HashMap<String, String>) -> Result<String> {
    let bare = Arc::new(Schema::new(batch.schema().fields().clone()));
    let columns = RecordBatch::try_new(bare.clone(), batch.columns().to_vec())
        .map_err(|e| err(e.to_string()))?;
    let mut w =
        arrow_ipc::writer::StreamWriter::try_new(HashWriter(xxhash_rust::xxh3::Xxh3::new()), &bare)
            .map_err(|e| err(e.to_string()))?;
    w.write(&columns).map_err(|e| err(e.to_string()))?;
    w.finish().map_err(|e| err(e.to_string()))?;
    let mut h = w.into_inner().map_err(|e| err(e.to_string()))?.0;
    let mut keys: Vec<&String> = meta.keys().filter(|k| *k != CHECKSUM).collect();
    keys.sort();
    for k in keys {
        for part in [k.as_bytes(), meta[k].as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    Ok(format!("{:032x}", h.digest128()))
}

fn err(msg: impl Into<String>) -> EngineError {
    EngineError::Checkpoint(msg.into())
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) | Value::Money(i) | Value::Ts(i) | Value::Interval(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(&**s),
    }
}

/// Builds the checkpoint table.
pub fn checkpoint_batch(engine: &Engine) -> Result<RecordBatch> {
    let n = engine.num_customers();
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut push = |name: String, arr: ArrayRef| {
        fields.push(Field::new(name, arr.data_type().clone(), true));
        cols.push(arr);
    };
    push("customer_id".into(), ids_array(engine));
    for (name, col) in engine.state.agg.to_columns(n) {
        push(name.into(), col);
    }
    for (name, col) in engine.state.keyed.to_columns(n) {
        push(name, col);
    }
    for (name, col) in engine.state.conversions.to_columns(n) {
        push(name, col);
    }
    for (name, col) in engine.caps.to_columns(n) {
        push(name, col);
    }
    for (name, col) in engine.state.aliases.to_columns(n) {
        push(name, col);
    }
    if !engine.state.traits.decl.is_empty() {
        let mut b = StringBuilder::new();
        for c in 0..n {
            let mut m = serde_json::Map::new();
            for (t, (name, _)) in engine.state.traits.decl.iter().enumerate() {
                let v = &engine.state.traits.values[t][c];
                if *v != Value::Null {
                    m.insert(name.clone(), value_json(v));
                }
            }
            b.append_value(serde_json::Value::Object(m).to_string());
        }
        push("traits".into(), Arc::new(b.finish()));
    }
    for (name, col) in engine.members.to_columns(&engine.rules, n) {
        push(name, col);
    }
    let due: Vec<i64> = (0..n as u32).map(|c| engine.timers.due(c)).collect();
    push("next_due".into(), Arc::new(Int64Array::from(due)));
    push("event_ids".into(), engine.state.seen_events.to_column(n));
    let mut meta = HashMap::new();
    meta.insert(
        "segstream.format_version".to_string(),
        FORMAT_VERSION.to_string(),
    );
    meta.insert("segstream.rules".to_string(), engine.rules.spec.to_json());
    meta.insert(
        "segstream.fingerprint".to_string(),
        engine.rules.fingerprint.clone(),
    );
    meta.insert(
        "segstream.clock".to_string(),
        engine.clock.map(|c| c.to_string()).unwrap_or_default(),
    );
    meta.insert("segstream.offsets".to_string(), engine.offsets.clone());
    if let Some(counters) = engine.state.conversions.counters_json() {
        meta.insert(COUNTERS_KEY.to_string(), counters);
    }
    meta.insert(
        "segstream.column_map".to_string(),
        serde_json::to_string(&engine.column_map).unwrap_or_default(),
    );
    meta.insert(
        "segstream.id_kind".to_string(),
        match engine.state.ids.kind() {
            Some(IdKind::Int) => "int",
            Some(IdKind::Str) => "str",
            None => "",
        }
        .to_string(),
    );
    let schema = Arc::new(Schema::new_with_metadata(fields, meta));
    RecordBatch::try_new(schema, cols).map_err(|e| err(e.to_string()))
}

/// Writes a checkpoint atomically (temp file, then rename).
pub fn save(engine: &Engine, path: &str) -> Result<()> {
    let batch = checkpoint_batch(engine)?;
    let tmp = format!("{path}.tmp-{}", std::process::id());
    let io = |e: std::io::Error| EngineError::Io {
        path: path.to_string(),
        source: e,
    };
    let file = File::create(&tmp).map_err(io)?;
    let out = integrity::HashingWriter::new(BufWriter::new(file));
    let mut w = FileWriter::try_new(out, &batch.schema()).map_err(|e| err(e.to_string()))?;
    let header = w.get_mut().finish();
    // The writer emits the record batch block (header and body) during
    // `write`, so what is hashed meanwhile is the block the footer lists.
    w.get_mut().start();
    w.write(&batch).map_err(|e| err(e.to_string()))?;
    let sums = integrity::Checksums {
        header,
        record_batches: vec![w.get_mut().finish()],
        metadata: integrity::metadata_sums(batch.schema().metadata()),
    };
    let sums = serde_json::to_string(&sums).map_err(|e| err(e.to_string()))?;
    w.write_metadata(integrity::CHECKSUMS, sums);
    w.finish().map_err(|e| err(e.to_string()))?;
    let mut inner = w.into_inner().map_err(|e| err(e.to_string()))?.into_inner();
    inner.flush().map_err(io)?;
    inner
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Reads a checkpoint. With `expect_fingerprint`, refuses files made with other rules.
pub fn load(path: &str, expect_fingerprint: Option<&str>) -> Result<Engine> {
    let file = File::open(path).map_err(|e| EngineError::Io {
        path: path.to_string(),
        source: e,
    })?;
    // A damaged file must be an error, never a crash of the host process.
    let result = quietly(|| load_from(file, expect_fingerprint));
    match result {
        Ok(r) => r.map_err(|e| match e {
            EngineError::Checkpoint(m) => err(format!("{path}: {m}")),
            other => other,
        }),
        Err(_) => Err(err(format!(
            "{path}: the file is damaged (reading it failed)"
        ))),
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err` without the panic message on
/// stderr. The Arrow IPC reader panics on some damaged files (a buffer that
/// claims more bytes than the file holds) instead of returning an error;
/// for a checkpoint that is an expected outcome, reported as a
/// `CheckpointError`, not a crash report. The hook stays silent only on this
/// thread and only inside `f`; any other panic is reported as before.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out
}

/// Checks that every block the file's footer lists lies inside the file,
/// and returns the record batch blocks (offset, length). The IPC reader
/// allocates a block's body length before reading it, so a damaged length
/// would otherwise ask for petabytes and abort the process (an allocation
/// failure is not a panic that `quietly` could catch).
fn check_blocks(file: &mut File) -> Result<Vec<integrity::Block>> {
    use std::io::{Read, Seek, SeekFrom};
    let damaged = |what: &str| err(format!("the file is damaged ({what})"));
    let len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    // The file ends with the footer, its length (i32, little-endian) and `ARROW1`.
    if len < 10 {
        return Err(damaged("too short"));
    }
    let mut tail = [0u8; 10];
    file.seek(SeekFrom::End(-10))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| err(e.to_string()))?;
    let footer_len = i32::from_le_bytes(tail[..4].try_into().expect("4 bytes"));
    let footer_len = u64::try_from(footer_len).map_err(|_| damaged("negative footer length"))?;
    if footer_len > len - 10 {
        return Err(damaged("footer longer than the file"));
    }
    let mut footer = vec![0u8; footer_len as usize];
    file.seek(SeekFrom::Start(len - 10 - footer_len))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(|e| err(e.to_string()))?;
    let footer = arrow_ipc::root_as_footer(&footer).map_err(|_| damaged("unreadable footer"))?;
    let records = footer.recordBatches().map_or(0, |v| v.len());
    let blocks = footer
        .recordBatches()
        .into_iter()
        .chain(footer.dictionaries())
        .flat_map(|v| v.iter());
    let mut record_blocks = Vec::with_capacity(records);
    for (i, b) in blocks.enumerate() {
        let span = u64::try_from(b.offset())
            .ok()
            .zip(u64::try_from(b.metaDataLength()).ok())
            .zip(u64::try_from(b.bodyLength()).ok())
            .and_then(|((o, m), body)| Some((o, m.checked_add(body)?)));
        match span {
            Some((o, n)) if o.checked_add(n).is_some_and(|e| e <= len) => {
                if i < records {
                    record_blocks.push((o, n));
                }
            }
            _ => return Err(damaged("a block lies outside the file")),
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| err(e.to_string()))?;
    Ok(record_blocks)
}

fn load_from(mut file: File, expect_fingerprint: Option<&str>) -> Result<Engine> {
    let blocks = check_blocks(&mut file)?;
    let mut verify_handle = file.try_clone().map_err(|e| err(e.to_string()))?;
    let reader = FileReader::try_new(file, None)
        .map_err(|e| err(format!("not a segstream checkpoint (Arrow IPC file): {e}")))?;
    let schema = reader.schema();
    let meta = schema.metadata().clone();
    // Before any column is decoded: what follows reads only what was written.
    let summed = match reader.custom_metadata().get(integrity::CHECKSUMS) {
        Some(stored) => {
            integrity::verify(&mut verify_handle, stored, &meta, &blocks)?;
            true
        }
        None => false,
    };
    let get = |k: &str| {
        meta.get(k).cloned().ok_or_else(|| {
            err(format!(
                "missing metadata `{k}`; not a segstream checkpoint"
            ))
        })
    };
    let version: u32 = get("segstream.format_version")?
        .parse()
        .map_err(|_| err("bad format version"))?;
    if version > FORMAT_VERSION {
        return Err(err(format!(
            "written in format {version} by a newer segstream; this build reads format {FORMAT_VERSION} or older"
        )));
    }
    if version >= 3 && !summed {
        return Err(err(format!(
            "the file is damaged (format {version} without `{}`)",
            integrity::CHECKSUMS
        )));
    }
    let fingerprint = get("segstream.fingerprint")?;
    if let Some(want) = expect_fingerprint {
        if want != fingerprint {
            return Err(err(format!(
                "made with other rules (fingerprint {fingerprint}, these rules {want}); load it without rules, or use replace_rules after loading"
            )));
        }
    }
    let spec = RuleSetSpec::from_json(&get("segstream.rules")?)
        .map_err(|e| err(format!("stored rules: {e}")))?;
    let mut engine = Engine::new(spec).map_err(|e| err(format!("stored rules: {e}")))?;
    if engine.rules.fingerprint != fingerprint {
        return Err(err("stored rules do not match the stored fingerprint"));
    }
    engine.clock = match get("segstream.clock")?.as_str() {
        "" => None,
        s => Some(s.parse().map_err(|_| err("bad clock"))?),
    };
    engine.offsets = get("segstream.offsets")?;
    if serde_json::from_str::<serde_json::Value>(&engine.offsets).is_err() {
        return Err(err("bad source offsets"));
    }
    let map: BTreeMap<String, String> =
        serde_json::from_str(&get("segstream.column_map")?).map_err(|_| err("bad column map"))?;
    engine.column_map = map;
    let kind = match get("segstream.id_kind")?.as_str() {
        "int" => Some(IdKind::Int),
        "str" => Some(IdKind::Str),
        "" => None,
        other => return Err(err(format!("unknown id kind `{other}`"))),
    };
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| err(e.to_string()))?);
    }
    let batch = arrow_select_concat(&schema, &batches)?;
    if version == 2 {
        let stored = get(CHECKSUM)?;
        if legacy_checksum(&batch, &meta)? != stored {
            return Err(err(
                "checksum mismatch: the file is damaged (its content is not what was written)",
            ));
        }
    }
    restore(&mut engine, kind, &batch)?;
    let read = |name: &str| column(&batch, name).cloned();
    let counters = meta.get(COUNTERS_KEY).map(String::as_str);
    engine
        .state
        .conversions
        .restore(batch.num_rows(), read, counters)?;
    engine.caps.restore(batch.num_rows(), read)?;
    let aliases = batch.column_by_name(crate::state::aliases::ALIAS_COLUMN);
    engine.state.aliases.restore(batch.num_rows(), aliases)?;
    Ok(engine)
}

fn arrow_select_concat(schema: &Arc<Schema>, batches: &[RecordBatch]) -> Result<RecordBatch> {
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema.clone())),
        1 => Ok(batches[0].clone()),
        _ => Err(err("expected one record batch")),
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| err(format!("missing column `{name}`")))
}

fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<i64>> {
    let c = column(batch, name)?;
    if c.data_type() != &DataType::Int64 || c.null_count() > 0 {
        return Err(err(format!("column `{name}` must be non-null int64")));
    }
    Ok(c.as_primitive::<Int64Type>().values().to_vec())
}

fn bools(batch: &RecordBatch, name: &str) -> Result<Vec<bool>> {
    let c = column(batch, name)?;
    if c.data_type() != &DataType::Boolean || c.null_count() > 0 {
        return Err(err(format!("`{name}` must be non-null boolean")));
    }
    Ok(c.as_boolean().values().iter().collect())
}

fn restore(engine: &mut Engine, kind: Option<IdKind>, batch: &RecordBatch) -> Result<()> {
    let n = batch.num_rows();
    let ids = column(batch, "customer_id")?;
    if n > 0 {
        let kind = kind.ok_or_else(|| err("customers present but no id kind"))?;
        let _ = engine.state.ids.set_kind(kind);
        if ids.null_count() > 0 {
            return Err(err("null customer id"));
        }
        match (kind, ids.data_type()) {
            (IdKind::Str, DataType::Utf8) => {
                for s in ids.as_string::<i32>().iter().flatten() {
                    if !engine.state.ids.intern_str(s).1 {
                        return Err(err(format!("customer `{s}` appears twice")));
                    }
                }
            }
            (IdKind::Int, DataType::Int64) => {
                for v in ids.as_primitive::<Int64Type>().values().iter() {
                    if !engine.state.ids.intern_int(*v).1 {
                        return Err(err(format!("customer {v} appears twice")));
                    }
                }
            }
            _ => return Err(err("customer_id column has the wrong type")),
        }
    } else if let Some(k) = kind {
        let _ = engine.state.ids.set_kind(k);
    }
    engine.state.ensure(n);
    engine.members.grow(n);
    engine.timers.grow(n);
    engine.state.agg = Aggregates::from_columns(n, |name| ints(batch, name))?;
    let read = |name: &str| column(batch, name).cloned();
    engine.state.keyed.restore_columns(n, read)?;
    if !engine.state.traits.decl.is_empty() {
        let c = column(batch, "traits")?;
        if c.data_type() != &DataType::Utf8 {
            return Err(err("`traits` must be utf8 JSON"));
        }
        let decl = engine.state.traits.decl.clone();
        for (row, text) in c.as_string::<i32>().iter().enumerate() {
            let obj: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text.unwrap_or("{}"))
                    .map_err(|_| err(format!("traits row {row} is not JSON")))?;
            for (t, (name, ty)) in decl.iter().enumerate() {
                if let Some(v) = obj.get(name) {
                    let val = match (ty, v) {
                        (
                            crate::rules::ruleset::TraitType::Timestamp,
                            serde_json::Value::Number(x),
                        ) => Value::Ts(x.as_i64().ok_or_else(|| err("bad timestamp trait"))?),
                        _ => crate::ingest::arrow_traits::trait_from_json(*ty, v)
                            .map_err(|e| err(format!("trait `{name}`: {e}")))?,
                    };
                    engine.state.traits.values[t][row] = val;
                }
            }
        }
    }
    engine.members = Memberships::from_columns(
        &engine.rules,
        n,
        |name| bools(batch, name),
        |name| ints(batch, name),
    )?;
    for (c, due) in ints(batch, "next_due")?.into_iter().enumerate() {
        engine.timers.set(c as u32, due);
    }
    engine.state.seen_events = SeenEvents::from_column(column(batch, "event_ids")?, n)?;
    Ok(())
}
