"""A seeded, realistic purchase stream for demos, benchmarks and tests.

Customers differ the way real ones do: a heavy-tailed purchase rate (lognormal, plus a
few whales with lifetime values past $10,000), window shoppers who browse a lot and buy
little, business buyers ordering by the dozen, gift buyers, coupon hunters, subscribers
of the standard and premium plans, customers who join late and customers who churn.
Browsing signals far outnumber purchases; about 3% of orders are refunded later.

Everything is vectorised with numpy: the time range is cut into slices (about a month
each, or 500,000 events, whichever is smaller), each slice is drawn in one go and sorted,
so 20 million events take seconds and memory stays bounded. The same seed always gives
the same stream, whatever the `batch_size`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

IdType = Literal["string", "int"]

#: Categories of the catalogue, most popular first (popularity falls off along the list).
CATEGORIES: tuple[str, ...] = (
    "grocery", "kitchen", "apparel", "beauty", "electronics", "home_decor", "books", "toys",
    "pet", "garden", "tableware", "cookware", "sports", "shoes", "health", "personal_care",
    "baby", "office", "bedding", "bath", "coffee_tea", "phones", "computers", "audio",
    "video_games", "lighting", "tools", "furniture", "cleaning", "storage", "outdoor",
    "fitness", "jewelry", "bags", "automotive", "stationery", "crafts", "party", "music",
    "movies", "smart_home", "appliances", "watches", "luggage", "camping", "cycling",
    "photography", "fishing", "wine", "seasonal",
)  # fmt: skip
#: The category of the two subscription plans.
SUBSCRIPTIONS = "subscriptions"
STANDARD_PLAN = "standard_plan"
PREMIUM_PLAN = "premium_plan"
#: Regular products are "p0001" … "p2000"; the two plans come after them.
N_PRODUCTS = 2_000
EVENT_TYPES: tuple[str, ...] = (
    "purchase", "refund", "page_view", "email_open", "cart_abandon", "support_case", "offer_sent",
)  # fmt: skip
FLAGS: tuple[str, ...] = ("gift", "b2b", "coupon")
INDUSTRIES: tuple[str, ...] = (
    "retail", "manufacturing", "hospitality", "healthcare", "education", "finance",
    "technology", "construction", "logistics", "wholesale", "public_sector", "media",
)  # fmt: skip

SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("event_type", pa.string()),
        ("amount", pa.float64()),
        ("order_id", pa.string()),
        ("product_ids", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
        ("quantity", pa.int64()),
        ("event_id", pa.string()),
        ("flags", pa.list_(pa.string())),
    ]
)

# Share of all events per kind. Refunds are a share of purchases, the signals share the rest.
_PURCHASE_SHARE = 0.15
_REFUND_RATE = 0.03
_SIGNAL_SHARES = {
    "page_view": 0.62,
    "email_open": 0.12,
    "cart_abandon": 0.05,
    "offer_sent": 0.04,
    "support_case": 0.01,
}
_MS_PER_DAY = 86_400_000
# Slices bound the memory and give the stream a seasonal shape; the cut depends only on
# `events` and `days`, never on `batch_size`, so batching does not change the stream.
_SLICE_EVENTS = 500_000
_SLICE_DAYS = 30.5


def _type_code(name: str) -> int:
    return EVENT_TYPES.index(name)


@dataclass(frozen=True)
class _Catalogue:
    """Products: their names, categories, prices and how popular they are."""

    names: pa.Array  # utf8, index = product id
    category: np.ndarray  # int, index into `category_names`
    price: np.ndarray  # float64
    category_names: pa.Array  # utf8
    popularity_cdf: np.ndarray  # over regular products
    by_category: np.ndarray  # regular product ids grouped by category
    category_start: np.ndarray  # offsets into `by_category`
    category_size: np.ndarray
    category_cdf: np.ndarray  # popularity of categories, for favourite picks
    standard: int
    premium: int


def _catalogue(rng: np.random.Generator) -> _Catalogue:
    n_cat = len(CATEGORIES)
    cat_weight = 1.0 / np.arange(1, n_cat + 1) ** 0.8
    cat_weight /= cat_weight.sum()
    category = rng.choice(n_cat, size=N_PRODUCTS, p=cat_weight)
    # The best-selling product is a grocery staple (coffee beans), bought again and again:
    # the example replenishment rules count it.
    category[0] = CATEGORIES.index("grocery")
    # Shelf prices end in .99; a few products are far pricier (furniture, electronics…).
    price = np.clip(rng.lognormal(math.log(18.0), 0.9, N_PRODUCTS), 1.0, 1_500.0)
    price = np.floor(price) + 0.99
    standard, premium = N_PRODUCTS, N_PRODUCTS + 1
    names = [f"p{i + 1:04d}" for i in range(N_PRODUCTS)] + [STANDARD_PLAN, PREMIUM_PLAN]
    subs = n_cat  # index of "subscriptions" in category_names
    popularity = 1.0 / np.arange(1, N_PRODUCTS + 1) ** 1.05
    order = np.argsort(category, kind="stable")
    size = np.bincount(category, minlength=n_cat)
    return _Catalogue(
        names=pa.array(names, pa.string()),
        category=np.concatenate([category, [subs, subs]]),
        price=np.concatenate([price, [99.0, 249.0]]),
        category_names=pa.array([*CATEGORIES, SUBSCRIPTIONS], pa.string()),
        popularity_cdf=np.cumsum(popularity) / popularity.sum(),
        by_category=order,
        category_start=np.concatenate([[0], np.cumsum(size)[:-1]]),
        category_size=size,
        category_cdf=np.cumsum(cat_weight),
        standard=standard,
        premium=premium,
    )


@dataclass(frozen=True)
class _Customers:
    """Per-customer behaviour, drawn once per seed and shared by events and traits."""

    n: int
    purchase_rate: np.ndarray
    browse_rate: np.ndarray
    email_rate: np.ndarray
    spend: np.ndarray  # basket multiplier
    whale: np.ndarray
    b2b: np.ndarray
    gift_p: np.ndarray
    coupon_p: np.ndarray
    plan_p: np.ndarray  # chance that an order is a plan (0 for non-subscribers)
    premium_p: np.ndarray
    fav: np.ndarray  # (n, 2) favourite categories
    active_from: np.ndarray  # ms since start
    active_to: np.ndarray


def _customers(n: int, span_ms: int, rng: np.random.Generator, cat: _Catalogue) -> _Customers:
    u = rng.random((n, 8))
    rate = rng.lognormal(0.0, 1.0, n)
    whale = u[:, 0] < 0.0015
    whale[0 : max(1, n // 2_000)] |= n >= 50  # a few whales even in small populations
    rate = np.where(whale, 4 * rate + 15, rate)
    window_shopper = u[:, 1] < 0.10
    browse = np.sqrt(rate) * rng.lognormal(0.0, 0.7, n) * np.where(window_shopper, 6.0, 1.0)
    rate = np.where(window_shopper & ~whale, rate * 0.1, rate)
    spend = rng.lognormal(0.0, 0.35, n) * np.where(whale, rng.uniform(4.0, 9.0, n), 1.0)
    b2b = u[:, 2] < 0.03
    gift_p = np.where(u[:, 3] < 0.04, 0.7, 0.05)
    coupon_p = np.where(u[:, 4] < 0.10, 0.5, 0.08)
    subscriber = u[:, 5] < 0.06
    plan_p = np.where(subscriber, 0.15, 0.0)
    premium_p = np.where(subscriber, 0.3, 0.0)
    fav = np.searchsorted(cat.category_cdf, rng.random((n, 2)) * cat.category_cdf[-1])
    fav = np.minimum(fav, len(CATEGORIES) - 1)
    # 40% were customers before the range starts; the rest join during it. A quarter churn.
    joins_late = u[:, 6] < 0.6
    active_from = np.where(joins_late, rng.uniform(0, 0.7, n), 0.0) * span_ms
    churns = u[:, 7] < 0.25
    left = span_ms - active_from
    active_to = np.where(churns, active_from + rng.uniform(0.2, 1.0, n) * left, span_ms)
    active_to = np.maximum(active_to, np.minimum(active_from + 3 * _MS_PER_DAY, span_ms))
    return _Customers(
        n=n,
        purchase_rate=rate,
        browse_rate=browse,
        email_rate=rng.lognormal(0.0, 0.8, n),
        spend=spend,
        whale=whale,
        b2b=b2b,
        gift_p=gift_p,
        coupon_p=coupon_p,
        plan_p=plan_p,
        premium_p=premium_p,
        fav=fav,
        active_from=active_from.astype(np.int64),
        active_to=active_to.astype(np.int64),
    )


def _customer_ids(n: int, id_type: IdType) -> pa.Array:
    numbers = pa.array(np.arange(1, n + 1, dtype=np.int64))
    if id_type == "int":
        return numbers
    if id_type != "string":
        raise ValueError(f"id_type must be 'string' or 'int', got {id_type!r}")
    return _prefixed("c", numbers, max(6, len(str(n))))


def _prefixed(prefix: str, numbers: pa.Array, width: int) -> pa.Array:
    """`prefix` + zero-padded number, computed in Arrow (Python strings would be too slow)."""
    digits = pc.utf8_lpad(pc.cast(numbers, pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    """`total` split by `weights` into integers that add up exactly (largest remainder)."""
    if total == 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    rest = total - int(out.sum())
    if rest:
        out[np.argsort(-(exact - out), kind="stable")[:rest]] += 1
    split: np.ndarray = out
    return split


def _season(day_of_year: np.ndarray) -> np.ndarray:
    """Shopping intensity over the year: a holiday peak in December and a dip in late summer."""
    peak = 0.6 * np.exp(-(((day_of_year - 345) / 25.0) ** 2))
    dip = -0.15 * np.exp(-(((day_of_year - 220) / 30.0) ** 2))
    return 1.0 + peak + dip


def _list_array(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def _lists_from_pairs(
    row: np.ndarray, value: np.ndarray, n_rows: int, width: int, names: pa.Array
) -> pa.Array:
    """One list per row of the distinct `value`s paired with it (sorted), as list<utf8>."""
    if len(row) == n_rows:  # one value per row (rows come from np.repeat): nothing to dedupe
        return _list_array(np.arange(n_rows + 1), names.take(pa.array(value)))
    key = np.unique(row.astype(np.int64) * width + value)
    counts = np.bincount(key // width, minlength=n_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return _list_array(offsets, names.take(pa.array(key % width)))


def _empty_lists(n: int) -> pa.Array:
    return _list_array(np.zeros(n + 1, dtype=np.int64), pa.array([], pa.string()))


class _Slicer:
    """Draws the events of one time slice at a time."""

    def __init__(
        self, customers: int, events: int, seed: int, start: datetime, days: int, id_type: IdType
    ) -> None:
        if customers < 1:
            raise ValueError(f"customers must be at least 1, got {customers}")
        if events < 0 or days < 1:
            raise ValueError(f"need events >= 0 and days >= 1, got {events} and {days}")
        self.rng = np.random.default_rng(seed)
        self.start_ms = int(start.timestamp() * 1000)
        self.span_ms = days * _MS_PER_DAY
        self.cat = _catalogue(self.rng)
        self.cust = _customers(customers, self.span_ms, self.rng, self.cat)
        self.ids = _customer_ids(customers, id_type)
        self.type_names = pa.array(EVENT_TYPES, pa.string())
        self.flag_names = pa.array(FLAGS, pa.string())
        n_slices = max(math.ceil(events / _SLICE_EVENTS), math.ceil(days / _SLICE_DAYS), 1)
        self.bounds = np.linspace(0, self.span_ms, n_slices + 1).astype(np.int64)
        mid_day = (self.bounds[:-1] + self.bounds[1:]) / 2 / _MS_PER_DAY
        day_of_year = (mid_day + start.timetuple().tm_yday - 1) % 365.25
        weight = _season(day_of_year) * np.diff(self.bounds)
        n_purchases = round(events * _PURCHASE_SHARE)
        n_refunds = round(n_purchases * _REFUND_RATE)
        n_signals = events - n_purchases - n_refunds
        self.purchases = _split(n_purchases, weight)
        self.refunds = np.minimum(_split(n_refunds, self.purchases.astype(float)), self.purchases)
        # Any refunds lost to the minimum go to signals so that exactly `events` come out.
        n_signals += n_refunds - int(self.refunds.sum())
        shares = np.array(list(_SIGNAL_SHARES.values()))
        per_type = _split(n_signals, shares)
        self.signals = {
            name: _split(int(k), weight) for name, k in zip(_SIGNAL_SHARES, per_type, strict=True)
        }
        self.next_order = 1
        self.next_event = 1
        self.pending: pa.Table | None = None  # refunds drawn but not yet due

    # -- drawing ---------------------------------------------------------------------------

    def _who_and_when(self, n: int, rate: np.ndarray, lo: int, hi: int) -> tuple[Any, Any]:
        """`n` (customer, ts) pairs in [lo, hi): customers by rate times time active in it."""
        c = self.cust
        overlap = np.clip(np.minimum(c.active_to, hi) - np.maximum(c.active_from, lo), 0, None)
        weight = rate * overlap
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # With very few customers nobody may be active in a slice; the count of events is
        # exact, so then everybody is taken as active rather than dropping events.
        nobody = weight.sum() <= 0
        if nobody:
            weight = rate
        counts = self.rng.multinomial(n, weight / weight.sum())
        who = np.repeat(np.arange(c.n), counts)
        a = np.full(n, lo) if nobody else np.maximum(c.active_from[who], lo)
        b = np.full(n, hi) if nobody else np.minimum(c.active_to[who], hi)
        when = a + (self.rng.random(n) * (b - a)).astype(np.int64)
        return who, when

    def _pick_products(self, who: np.ndarray) -> np.ndarray:
        """One product per entry: often from a favourite category, else by overall popularity."""
        cat, n = self.cat, len(who)
        u = self.rng.random((n, 3))
        favourite = self.cust.fav[who, (u[:, 0] < 0.5).astype(np.int64)]
        # Squaring skews picks towards each category's first (best-selling) products.
        within = (u[:, 1] ** 2 * cat.category_size[favourite]).astype(np.int64)
        from_fav = cat.by_category[cat.category_start[favourite] + within]
        popular = np.searchsorted(cat.popularity_cdf, self.rng.random(n) * cat.popularity_cdf[-1])
        popular = np.minimum(popular, N_PRODUCTS - 1)
        picked: np.ndarray = np.where(u[:, 2] < 0.55, from_fav, popular)
        return picked

    def _purchases(self, n: int, lo: int, hi: int) -> pa.Table:
        c, cat, rng = self.cust, self.cat, self.rng
        who, when = self._who_and_when(n, c.purchase_rate, lo, hi)
        order = np.argsort(when, kind="stable")  # order ids follow time
        who, when = who[order], when[order]
        n = len(who)
        u = rng.random((n, 4))
        plan = u[:, 0] < c.plan_p[who]
        lines = np.where(plan, 1, 1 + np.minimum(rng.poisson(0.6, n), 5))
        line_order = np.repeat(np.arange(n), lines)
        product = self._pick_products(who[line_order])
        premium = u[:, 1] < c.premium_p[who]
        plan_product = np.where(premium, cat.premium, cat.standard)
        product = np.where(plan[line_order], plan_product[line_order], product)
        # Business buyers order by the dozen; others mostly one of each.
        b2b_line = c.b2b[who[line_order]]
        extra = np.where(rng.random(len(product)) < 0.15, rng.geometric(0.5, len(product)), 0)
        qty = np.where(b2b_line, rng.integers(5, 61, len(product)), 1 + extra)
        qty = np.where(plan[line_order], 1, qty)
        value = np.bincount(line_order, weights=cat.price[product] * qty, minlength=n)
        coupon = u[:, 2] < c.coupon_p[who]
        gift = u[:, 3] < c.gift_p[who]
        # Plans and business orders sell at list price; consumers vary in what they pick.
        multiplier = np.where(plan | c.b2b[who], 1.0, c.spend[who]) * np.where(coupon, 0.9, 1.0)
        amount = np.maximum(np.round(value * multiplier, 2), 0.01)
        flag_bits = np.stack([gift, c.b2b[who], coupon], axis=1)
        flag_row, flag_col = np.nonzero(flag_bits)
        flag_offsets = np.concatenate([[0], np.cumsum(flag_bits.sum(axis=1))])
        order_no = np.arange(self.next_order, self.next_order + n, dtype=np.int64)
        self.next_order += n
        return pa.table(
            {
                "customer": pa.array(who),
                "ts": pa.array(when),
                "event_type": pa.array(np.full(n, _type_code("purchase"), dtype=np.int8)),
                "amount": pa.array(amount),
                "order_id": _prefixed("o", pa.array(order_no), 9),
                "product_ids": _lists_from_pairs(line_order, product, n, len(cat.price), cat.names),
                "categories": _lists_from_pairs(
                    line_order, cat.category[product], n, len(CATEGORIES) + 1, cat.category_names
                ),
                "quantity": pa.array(
                    np.bincount(line_order, weights=qty, minlength=n).astype(np.int64)
                ),
                "flags": _list_array(flag_offsets, self.flag_names.take(pa.array(flag_col))),
            }
        )

    def _refunds_of(self, purchases: pa.Table, k: int) -> pa.Table:
        """Refunds of `k` of these orders, days later (never past the end of the range)."""
        rng = self.rng
        chosen = np.sort(rng.choice(purchases.num_rows, size=k, replace=False))
        base = purchases.take(pa.array(chosen))
        order_ts = base["ts"].to_numpy()
        delay = np.maximum(rng.exponential(7 * _MS_PER_DAY, k), 3_600_000).astype(np.int64)
        ts = np.minimum(order_ts + delay, self.span_ms - 1)
        amount = base["amount"].to_numpy()
        # Most refunds return the whole order, some only part of it.
        part = np.where(rng.random(k) < 0.8, 1.0, rng.uniform(0.2, 0.8, k))
        refund_amount = np.maximum(np.round(amount * part, 2), 0.01)
        return (
            base.set_column(1, "ts", pa.array(ts))
            .set_column(2, "event_type", pa.array(np.full(k, _type_code("refund"), dtype=np.int8)))
            .set_column(3, "amount", pa.array(refund_amount))
            .set_column(8, "flags", _empty_lists(k))
        )

    def _signals(self, name: str, n: int, lo: int, hi: int) -> pa.Table:
        c = self.cust
        rate = {
            "page_view": c.browse_rate,
            "email_open": c.email_rate,
            "cart_abandon": c.browse_rate + c.purchase_rate,
            "support_case": c.purchase_rate,
            "offer_sent": np.ones(c.n),
        }[name]
        who, when = self._who_and_when(n, rate, lo, hi)
        n = len(who)
        # Product views and abandoned carts name products; the other signals do not.
        if name in ("page_view", "cart_abandon"):
            per = np.ones(n, dtype=np.int64)
            if name == "cart_abandon":
                per = 1 + np.minimum(self.rng.poisson(0.8, n), 3)
            row = np.repeat(np.arange(n), per)
            product = self._pick_products(who[row])
            products = _lists_from_pairs(row, product, n, len(self.cat.price), self.cat.names)
            categories = _lists_from_pairs(
                row, self.cat.category[product], n, len(CATEGORIES) + 1, self.cat.category_names
            )
        else:
            products = categories = _empty_lists(n)
        return pa.table(
            {
                "customer": pa.array(who),
                "ts": pa.array(when),
                "event_type": pa.array(np.full(n, _type_code(name), dtype=np.int8)),
                "amount": pa.nulls(n, pa.float64()),
                "order_id": pa.nulls(n, pa.string()),
                "product_ids": products,
                "categories": categories,
                "quantity": pa.nulls(n, pa.int64()),
                "flags": _empty_lists(n),
            }
        )

    def slice(self, i: int) -> pa.Table:
        """All events of slice `i`, in time order, in the public schema."""
        lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
        purchases = self._purchases(int(self.purchases[i]), lo, hi)
        parts = [purchases]
        parts += [self._signals(name, int(k[i]), lo, hi) for name, k in self.signals.items()]
        refunds = self._refunds_of(purchases, min(int(self.refunds[i]), purchases.num_rows))
        pending = refunds if self.pending is None else pa.concat_tables([self.pending, refunds])
        due = pc.less(pending["ts"], hi)
        parts.append(pending.filter(due))
        self.pending = pending.filter(pc.invert(due))
        table = pa.concat_tables(parts)
        # Stable: a refund at the same millisecond as its order stays after it.
        table = table.take(pc.sort_indices(table["ts"]))
        return self._publish(table)

    def _publish(self, t: pa.Table) -> pa.Table:
        n = t.num_rows
        ids = np.arange(self.next_event, self.next_event + n, dtype=np.int64)
        self.next_event += n
        ts = pc.add(t["ts"], self.start_ms).cast(pa.int64()).combine_chunks()
        return pa.Table.from_arrays(
            [
                self.ids.take(t["customer"]),
                ts.view(pa.timestamp("ms", tz="UTC")),
                self.type_names.take(t["event_type"]),
                t["amount"],
                t["order_id"],
                t["product_ids"],
                t["categories"],
                t["quantity"],
                _prefixed("e", pa.array(ids), 10),
                t["flags"],
            ],
            schema=pa.schema([SCHEMA.field(0).with_type(self.ids.type), *list(SCHEMA)[1:]]),
        )


def purchase_events(
    customers: int = 10_000,
    events: int = 200_000,
    *,
    seed: int = 7,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    days: int = 365,
    batch_size: int = 65_536,
    id_type: IdType = "string",
) -> Iterator[pa.RecordBatch]:
    """Yield exactly `events` events of `customers` customers in time order, `batch_size` a batch.

    Columns: customer_id (utf8 "c000042", or int64 42 with `id_type="int"`), ts
    (timestamp[ms, UTC], within `days` days from `start`), event_type, amount (2 decimals,
    null for signals), order_id (null for signals; a refund names an earlier order of the
    same customer), product_ids, categories, quantity, event_id (unique), flags.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    slicer = _Slicer(customers, events, seed, start, days, id_type)
    carry: pa.Table | None = None
    for i in range(len(slicer.bounds) - 1):
        table = slicer.slice(i)
        if carry is not None and carry.num_rows:
            table = pa.concat_tables([carry, table])
        table = table.combine_chunks()
        full = table.num_rows - table.num_rows % batch_size
        yield from table.slice(0, full).to_batches(max_chunksize=batch_size)
        carry = table.slice(full)
    if carry is not None and carry.num_rows:
        yield from carry.combine_chunks().to_batches(max_chunksize=batch_size)


