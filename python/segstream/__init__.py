"""segstream: streaming customer segmentation over Arrow, files and Kafka.

A Rust engine keeps per-customer purchase aggregates and evaluates SQL
segment rules; this package wraps it for Python, the CLI and the Faust app.
"""

from typing import TYPE_CHECKING

from segstream._segstream import __version__
from segstream.engine import Engine, IngestResult, to_epoch_ms
from segstream.errors import (
    CheckpointError,
    InternalError,
    InvalidInputError,
    MissingFileError,
    MissingHistoryError,
    NotFoundError,
    RuleError,
    SchemaError,
    SegstreamError,
)
from segstream.rules import RuleSet
from segstream.types import ArrowArrayExportable, ArrowData, ArrowStreamExportable, IngestOutcome

if TYPE_CHECKING:
    # The bulk runner pulls in pyarrow.dataset and the file readers: a type checker
    # sees its real signature, while at run time it is imported on first use.
    from segstream.bulk import segment_files

__all__ = [
    "ArrowArrayExportable",
    "ArrowData",
    "ArrowStreamExportable",
    "CheckpointError",
    "Engine",
    "IngestOutcome",
    "IngestResult",
    "InternalError",
    "InvalidInputError",
    "MissingFileError",
    "MissingHistoryError",
    "NotFoundError",
    "RuleError",
    "RuleSet",
    "SchemaError",
    "SegstreamError",
    "__version__",
    "segment_files",
    "to_epoch_ms",
]


def __getattr__(name: str) -> object:
    if name == "segment_files":
        from segstream.bulk import segment_files

        return segment_files
    raise AttributeError(f"module 'segstream' has no attribute {name!r}")
