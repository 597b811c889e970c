"""Order lines to order events, for exports with one row per order line.

The engine counts each purchase event as an order, so lines are first grouped into one
event per (customer_id, order_id, event_type): amounts and quantities summed, products,
categories and flags collected into lists, the earliest line time kept. Grouping is a
pyarrow `group_by` per batch. The lines of one order must be adjacent in the file (as
in any export ordered by order, or by time when the lines share the order's time);
the last order of each batch is held back until the next batch shows whether it goes on.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from segstream.file_inputs import InputError

#: Row number of the (first) line in its file; carried so rejected events can be traced back.
SOURCE_ROW = "__source_row"
#: Number of input lines behind an event.
LINES = "__lines"

_LIST_COLUMNS = ("product_ids", "categories", "flags")


class LineItemsError(InputError):
    """Line items of one order are not adjacent in the file, so they cannot be grouped cheaply."""


class LineItemGrouper:
    """Groups the lines of one file, batch by batch; call `flush` at the end of the file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._carry: pa.Table | None = None
        # Keys of the orders emitted by the previous push: a bounded check of adjacency.
        self._previous: pa.Table | None = None

    def push(self, batch: pa.Table) -> list[pa.Table]:
        """Add the next batch (with a SOURCE_ROW column); return the events that are complete."""
        names = batch.column_names
        if "order_id" not in names:
            raise InputError(f"{self._path}: line items need an order_id column to group by")
        for name in _LIST_COLUMNS:
            if name in names and pa.types.is_list(batch.schema.field(name).type):
                raise InputError(
                    f"{self._path}: with line items, {name} must hold one value per line "
                    f"(got {batch.schema.field(name).type})"
                )
        table = (
            batch
            if self._carry is None
            else pa.concat_tables([self._carry, batch], promote_options="permissive")
        )
        self._carry = None
        singles, lines = _split_ungroupable(table)
        if lines.num_rows:
            open_order = _same_key_as_last(lines)
            self._carry = lines.filter(open_order)
            lines = lines.filter(pc.invert(open_order))
        out = [singles] if singles.num_rows else []
        if lines.num_rows:
            self._check_adjacent(lines)
            grouped = group_lines(lines)
            self._previous = grouped.select(_keys(grouped.column_names))
            out.append(grouped)
        return out

    def flush(self) -> list[pa.Table]:
        """Group the order held back at the end of the file."""
        if self._carry is None or self._carry.num_rows == 0:
            return []
        carry, self._carry = self._carry, None
        self._check_adjacent(carry)
        return [group_lines(carry)]

    def _check_adjacent(self, lines: pa.Table) -> None:
        previous = self._previous
        if previous is None:
            return
        # Order ids first (one vectorised lookup); the exact key join runs only on the hits.
        hits = lines.filter(pc.is_in(lines["order_id"], value_set=previous["order_id"]))
        if hits.num_rows == 0:
            return
        keys = _keys(hits.column_names)
        again = hits.join(previous, keys=keys, join_type="inner")
        if again.num_rows:
            row = again.slice(0, 1).to_pylist()[0]
            raise LineItemsError(
                f"{self._path}: order {row['order_id']!r} of customer {row['customer_id']!r} "
                f"goes on at row {row[SOURCE_ROW]} after other orders; line items must be "
                "adjacent (sort the file by customer_id, order_id)"
            )


def _keys(names: list[str]) -> list[str]:
    return [k for k in ("customer_id", "order_id", "event_type") if k in names]


def _split_ungroupable(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Rows without an order or a customer go to the engine one by one (it rejects the latter)."""
    valid = pc.and_(pc.is_valid(table["order_id"]), pc.is_valid(table["customer_id"]))
    if pc.all(valid).as_py():
        return table.schema.empty_table(), table
    return table.filter(pc.invert(valid)), table.filter(valid)


def _same_key_as_last(table: pa.Table) -> pa.ChunkedArray:
    """Rows of the last row's order: it may continue in the next batch."""
    last = table.num_rows - 1
    mask = None
    for key in _keys(table.column_names):
        column = table[key]
        value = column[last]
        part = pc.equal(column, value) if value.is_valid else pc.is_null(column)
        mask = part if mask is None else pc.and_(mask, part)
    assert mask is not None
    return pc.fill_null(mask, False)


def group_lines(lines: pa.Table) -> pa.Table:
    """One event per (customer_id, order_id, event_type) of the given lines, in first-seen order."""
    names = lines.column_names
    # (column or no columns, function[, options]), as Table.group_by().aggregate takes them.
    aggregations: list[tuple[str | list[str], str] | tuple[str, str, pc.CountOptions]] = [
        ("ts", "min"),
        (SOURCE_ROW, "min"),
        ([], "count_all"),
    ]
    renames = {"ts_min": "ts", f"{SOURCE_ROW}_min": SOURCE_ROW, "count_all": LINES}
    if "amount" in names:
        aggregations.append(("amount", "sum"))
        renames["amount_sum"] = "amount"
    if "quantity" in names:
        aggregations.append(("quantity", "sum"))
        renames["quantity_sum"] = "quantity"
    if "event_id" in names:
        # The smallest line id: deterministic, so a replay dedupes on the same key.
        aggregations.append(("event_id", "min"))
        renames["event_id_min"] = "event_id"
    only_valid = pc.CountOptions(mode="only_valid")
    for name in _LIST_COLUMNS:
        if name in names:
            aggregations.append((name, "distinct", only_valid))
            renames[f"{name}_distinct"] = name
    grouped = lines.group_by(_keys(names), use_threads=False).aggregate(aggregations)
    grouped = grouped.rename_columns([renames.get(n, n) for n in grouped.column_names])
    if "quantity" not in names:
        # Without quantities every line is one item, as it would be ungrouped.
        grouped = grouped.append_column("quantity", grouped[LINES])
    return grouped