def write_parquet(
    path: str | Path,
    customers: int = 10_000,
    events: int = 200_000,
    *,
    seed: int = 7,
    id_type: IdType = "string",
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    days: int = 365,
) -> Path:
    """Write `purchase_events(...)` to one Parquet file (streamed, one row group per batch)."""
    path = Path(path)
    schema = SCHEMA if id_type == "string" else SCHEMA.set(0, pa.field("customer_id", pa.int64()))
    with pq.ParquetWriter(path, schema) as writer:
        for batch in purchase_events(
            customers, events, seed=seed, start=start, days=days, id_type=id_type
        ):
            writer.write_batch(batch)
    return path


def traits_table(customers: int, seed: int = 7, id_type: IdType = "string") -> pa.Table:
    """Contact traits for the customers of `purchase_events` with the same seed.

    Columns: customer_id, industry (string, null when unknown), company_size (int64),
    newsletter (bool). Business buyers of the event stream work at larger companies in
    trade industries, so traits and behaviour agree.
    """
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng)
    cust = _customers(customers, 365 * _MS_PER_DAY, rng, cat)
    # A separate stream, so drawing traits never shifts the events of the same seed.
    trng = np.random.default_rng([seed, 1])
    n = customers
    industry = trng.integers(0, len(INDUSTRIES), n)
    trade = np.array([INDUSTRIES.index(x) for x in ("manufacturing", "wholesale", "logistics")])
    industry = np.where(cust.b2b, trade[trng.integers(0, len(trade), n)], industry)
    known = cust.b2b | (trng.random(n) < 0.85)
    size = np.maximum(1, trng.lognormal(math.log(12), 1.4, n)).astype(np.int64)
    size = np.where(cust.b2b, size * 20 + 100, size)
    newsletter = trng.random(n) < np.clip(0.25 + 0.1 * np.log1p(cust.email_rate), 0, 1)
    return pa.table(
        {
            "customer_id": _customer_ids(n, id_type),
            "industry": pc.if_else(
                pa.array(known),
                pa.array(INDUSTRIES, pa.string()).take(pa.array(industry)),
                pa.scalar(None, pa.string()),
            ),
            "company_size": pa.array(size),
            "newsletter": pa.array(newsletter),
        }
    )


