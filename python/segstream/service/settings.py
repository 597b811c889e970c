"""Settings of the streaming service: one frozen record, from the command line or the environment.

The `segstream worker` command fills it from its flags; `faust -A segstream.service worker`
has no flags of ours, so the same fields are read from `SEGSTREAM_*` variables.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

ClockMode = Literal["wall", "watermark"]


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceSettings:
    """Everything a worker needs to know; the defaults suit a local broker."""

    #: Rule set: a YAML file path or YAML text.
    rules: str
    #: Faust broker URL(s), `kafka://host:port[;kafka://host2:port]`.
    broker: str = "kafka://127.0.0.1:9092"
    #: Consumer group and Faust app id; workers with the same id share the partitions.
    app_id: str = "segstream"
    events_topic: str = "events"
    traits_topic: str = "traits"
    changes_topic: str = "segment-changes"
    dead_letter_topic: str = "segstream-dead-letters"
    #: Partitions of the topics the worker creates when they are missing.
    partitions: int = 4
    #: Local directory or fsspec URL of the per-partition checkpoints.
    state_dir: str = "segstream-state"
    #: `wall`: the engine clock follows the wall clock; `watermark`: it follows event time.
    clock: ClockMode = "wall"
    #: Seconds between clock ticks (time-driven changes such as `dormant`).
    tick_interval: float = 1.0
    #: Largest batch handed to the engine, and how long to wait to fill it (seconds).
    batch_size: int = 5000
    batch_within: float = 0.05
    #: A checkpoint is written every this many seconds, or this many messages in a partition.
    checkpoint_interval: float = 10.0
    checkpoint_every: int = 100_000
    #: Messages larger than this go to the dead-letter topic without being decoded.
    max_message_bytes: int = 256 * 1024
    #: Port of the HTTP views (`/segments`, `/customers/{id}`, `/health`), bound to 127.0.0.1.
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    #: Bearer token every view but `/health` requires; None: no check (loopback only).
    api_token: str | None = None
    #: Seconds without a heartbeat before the group gives a worker's partitions to others
    #: (the broker accepts 6 to 300 by default).
    session_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.clock not in ("wall", "watermark"):
            raise ValueError(f"clock must be 'wall' or 'watermark', not {self.clock!r}")
        if self.partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {self.partitions}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")
        for name in ("tick_interval", "batch_within", "checkpoint_interval", "session_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.api_token is not None and len(self.api_token) < 16:
            raise ValueError("the API token must be at least 16 characters long")
        if self.api_token is None and not is_loopback(self.web_bind):
            raise ValueError(
                f"the HTTP views would listen on {self.web_bind}, reachable from other "
                "machines, without an API token: customer profiles are personal data. "
                "Set --api-token-file (or SEGSTREAM_API_TOKEN), or bind to 127.0.0.1"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read `SEGSTREAM_<FIELD>` variables (for example `SEGSTREAM_RULES`, `SEGSTREAM_BROKER`).

        Raises `ValueError` when `SEGSTREAM_RULES` is missing, since no default rule set
        makes sense.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(f"SEGSTREAM_{field.name.upper()}")
            if raw is None:
                continue
            kind = type(field.default) if field.default is not None else str
            values[field.name] = kind(raw) if kind in (int, float) else raw
        if "rules" not in values:
            raise ValueError(
                "SEGSTREAM_RULES is not set: point it at a rule-set YAML file "
                "(faust -A segstream.service worker reads its settings from SEGSTREAM_* variables)"
            )
        return cls(**values)
