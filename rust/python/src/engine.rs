//! `segstream._segstream.Engine`: a thin handle on the Rust engine. It only
//! converts arguments and results; all logic lives in `segstream-engine`.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::RecordBatch;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyType};
use pyo3_arrow::input::AnyRecordBatch;
use segstream_engine::ingest::{Shard, EVENT_COLUMNS};
use segstream_engine::output::{
    changes_batch, ids_for, membership_columns, profile_json, snapshot_batch, stats_json,
};
use segstream_engine::state::{int_id_from_text, CustomerId, IdKind};
use segstream_engine::{
    checkpoint, Change, Engine, EngineError, Holdout, IngestOutcome, RuleSetSpec,
};

use crate::convert::{array, json_to_py, rejected_table, table};
use crate::errors::{internal, InvalidInputError, NotFoundError, Result};

/// Runs engine work without the GIL, turning a panic into an `InternalError`.
/// Every call into the engine that can take time or could panic goes through
/// here (or `enter`), so no method releases the GIL or catches panics its own way.
fn guarded<T: Send>(py: Python<'_>, what: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|payload| internal(what, payload.as_ref()))
}

/// `guarded` for engine calls that can fail: a panic and the engine's error
/// both come out as the one `Error`, which `?` turns into its Python class.
fn enter<T: Send>(
    py: Python<'_>,
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, EngineError> + Send,
) -> Result<T> {
    Ok(guarded(py, what, f)??)
}

fn read_batches(py: Python<'_>, data: AnyRecordBatch) -> Result<Vec<RecordBatch>> {
    let reader = data.into_reader()?;
    Ok(py
        .detach(|| reader.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| PyTypeError::new_err(format!("could not read the Arrow input: {e}")))?)
}

/// Runs `apply` on each batch and adds up the outcomes; rejected rows are
/// numbered across the batches, as the caller passed them.
fn over_batches(
    batches: &[RecordBatch],
    mut apply: impl FnMut(&RecordBatch) -> std::result::Result<IngestOutcome, EngineError>,
) -> std::result::Result<IngestOutcome, EngineError> {
    let mut total = IngestOutcome::default();
    let mut offset = 0usize;
    for b in batches {
        let out = apply(b)?;
        total.changes.extend(out.changes);
        total
            .rejected
            .extend(out.rejected.into_iter().map(|(r, m)| (r + offset, m)));
        total.applied += out.applied;
        total.duplicates += out.duplicates;
        total.max_ts = total.max_ts.max(out.max_ts);
        segstream_engine::ingest::event_types::merge_counts(
            &mut total.event_types,
            out.event_types,
        );
        offset += b.num_rows();
    }
    Ok(total)
}

/// The segmentation engine (low-level handle; use `segstream.Engine`).
#[pyclass(module = "segstream._segstream", name = "Engine")]
pub struct PyEngine {
    inner: Engine,
}

impl PyEngine {
    fn changes<'py>(&self, py: Python<'py>, changes: &[Change]) -> Result<Bound<'py, PyAny>> {
        table(py, changes_batch(&self.inner, changes, &[]))
    }

    /// Evaluates what deferred ingests left pending, before memberships are read.
    fn settle(&mut self, py: Python<'_>) -> Result<()> {
        let engine = &mut self.inner;
        if !engine.has_deferred() {
            return Ok(());
        }
        guarded(py, "evaluating deferred customers", || {
            engine.settle_deferred()
        })
    }

    /// The outcome as a `segstream.types.IngestOutcome` (a named tuple).
    fn outcome<'py>(&self, py: Python<'py>, out: IngestOutcome) -> Result<Bound<'py, PyAny>> {
        static INGEST_OUTCOME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        let changes = self.changes(py, &out.changes)?;
        let rejected = rejected_table(py, &out.rejected)?;
        let event_types: Vec<(Option<String>, usize, &str)> = out
            .event_types
            .into_iter()
            .map(|e| (e.name, e.rows, e.read_as.name()))
            .collect();
        Ok(INGEST_OUTCOME
            .import(py, "segstream.types", "IngestOutcome")?
            .call1((
                changes,
                rejected,
                out.applied,
                out.duplicates,
                event_types,
                out.max_ts,
            ))?)
    }
}