# Segment e-commerce event names for our event types. Signals use Title Case names whose
# snake_case is the signal name ("Page View" -> page_view), so both forms mean the same.
_SEGMENT_NAMES = {
    "purchase": "Order Completed",
    "refund": "Order Refunded",
    **{name: name.replace("_", " ").title() for name in EVENT_TYPES[2:]},
}


def _iso_ms(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_messages(
    customers: int = 1_000,
    events: int = 20_000,
    seed: int = 7,
    *,
    traits: bool = False,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    days: int = 365,
) -> Iterator[bytes]:
    """The stream of `purchase_events` as JSON messages, for `Engine.ingest_json` and Kafka.

    About half the messages use the flat form (with `ts` as ISO text or epoch ms) and half
    the Segment e-commerce form (`Order Completed` with `products[]`, `Order Refunded`,
    other signals by name), chosen by a seeded draw, per docs/api.md. With `traits=True`,
    an identify (or flat trait upsert) per customer of `traits_table` comes first.
    """
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    rng = np.random.default_rng([seed, 2])
    if traits:
        for row in traits_table(customers, seed).to_pylist():
            who = row.pop("customer_id")
            if rng.random() < 0.5:
                yield dumps({"type": "identify", "userId": who, "traits": row}).encode()
            else:
                yield dumps({"type": "traits", "customer_id": who, "traits": row}).encode()
    cat = _catalogue(np.random.default_rng(seed))
    category_of = dict(
        zip(cat.names.to_pylist(), cat.category_names.take(pa.array(cat.category)).to_pylist(),
            strict=True)
    )  # fmt: skip
    price_of = dict(zip(cat.names.to_pylist(), cat.price.tolist(), strict=True))
    for batch in purchase_events(customers, events, seed=seed, start=start, days=days):
        form = rng.random(batch.num_rows)
        for row, f in zip(batch.to_pylist(), form.tolist(), strict=True):
            if f < 0.5:
                yield dumps(_flat(row, epoch=f < 0.25)).encode()
            else:
                yield dumps(_segment(row, category_of, price_of)).encode()


def _flat(row: dict[str, Any], *, epoch: bool) -> dict[str, Any]:
    ts: datetime = row["ts"]
    out = {k: v for k, v in row.items() if v is not None and v != []}
    out["ts"] = int(ts.timestamp() * 1000) if epoch else _iso_ms(ts)
    return out


def _segment(
    row: dict[str, Any], category_of: dict[str, str], price_of: dict[str, float]
) -> dict[str, Any]:
    kind = row["event_type"]
    props: dict[str, Any] = {}
    products = row["product_ids"] or []
    if kind in ("purchase", "refund"):
        props["order_id"] = row["order_id"]
        props["total"] = row["amount"]
        # The stream keeps one quantity per order; the first line carries what is left.
        rest = max(1, (row["quantity"] or len(products)) - (len(products) - 1))
        props["products"] = [
            {
                "product_id": p,
                "category": category_of.get(p),
                "quantity": rest if i == 0 else 1,
                "price": price_of.get(p),
            }
            for i, p in enumerate(products)
        ]
        if row["flags"]:
            props["flags"] = row["flags"]
    elif products:
        props["products"] = [{"product_id": p, "category": category_of.get(p)} for p in products]
    return {
        "type": "track",
        "event": _SEGMENT_NAMES[kind],
        "userId": row["customer_id"],
        "timestamp": _iso_ms(row["ts"]),
        "messageId": row["event_id"],
        "properties": props,
    }
