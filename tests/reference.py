"""A plain-Python reference evaluator for a subset of the segstream rule language.

It knows nothing of the engine: it folds a list of events into per-customer state and
evaluates rules (a small AST, rendered to SQL with :func:`to_sql`) at a given clock,
following docs/rules.md:

- money is exact, in minor units (currency_scale 2); a number compared with money is read
  in currency units;
- refunds subtract from ``ltv`` but are not purchases (``orders``, ``max_order``,
  ``last_purchase_at``, ``has_category`` and ``purchases(...)`` ignore them);
- ``within => INTERVAL 'N days'`` counts events with ``ts >= now() - N days``, with no upper
  bound (events after the clock count too);
- SQL three-valued logic: a comparison with NULL is NULL, and NULL is not membership.

Rules here only change value with time at instants ``ts + N days`` or one millisecond
later, so :func:`transitions` can replay the time axis exactly.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Union

DAY_MS = 86_400_000
CENT = Decimal("0.01")

MONEY_FIELDS = ("ltv", "gross_spend", "max_order")
COUNT_FIELDS = ("orders", "refunds")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    customer_id: str | int
    ts: int
    """Epoch milliseconds."""
    event_type: str = "purchase"
    cents: int | None = None
    """Amount in minor units (purchases and refunds)."""
    categories: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    quantity: int | None = None
    event_id: str | None = None

    def row(self, decimal_amounts: bool = False) -> dict[str, Any]:
        """The event as a row of the engine's event table."""
        amount: Any = None
        if self.cents is not None:
            amount = Decimal(self.cents) * CENT if decimal_amounts else self.cents / 100
        return {
            "customer_id": self.customer_id,
            "ts": self.ts,
            "event_type": self.event_type,
            "amount": amount,
            "categories": list(self.categories),
            "product_ids": list(self.products),
            "flags": list(self.flags),
            "quantity": self.quantity,
            "event_id": self.event_id,
        }


@dataclass
class Customer:
    ltv: int = 0
    gross_spend: int = 0
    refunded: int = 0
    max_order: int | None = None
    orders: int = 0
    refunds: int = 0
    first_purchase_at: int | None = None
    last_purchase_at: int | None = None
    last_refund_at: int | None = None
    purchases: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    money: list[tuple[int, int, frozenset[str]]] = field(default_factory=list)
    """(ts, signed cents, categories) of purchases (+) and refunds (-)."""
    signals: list[tuple[str, int]] = field(default_factory=list)


def fold(events: Iterable[Event]) -> dict[str | int, Customer]:
    """Per-customer state after all `events` (order does not matter)."""
    out: dict[str | int, Customer] = {}
    for e in events:
        c = out.setdefault(e.customer_id, Customer())
        if e.event_type == "purchase":
            cents = e.cents or 0
            c.ltv += cents
            c.gross_spend += cents
            c.max_order = cents if c.max_order is None else max(c.max_order, cents)
            c.orders += 1
            c.first_purchase_at = _min(c.first_purchase_at, e.ts)
            c.last_purchase_at = _max(c.last_purchase_at, e.ts)
            c.purchases.append((e.ts, frozenset(e.categories)))
            c.money.append((e.ts, cents, frozenset(e.categories)))
        elif e.event_type == "refund":
            cents = e.cents or 0
            c.ltv -= cents
            c.refunded += cents
            c.refunds += 1
            c.last_refund_at = _max(c.last_refund_at, e.ts)
            c.money.append((e.ts, -cents, frozenset(e.categories)))
        else:
            c.signals.append((e.event_type, e.ts))
    return out


