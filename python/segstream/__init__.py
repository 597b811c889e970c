"""segstream: streaming customer segmentation over Arrow, files and Kafka.

A Rust engine keeps per-customer purchase aggregates and evaluates SQL
segment rules; this package wraps it for Python, the CLI and the Faust app.
"""

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

__all__ = [
    "CheckpointError",
    "Engine",
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


def segment_files(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Re-segments files in bulk; see :func:`segstream.bulk.segment_files`."""
    from segstream.bulk import segment_files as _impl

    return _impl(*args, **kwargs)