fn spec_from_json(rules_json: &str) -> Result<RuleSetSpec> {
    Ok(RuleSetSpec::from_json(rules_json)?)
}

/// Compiles rules from their JSON text without the GIL (a large rule set takes
/// a while, and no rule text may crash the process).
fn compile(py: Python<'_>, rules_json: &str) -> Result<Engine> {
    let spec = spec_from_json(rules_json)?;
    enter(py, "compiling rules", || Engine::new(spec))
}

#[pymethods]
impl PyEngine {
    /// Compiles `rules_json` (the rule set as JSON) and starts empty.
    #[new]
    #[pyo3(signature = (rules_json, column_map=None))]
    fn new(
        py: Python<'_>,
        rules_json: &str,
        column_map: Option<BTreeMap<String, String>>,
    ) -> Result<Self> {
        let mut inner = compile(py, rules_json)?;
        if let Some(map) = column_map {
            inner.set_column_map(map)?;
        }
        Ok(PyEngine { inner })
    }

    /// Applies Arrow events; returns an `IngestOutcome`.
    /// With `evaluate=False` no rule is evaluated now (see `Engine::ingest_deferred`).
    /// With `shard=(index, count)` (deferred only), only that shard's customers are applied.
    #[pyo3(signature = (data, evaluate=true, shard=None))]
    fn ingest<'py>(
        &mut self,
        py: Python<'py>,
        data: AnyRecordBatch,
        evaluate: bool,
        shard: Option<(u32, u32)>,
    ) -> Result<Bound<'py, PyAny>> {
        let shard = shard
            .map(|(index, count)| {
                let refuse = |why: String| Err(InvalidInputError::new_err(why));
                if index >= count {
                    refuse(format!(
                        "shard=({index}, {count}): the index must be below the count"
                    ))
                } else if evaluate {
                    refuse(format!("shard=({index}, {count}) needs evaluate=False"))
                } else {
                    Ok(Shard { index, count })
                }
            })
            .transpose()?;
        let batches = read_batches(py, data)?;
        let engine = &mut self.inner;
        let out = enter(py, "ingesting events", || {
            over_batches(&batches, |b| {
                if evaluate {
                    engine.ingest(b)
                } else {
                    engine.ingest_deferred(b, shard)
                }
            })
        })?;
        self.outcome(py, out)
    }

    /// Applies JSON messages (a list of bytes or str); returns an `IngestOutcome`.
    fn ingest_json<'py>(
        &mut self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
    ) -> Result<Bound<'py, PyAny>> {
        let mut owned: Vec<Vec<u8>> = Vec::with_capacity(messages.len());
        for m in messages.iter() {
            if let Ok(b) = m.cast::<PyBytes>() {
                owned.push(b.as_bytes().to_vec());
            } else if let Ok(s) = m.extract::<String>() {
                owned.push(s.into_bytes());
            } else {
                return Err(PyTypeError::new_err(
                    "ingest_json takes a list of bytes or str messages",
                )
                .into());
            }
        }
        let engine = &mut self.inner;
        let out = guarded(py, "ingesting JSON", || {
            let refs: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
            engine.ingest_json(&refs)
        })?;
        self.outcome(py, out)
    }

    /// Upserts traits; returns an `IngestOutcome`. With `all_or_nothing`, a
    /// row that cannot be read is an error and nothing is applied
    /// (`Engine::update_traits_all`).
    #[pyo3(signature = (data, all_or_nothing=false))]
    fn update_traits<'py>(
        &mut self,
        py: Python<'py>,
        data: AnyRecordBatch,
        all_or_nothing: bool,
    ) -> Result<Bound<'py, PyAny>> {
        let batches = read_batches(py, data)?;
        let engine = &mut self.inner;
        let out = enter(py, "updating traits", || {
            if all_or_nothing {
                engine.update_traits_all(&batches)
            } else {
                over_batches(&batches, |b| engine.update_traits(b))
            }
        })?;
        self.outcome(py, out)
    }

    /// Advances the clock to `ms` (epoch milliseconds); returns the changes.
    /// With `net=True`, each due customer is evaluated once, at `ms` (`Engine::advance_to_net`).
    #[pyo3(signature = (ms, net=false))]
    fn advance_to<'py>(
        &mut self,
        py: Python<'py>,
        ms: i64,
        net: bool,
    ) -> Result<Bound<'py, PyAny>> {
        let engine = &mut self.inner;
        let changes = enter(py, "advancing the clock", || {
            if net {
                engine.advance_to_net(ms)
            } else {
                engine.advance_to(ms)
            }
        })?;
        self.changes(py, &changes)
    }

    /// Engine time in epoch ms, or None.
    #[getter]
    fn clock(&self) -> Option<i64> {
        self.inner.clock()
    }

    /// Customer ids in a segment (or `lifecycle` / `lifecycle.stage`);
    /// `holdout` is `include`, `exclude` or `only` (`Engine::members_of`).
    #[pyo3(signature = (name, holdout="include"))]
    fn members<'py>(
        &mut self,
        py: Python<'py>,
        name: &str,
        holdout: &str,
    ) -> Result<Bound<'py, PyAny>> {
        self.settle(py)?;
        let idx = self.inner.members_of(name, Holdout::parse(holdout)?)?;
        array(py, ids_for(&self.inner, &idx))
    }

    /// One customer's profile as a dict; KeyError if unknown.
    fn profile<'py>(
        &mut self,
        py: Python<'py>,
        customer_id: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyAny>> {
        self.settle(py)?;
        // Same rule as the decoders: an id of the other kind is converted exactly.
        let text;
        let id = match (self.inner.state().ids.kind(), customer_id.extract::<i64>()) {
            (Some(IdKind::Str), Ok(i)) => {
                text = i.to_string();
                CustomerId::Str(&text)
            }
            (_, Ok(i)) => CustomerId::Int(i),
            (kind, Err(_)) => {
                text = customer_id.extract::<String>()?;
                match (kind, int_id_from_text(&text)) {
                    (Some(IdKind::Int), Some(i)) => CustomerId::Int(i),
                    _ => CustomerId::Str(&text),
                }
            }
        };
        match profile_json(&self.inner, id) {
            Ok(v) => json_to_py(py, &v.to_string()),
            Err(_) => {
                Err(NotFoundError::new_err(format!("unknown customer `{}`", id.to_text())).into())
            }
        }
    }

    /// One row per customer: id, aggregates, traits, segments, stages.
    fn snapshot<'py>(&mut self, py: Python<'py>) -> Result<Bound<'py, PyAny>> {
        self.settle(py)?;
        let engine = &self.inner;
        let batch = guarded(py, "building the snapshot", || snapshot_batch(engine))?;
        table(py, batch)
    }

    /// Segment sizes (and customers per stage for lifecycles).
    fn stats<'py>(&mut self, py: Python<'py>) -> Result<Bound<'py, PyAny>> {
        self.settle(py)?;
        json_to_py(py, &stats_json(&self.inner).to_string())
    }

    /// Writes a checkpoint with the given source offsets (JSON object text).
    #[pyo3(signature = (path, offsets_json=None))]
    fn save(&mut self, py: Python<'_>, path: &str, offsets_json: Option<&str>) -> Result<()> {
        self.settle(py)?;
        if let Some(o) = offsets_json {
            self.inner.set_offsets(o.to_string());
        }
        let engine = &self.inner;
        let path = path.to_string();
        enter(py, "saving a checkpoint", || {
            checkpoint::save(engine, &path)
        })
    }

    /// Reads a checkpoint; with `fingerprint`, refuses one made with other rules.
    #[staticmethod]
    #[pyo3(signature = (path, fingerprint=None))]
    fn load(py: Python<'_>, path: &str, fingerprint: Option<String>) -> Result<Self> {
        let path = path.to_string();
        let inner = enter(py, "loading a checkpoint", || {
            checkpoint::load(&path, fingerprint.as_deref())
        })?;
        Ok(PyEngine { inner })
    }

    /// Source offsets saved with / loaded from a checkpoint (JSON object text).
    #[getter]
    fn offsets(&self) -> String {
        self.inner.offsets().to_string()
    }

    /// Replaces the rules; returns the changes (cause `rules`).
    fn replace_rules<'py>(
        &mut self,
        py: Python<'py>,
        rules_json: &str,
    ) -> Result<Bound<'py, PyAny>> {
        let spec = spec_from_json(rules_json)?;
        let engine = &mut self.inner;
        let (changes, removed) = enter(py, "replacing rules", || engine.replace_rules(spec))?;
        table(py, changes_batch(&self.inner, &changes, &removed))
    }

    /// Fingerprint of the compiled rules.
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.rules().fingerprint.clone()
    }

    /// The rule set as JSON.
    #[getter]
    fn rules_json(&self) -> String {
        self.inner.rules().spec.to_json()
    }

    /// Number of customers.
    #[getter]
    fn num_customers(&self) -> usize {
        self.inner.num_customers()
    }

    /// Moves every customer of `other` (same rules, no customer in common)
    /// into this engine; `other` is left empty.
    fn merge(&mut self, py: Python<'_>, other: &Bound<'_, PyEngine>) -> Result<()> {
        let mut other = other
            .try_borrow_mut()
            .map_err(|_| InvalidInputError::new_err("merge: cannot merge an engine into itself"))?;
        self.inner.check_mergeable(&other.inner)?;
        let empty = other.inner.empty_like();
        let taken = std::mem::replace(&mut other.inner, empty);
        let engine = &mut self.inner;
        enter(py, "merging engines", || engine.merge(taken))
    }

    /// The snapshot's membership columns (`output::membership_columns`).
    #[getter]
    fn membership_columns(&self) -> Vec<String> {
        membership_columns(self.inner.rules())
    }

    /// The event columns that change what the rules see: the base columns, and
    /// the tag columns only when a rule reads them (`event_id` and `order_id`
    /// are not rule inputs).
    #[getter]
    fn rule_columns(&self) -> Vec<&'static str> {
        let keyed = &self.inner.state().keyed;
        EVENT_COLUMNS
            .into_iter()
            .filter(|&c| match c {
                "event_id" | "order_id" => false,
                "product_ids" => keyed.wants_products(),
                "categories" => keyed.wants_categories(),
                "flags" => keyed.wants_flags(),
                _ => true,
            })
            .collect()
    }

    /// True when `ingest(..., evaluate=False)` ends in the memberships that
    /// evaluating every batch would (see `Engine::defers_exactly`).
    #[getter]
    fn defers_exactly(&self) -> bool {
        self.inner.defers_exactly()
    }

    /// Merges profiles: an Arrow table of `customer_id` and `into` columns
    /// (text or int64); returns the changes (cause `merge`).
    fn merge_customers<'py>(
        &mut self,
        py: Python<'py>,
        data: AnyRecordBatch,
    ) -> Result<Bound<'py, PyAny>> {
        use segstream_engine::measure::merge_alias::OwnedId;
        let batches = read_batches(py, data)?;
        let ints = self.inner.state().ids.kind() == Some(segstream_engine::state::IdKind::Int);
        let mut owned: Vec<(OwnedId, OwnedId)> = Vec::new();
        for b in &batches {
            let from = id_values(b, "customer_id")?;
            let into = id_values(b, "into")?;
            for (row, (f, t)) in from.into_iter().zip(into).enumerate() {
                let (Some(f), Some(t)) = (f.as_id(ints), t.as_id(ints)) else {
                    return Err(InvalidInputError::new_err(format!(
                        "merge_customers row {row}: this engine holds integer ids"
                    ))
                    .into());
                };
                owned.push((f, t));
            }
        }
        let rows: Vec<_> = owned
            .iter()
            .map(|(f, t)| (f.borrow(), t.borrow()))
            .collect();
        let engine = &mut self.inner;
        let changes = enter(py, "merging customers", || engine.merge_customers(&rows))?;
        self.changes(py, &changes)
    }

    /// The uplift table over the entries made in `[start_ms, end_ms)` (UTC midnights).
    fn uplift<'py>(
        &mut self,
        py: Python<'py>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Bound<'py, PyAny>> {
        self.settle(py)?;
        let batch = segstream_engine::measure::uplift_batch(&self.inner, start_ms, end_ms)?;
        table(py, batch)
    }

    /// Customers with a pending time-driven re-evaluation.
    #[getter]
    fn pending_timers(&self) -> usize {
        self.inner.timers().pending()
    }

    /// Approximate bytes of state: `{"base": .., "ids": .., "keyed": .., "per_customer_base": ..}`.
    fn memory<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyAny>> {
        let s = &self.inner.state();
        let v = serde_json::json!({
            "customers": s.len(),
            "base_bytes_per_customer": segstream_engine::state::Aggregates::BYTES_PER_CUSTOMER,
            "ids": s.ids.heap_bytes(),
            "keyed": s.keyed.heap_bytes(),
        });
        json_to_py(py, &v.to_string())
    }
}