def _min(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def _max(a: int | None, b: int) -> int:
    return b if a is None else max(a, b)


# -- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cmp:
    """`field op number`: a money field (number in currency units) or a count."""

    name: str
    op: str
    value: Decimal | int


@dataclass(frozen=True)
class LastPurchaseBefore:
    """`last_purchase_at < now() - INTERVAL 'N days'`."""

    days: int


@dataclass(frozen=True)
class HasCategory:
    category: str


@dataclass(frozen=True)
class Purchases:
    """`purchases(category => c, within => INTERVAL 'N days') op k`."""

    category: str
    days: int
    op: str
    k: int


@dataclass(frozen=True)
class Spend:
    """`spend([category => c, ][within => INTERVAL 'N days']) op number`: net of refunds."""

    category: str | None
    days: int | None
    op: str
    value: Decimal | int


@dataclass(frozen=True)
class Events:
    """`events(name, within => INTERVAL 'N days') op k`."""

    name: str
    days: int
    op: str
    k: int


@dataclass(frozen=True)
class And:
    left: Rule
    right: Rule


@dataclass(frozen=True)
class Or:
    left: Rule
    right: Rule


@dataclass(frozen=True)
class Not:
    inner: Rule


Rule = Union[Cmp, LastPurchaseBefore, HasCategory, Purchases, Spend, Events, And, Or, Not]  # noqa: UP007


def _number(v: Decimal | int) -> str:
    return str(v) if isinstance(v, int) else format(v, "f")


def to_sql(rule: Rule) -> str:
    """The rule in the engine's SQL dialect (fully parenthesized)."""
    match rule:
        case Cmp(name, op, value):
            return f"{name} {op} {_number(value)}"
        case LastPurchaseBefore(days):
            return f"last_purchase_at < now() - INTERVAL '{days} days'"
        case HasCategory(category):
            return f"has_category('{category}')"
        case Purchases(category, days, op, k):
            return f"purchases(category => '{category}', within => INTERVAL '{days} days') {op} {k}"
        case Spend(category, days, op, value):
            args = [f"category => '{category}'"] if category is not None else []
            if days is not None:
                args.append(f"within => INTERVAL '{days} days'")
            return f"spend({', '.join(args)}) {op} {_number(value)}"
        case Events(name, days, op, k):
            return f"events('{name}', within => INTERVAL '{days} days') {op} {k}"
        case And(left, right):
            return f"({to_sql(left)}) AND ({to_sql(right)})"
        case Or(left, right):
            return f"({to_sql(left)}) OR ({to_sql(right)})"
        case Not(inner):
            return f"NOT ({to_sql(inner)})"
    raise TypeError(rule)


def evaluate(rule: Rule, c: Customer, now: int) -> bool | None:
    """SQL value of `rule` for customer `c` at clock `now`: True, False or None (NULL)."""
    match rule:
        case Cmp(name, op, value):
            got = getattr(c, name)
            if got is None:
                return None
            if name in MONEY_FIELDS:
                got = Decimal(got) * CENT
            return OPS[op](got, value)
        case LastPurchaseBefore(days):
            if c.last_purchase_at is None:
                return None
            return c.last_purchase_at < now - days * DAY_MS
        case HasCategory(category):
            return any(category in cats for _, cats in c.purchases)
        case Purchases(category, days, op, k):
            start = now - days * DAY_MS
            n = sum(1 for ts, cats in c.purchases if category in cats and ts >= start)
            return OPS[op](n, k)
        case Spend(category, days, op, value):
            start = None if days is None else now - days * DAY_MS
            net = sum(
                cents
                for ts, cents, cats in c.money
                if (category is None or category in cats) and (start is None or ts >= start)
            )
            return OPS[op](Decimal(net) * CENT, value)
        case Events(name, days, op, k):
            start = now - days * DAY_MS
            n = sum(1 for sig, ts in c.signals if sig == name and ts >= start)
            return OPS[op](n, k)
        case And(left, right):
            a, b = evaluate(left, c, now), evaluate(right, c, now)
            if a is False or b is False:
                return False
            return None if a is None or b is None else True
        case Or(left, right):
            a, b = evaluate(left, c, now), evaluate(right, c, now)
            if a is True or b is True:
                return True
            return None if a is None or b is None else False
        case Not(inner):
            v = evaluate(inner, c, now)
            return None if v is None else not v
    raise TypeError(rule)


def windows(rule: Rule) -> set[int]:
    """Every interval (in days) a rule compares times with."""
    match rule:
        case LastPurchaseBefore(days) | Purchases(_, days, _, _) | Events(_, days, _, _):
            return {days}
        case Spend(_, days, _, _):
            return set() if days is None else {days}
        case And(left, right) | Or(left, right):
            return windows(left) | windows(right)
        case Not(inner):
            return windows(inner)
    return set()


# -- rule sets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    segments: tuple[tuple[str, Rule], ...]
    lifecycles: tuple[tuple[str, tuple[tuple[str, Rule], ...]], ...] = ()

    def spec(self, allowed_lateness: str = "0 ms") -> dict[str, Any]:
        """The rule set in the form `segstream.Engine` accepts."""
        return {
            "currency_scale": 2,
            "allowed_lateness": allowed_lateness,
            "segments": [{"name": n, "rule": to_sql(r)} for n, r in self.segments],
            "lifecycles": [
                {"name": n, "stages": [{"name": s, "rule": to_sql(r)} for s, r in stages]}
                for n, stages in self.lifecycles
            ],
        }

    def all_rules(self) -> list[Rule]:
        return [r for _, r in self.segments] + [
            r for _, stages in self.lifecycles for _, r in stages
        ]


def memberships(rules: RuleSet, customers: dict[str | int, Customer], now: int) -> dict:
    """{segment: set of members, lifecycle: {customer: stage}} at clock `now`."""
    out: dict[str, Any] = {}
    for name, rule in rules.segments:
        out[name] = {cid for cid, c in customers.items() if evaluate(rule, c, now) is True}
    for name, stages in rules.lifecycles:
        staged = {}
        for cid, c in customers.items():
            for stage, rule in stages:
                if evaluate(rule, c, now) is True:
                    staged[cid] = stage
                    break
        out[name] = staged
    return out


def transitions(
    rules: RuleSet, events: Sequence[Event], start: int, end: int
) -> list[tuple[Any, str, str, str | None, str | None, int]]:
    """Changes caused by time alone while the clock moves from `start` to `end`.

    Rows are (customer_id, segment, change, from_stage, to_stage, at), sorted. Rule values
    only change at `ts + N days` (window ends and `last_purchase_at` thresholds are one
    millisecond later), so evaluating at every such instant in (start, end] is exact.
    """
    customers = fold(events)
    days = set().union(*(windows(r) for r in rules.all_rules()))
    instants = sorted(
        {
            e.ts + d * DAY_MS + extra
            for e in events
            for d in days
            for extra in (0, 1)
            if start < e.ts + d * DAY_MS + extra <= end
        }
    )
    out = []
    before = memberships(rules, customers, start)
    for t in instants:
        after = memberships(rules, customers, t)
        for name, _ in rules.segments:
            for cid in after[name] - before[name]:
                out.append((cid, name, "enter", None, None, t))
            for cid in before[name] - after[name]:
                out.append((cid, name, "exit", None, None, t))
        for name, stages in rules.lifecycles:
            order = [s for s, _ in stages]
            old, new = before[name], after[name]
            for cid in set(old) | set(new):
                a, b = old.get(cid), new.get(cid)
                if a == b:
                    continue
                if a is None:
                    change = "enter"
                elif b is None:
                    change = "exit"
                else:
                    change = "progress" if order.index(b) < order.index(a) else "regress"
                out.append((cid, name, change, a, b, t))
        before = after
    return sorted(out, key=repr)
