"""The types of segstream's public API: what it accepts as Arrow input, and the
named results of the extension's calls.

Arrow input is anything that speaks the Arrow PyCapsule interface, so a
pyarrow Table or RecordBatch, a polars DataFrame, a DuckDB relation or a
nanoarrow stream all pass without pyarrow having to know them: the protocols
below say so to a type checker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from segstream.rules import RuleSet

__all__ = [
    "ArrowArrayExportable",
    "ArrowData",
    "ArrowStreamExportable",
    "IngestOutcome",
    "RuleSource",
]


@runtime_checkable
class ArrowStreamExportable(Protocol):
    """A table or stream of record batches that exports itself through the Arrow C
    stream interface (pyarrow Table and RecordBatchReader, polars DataFrame, DuckDB)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


@runtime_checkable
class ArrowArrayExportable(Protocol):
    """One record batch that exports itself through the Arrow C data interface, as a
    (schema, array) pair of capsules (pyarrow RecordBatch, a struct array)."""

    def __arrow_c_array__(
        self, requested_schema: object | None = None
    ) -> tuple[object, object]: ...


#: What ``Engine.ingest`` and ``Engine.update_traits`` take.
ArrowData: TypeAlias = ArrowStreamExportable | ArrowArrayExportable

#: Rules as ``Engine`` and ``replace_rules`` take them: a RuleSet, the rule set as a
#: dict, a path to a YAML file, or YAML text.
RuleSource: TypeAlias = "RuleSet | Mapping[str, Any] | str | os.PathLike[str]"


class IngestOutcome(NamedTuple):
    """What one call of the extension's ``ingest``, ``ingest_json`` or ``update_traits``
    did. A tuple, so it also unpacks."""

    changes: pa.Table
    """Membership changes, one row each (the columns of DESIGN.md's output table)."""
    rejected: pa.Table
    """Rows not applied: ``row`` (index in the input, counted across its batches) and
    ``reason``."""
    applied: int
    """Rows applied."""
    duplicates: int
    """Rows skipped because their ``event_id`` was already applied for that customer."""
    event_types: list[tuple[str | None, int, str]]
    """Per ``event_type`` value seen: (the value, rows, what it was read as)."""
    max_ts: int | None
    """The latest event time applied, epoch ms (None when no row was)."""
