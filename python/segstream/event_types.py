"""The per-run table of `event_type` values: rows seen and how each value was read,
and the warnings for values that look like a misspelt purchase or refund."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: How a value was read: an order, money back, a signal a rule reads, a signal no rule
#: reads (it only makes the customer known), or empty text (the rows were rejected).
READ_AS: tuple[str, ...] = ("purchase", "refund", "signal", "ignored", "rejected")

# Names that exports use for orders and refunds; read as signals unless the rule set maps
# them (`event_types:`), so seeing one is worth a warning.
_LOOKALIKES: dict[str, str] = {
    "order": "purchase",
    "orders": "purchase",
    "order placed": "purchase",
    "order_placed": "purchase",
    "checkout": "purchase",
    "sale": "purchase",
    "sales": "purchase",
    "purchased": "purchase",
    "purchases": "purchase",
    "buy": "purchase",
    "transaction": "purchase",
    "return": "refund",
    "returns": "refund",
    "returned": "refund",
    "refunds": "refund",
    "refunded": "refund",
    "chargeback": "refund",
}
_MONEY_NAMES = ("purchase", "refund", "order completed", "order refunded")


@dataclass(frozen=True)
class EventTypeCount:
    """Rows seen with one `event_type` value (None: null or no column, read as purchases)."""

    event_type: str | None
    rows: int
    read_as: str


def merge_counts(parts: Iterable[Iterable[EventTypeCount]]) -> list[EventTypeCount]:
    """Counts of several calls added up by value, most rows first."""
    total: dict[tuple[str | None, str], int] = {}
    for part in parts:
        for c in part:
            total[(c.event_type, c.read_as)] = total.get((c.event_type, c.read_as), 0) + c.rows
    counts = [EventTypeCount(name, rows, how) for (name, how), rows in total.items()]
    return sorted(counts, key=lambda c: (-c.rows, c.event_type or ""))


def near_miss(name: str | None) -> str | None:
    """`purchase` or `refund` when a value read as a signal looks like one of them."""
    if not name:
        return None
    text = " ".join(name.strip().lower().replace("-", " ").split())
    if text in _LOOKALIKES:
        return _LOOKALIKES[text]
    for known in _MONEY_NAMES:
        if _distance(text, known, 2) <= 2:
            return "refund" if "refund" in known else "purchase"
    return None


def warnings(counts: Iterable[EventTypeCount]) -> list[str]:
    """One line per value read as a signal that looks like a purchase or a refund."""
    out = []
    for c in counts:
        if c.read_as not in ("signal", "ignored"):
            continue
        like = near_miss(c.event_type)
        if like is not None:
            out.append(
                f"event_type {c.event_type!r} ({c.rows:,} rows) was read as a signal, "
                f"not as a {like}; if it is one, map it in the rules: "
                f"event_types: {{{like}: [{c.event_type!r}]}}"
            )
    return out


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or more than `limit` as soon as it is certain."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]
