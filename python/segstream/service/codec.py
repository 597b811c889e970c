"""Wire formats of the service: recognising Arrow IPC input, and encoding changes and dead letters.

Input JSON is never parsed here: the engine decodes it in Rust (`Engine.ingest_json`). This
module only tells Arrow IPC payloads apart from JSON by their first bytes, and describes dead
letters; change messages are encoded by the engine (`encode_change_messages`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from segstream._segstream import encode_change_messages

#: An Arrow IPC stream message starts with the continuation marker (format >= 0.15).
IPC_CONTINUATION = b"\xff\xff\xff\xff"
#: An Arrow IPC file starts with this magic.
IPC_FILE_MAGIC = b"ARROW1"
#: How much of a rejected payload a dead letter quotes; the full payload can exceed what the
#: broker accepts in one message once wrapped in JSON.
DEAD_LETTER_QUOTE_BYTES = 4096


def is_arrow_ipc(value: bytes) -> bool:
    """True when `value` is an Arrow IPC stream or file; JSON text never starts with these bytes."""
    return value[:4] == IPC_CONTINUATION or value[:6] == IPC_FILE_MAGIC


def read_arrow_ipc(value: bytes) -> pa.Table:
    """Decode one Arrow IPC message (stream or file format) into a table.

    Raises `pyarrow.ArrowInvalid` for a truncated or corrupt payload.
    """
    buffer = pa.py_buffer(value)
    if value[:6] == IPC_FILE_MAGIC:
        return ipc.open_file(buffer).read_all()
    return ipc.open_stream(buffer).read_all()


def write_arrow_ipc(data: pa.Table | pa.RecordBatch) -> bytes:
    """Encode a table or batch as one Arrow IPC stream message (what producers send)."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, data.schema) as writer:
        writer.write(data)
    return bytes(sink.getvalue())


def encode_changes(changes: pa.Table) -> list[tuple[bytes, bytes]]:
    """One `(key, value)` pair per change row, in table order: keyed by customer id, JSON.

    The value carries every column of the changes table (docs/api.md), with `at` as an
    ISO 8601 UTC string, so a consumer needs no Arrow to use it. The encoding is done by
    the engine (`encode_change_messages`), the same one the worker publishes with.
    """
    if changes.num_rows == 0:
        return []
    return [pair for _, pairs in encode_change_messages(changes, 1) for pair in pairs]


@dataclass(frozen=True)
class DeadLetter:
    """A message the service could not use, and where it came from."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    #: Row of an Arrow IPC message that was rejected; None for a whole message.
    row: int | None = None

    def encode(self) -> tuple[bytes | None, bytes]:
        """`(key, value)` for the dead-letter topic: the original key, a JSON description."""
        quoted = self.value[:DEAD_LETTER_QUOTE_BYTES]
        body: dict[str, Any] = {
            "reason": self.reason,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "row": self.row,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "size": len(self.value),
            "truncated": len(self.value) > len(quoted),
        }
        if is_arrow_ipc(self.value):
            # Binary payloads are not quoted: the offset finds them in the source topic.
            body["payload"] = None
        else:
            body["payload"] = quoted.decode("utf-8", "replace")
        return self.key, json.dumps(body, separators=(",", ":")).encode()
