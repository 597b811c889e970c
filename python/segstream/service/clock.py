"""How far each partition's engine clock moves on a timer tick, with no event arriving.

Rules with `now()` change membership as time passes (`dormant` after 90 quiet days), so
the worker advances its engines on a timer:

- `wall`: every engine goes to the wall-clock time; for live traffic.
- `watermark`: event time only. An engine already follows the latest event time of its
  own partition; the tick brings partitions that have caught up with their input to the
  latest event time seen on any partition of this worker, so a quiet partition's
  customers still go dormant. A partition with unread input is left alone: its own
  events will move it, and moving it first would make them late.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from segstream.service.settings import ClockMode


def tick_targets(
    mode: ClockMode,
    clocks: Mapping[int, datetime | None],
    caught_up: Callable[[int], bool],
    now: datetime | None = None,
) -> dict[int, datetime]:
    """partition -> the time its engine should advance to on this tick (absent: stay)."""
    if mode == "wall":
        wall = now or datetime.now(UTC)
        return {p: wall for p, clock in clocks.items() if clock is None or clock < wall}
    known = [clock for clock in clocks.values() if clock is not None]
    if not known:
        return {}
    watermark = max(known)
    return {
        p: watermark
        for p, clock in clocks.items()
        if clock is not None and clock < watermark and caught_up(p)
    }
