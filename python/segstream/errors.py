"""The exception tree. The Rust extension raises these classes by name."""

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


class CheckpointError(SegstreamError):
    """A checkpoint that cannot be read, or was made with other rules or a newer format."""


class MissingHistoryError(SegstreamError):
    """New rules need history that the current state did not keep."""