/// The uplift table over several engines with the same rules and disjoint
/// customers (a service's partitions), entries made in `[start_ms, end_ms)`.
#[pyfunction]
pub fn uplift_of<'py>(
    py: Python<'py>,
    engines: Vec<PyRefMut<'py, PyEngine>>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Bound<'py, PyAny>> {
    let mut engines = engines;
    for e in engines.iter_mut() {
        e.settle(py)?;
    }
    let inner: Vec<&Engine> = engines.iter().map(|e| &e.inner).collect();
    let batch = segstream_engine::measure::uplift_of(&inner, start_ms, end_ms)?;
    table(py, batch)
}

/// A merge table's id column as ids (text or int64, no nulls).
fn id_values(
    b: &RecordBatch,
    name: &str,
) -> Result<Vec<segstream_engine::measure::merge_alias::OwnedId>> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use arrow_schema::DataType;
    use segstream_engine::measure::merge_alias::OwnedId;
    let bad = |why: &str| InvalidInputError::new_err(format!("merge_customers: `{name}` {why}"));
    let c = b
        .column_by_name(name)
        .ok_or_else(|| bad("is missing (the table needs customer_id and into)"))?;
    if c.null_count() > 0 {
        return Err(bad("holds a null").into());
    }
    Ok(match c.data_type() {
        DataType::Utf8 => c
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(|s| OwnedId::Str(s.into()))
            .collect(),
        DataType::LargeUtf8 => c
            .as_string::<i64>()
            .iter()
            .flatten()
            .map(|s| OwnedId::Str(s.into()))
            .collect(),
        DataType::Int64 => c
            .as_primitive::<arrow_array::types::Int64Type>()
            .values()
            .iter()
            .map(|&v| OwnedId::Int(v))
            .collect(),
        other => return Err(bad(&format!("must be text or int64, not {other}")).into()),
    })
}

/// Compiles a rule set and describes what each segment needs (JSON text).
#[pyfunction]
pub fn describe_rules<'py>(py: Python<'py>, rules_json: &str) -> Result<Bound<'py, PyAny>> {
    let spec = spec_from_json(rules_json)?;
    let text = enter(py, "describing rules", || {
        segstream_engine::rules::describe::describe(&spec)
    })?;
    json_to_py(py, &text)
}

/// Panics inside the boundary, for the test that a panic reaches Python as an
/// `InternalError` (and the interpreter lives on).
#[pyfunction]
pub fn _panic_for_tests(py: Python<'_>, message: &str) -> Result<()> {
    let message = message.to_string();
    guarded(py, "running the panic test hook", || -> () {
        panic!("{message}")
    })
}

/// Reads a rule set's JSON form without compiling its rules: RuleError for
/// an unknown key or a value of the wrong type.
#[pyfunction]
pub fn check_rule_spec(rules_json: &str) -> Result<()> {
    spec_from_json(rules_json).map(|_| ())
}
