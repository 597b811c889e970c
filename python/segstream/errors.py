"""The exception tree. Every error segstream raises on purpose is a
``SegstreamError``; each kind is also the built-in exception a Python user
would catch for it (``ValueError`` for bad input, ``KeyError`` for a lookup of
something that does not exist, ``FileNotFoundError`` for a missing file).
The Rust extension imports these classes once and raises them.

    SegstreamError
    ├── RuleError            (ValueError)  a rule or rule-set option that does not compile
    ├── SchemaError          (ValueError)  input whose shape is wrong as a whole
    ├── InvalidInputError    (ValueError)  a bad argument, column map or merge
    ├── NotFoundError        (KeyError)    an unknown segment, stage or customer
    ├── MissingFileError     (FileNotFoundError)
    ├── CheckpointError                    a checkpoint that cannot be read
    ├── MissingHistoryError                new rules need history that was not kept
    └── InternalError        (RuntimeError) a bug in segstream: please report it
"""

from __future__ import annotations


class SegstreamError(Exception):
    """Root of every error segstream raises on purpose."""


class RuleError(SegstreamError, ValueError):
    """A rule or rule-set option that does not compile.

    The message shows the rule with a caret under the problem; ``line`` and
    ``column`` are 1-based positions inside the rule text.
    """

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        segment: str | None = None,
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.segment = segment


class SchemaError(SegstreamError, ValueError):
    """Input whose shape is wrong as a whole (missing column, wrong type). Nothing was applied."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class InvalidInputError(SegstreamError, ValueError):
    """An argument that cannot be used: a column map naming no event column,
    engines that cannot be merged, a shard out of range."""


class NotFoundError(SegstreamError, KeyError):
    """A lookup of a segment, stage or customer the engine does not know."""

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were the key.
        return str(self.args[0]) if self.args else ""


class MissingFileError(SegstreamError, FileNotFoundError):
    """A file to read (a checkpoint, an input) that does not exist."""


class CheckpointError(SegstreamError):
    """A checkpoint that cannot be read, or was made with other rules or a newer format."""


class MissingHistoryError(SegstreamError):
    """New rules need history that the current state did not keep."""


class InternalError(SegstreamError, RuntimeError):
    """A bug in segstream (a panic caught at the boundary). The engine's state
    is as it was before the call; please report it with the message."""
