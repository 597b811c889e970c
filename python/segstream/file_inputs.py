"""Event files for bulk runs: resolve paths, directories and globs, and stream them as batches.

Parquet, Arrow IPC and CSV files are scanned with `pyarrow.dataset`, JSON lines with
pyarrow's streaming JSON reader; either way only the event columns are decoded (renamed
from the user's names on the way), in bounded batches, so memory does not grow with the
size of the input.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson

from segstream import _segstream
from segstream.errors import InvalidInputError, SegstreamError

#: The event columns of DESIGN.md, in the order it documents them (the engine's list).
EVENT_COLUMNS: tuple[str, ...] = tuple(_segstream.EVENT_COLUMNS)

#: Columns every event file must have (under these names or mapped to them).
REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "ts")

#: Input formats by file name ending; longest endings are tried first.
FORMAT_BY_SUFFIX: dict[str, str] = {
    ".parquet": "parquet",
    ".parq": "parquet",
    ".pq": "parquet",
    ".arrow": "ipc",
    ".feather": "ipc",
    ".ipc": "ipc",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.zst": "csv",
    ".tsv": "tsv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".jsonl.gz": "json",
    ".ndjson.gz": "json",
}
FORMATS: tuple[str, ...] = ("parquet", "ipc", "csv", "tsv", "json")

# Rows per batch decoded by pyarrow's scanner (about a Parquet row group).
_SCAN_BATCH = 1 << 16
# Parquet row groups per scan (see _decoded). Fewer bound memory tighter but leave the
# decoding threads idle at each scan's end: on the benchmark's history, 32 took 51 s and
# 1.3 GiB at peak, 128 took 43 s and 1.5 GiB, one scan of the whole file 46 s and 2.4 GiB.
_ROW_GROUPS_PER_SCAN = 128
# Text formats have no row count in a footer; the first bytes give an estimate for progress.
_SAMPLE_BYTES = 1 << 20


#: How CSV and JSON readers type customer_id, order_id and event_id (`--id-type`).
ID_TYPES: tuple[str, ...] = ("text", "int")
#: Columns read as ids: text by default, so `00123` and `123` stay two customers.
ID_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "event_id")


@dataclass(frozen=True)
class ReadOptions:
    """How text formats (CSV, JSON lines) type the columns they cannot tell from the file."""

    #: "text": ids as text, as the export wrote them; "int": as 64-bit integers.
    id_type: str = "text"

    def id_arrow_type(self) -> pa.DataType:
        return pa.int64() if self.id_type == "int" else pa.string()


class InputError(SegstreamError):
    """An input file that cannot be found, recognised or decoded; the message names the file."""


@dataclass(frozen=True)
class InputFile:
    """One file of a bulk run."""

    path: str
    format: str
    size: int
    #: Row count if the format stores it (Parquet, Arrow IPC), else an estimate or None.
    rows_hint: int | None = field(default=None, compare=False)


def detect_format(path: str) -> str | None:
    """The input format implied by the file name, or None if the ending is not known."""
    name = path.lower()
    for suffix in sorted(FORMAT_BY_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMAT_BY_SUFFIX[suffix]
    return None


def resolve(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    input_format: str | None = None,
) -> list[InputFile]:
    """Expand files, directories (recursively) and glob patterns into the list of input files.

    Raises FileNotFoundError naming a path that does not exist or a pattern that matches
    nothing, and InputError for a file whose format cannot be told from its name.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; use one of {', '.join(FORMATS)}")
    found: list[str] = []
    for raw in paths:
        path = os.fspath(raw)
        if glob.has_magic(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise FileNotFoundError(errno.ENOENT, "no file matches the pattern", path)
            for match in matches:
                found.extend(_expand_dir(match, input_format) if os.path.isdir(match) else [match])
        elif os.path.isdir(path):
            files = _expand_dir(path, input_format)
            if not files:
                raise InputError(
                    f"{path}: the directory holds no Parquet, Arrow, CSV or JSON files"
                )
            found.extend(files)
        elif os.path.exists(path):
            found.append(path)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
    return [_describe(path, input_format) for path in dict.fromkeys(found)]


def _expand_dir(path: str, input_format: str | None) -> list[str]:
    """Data files under a directory, skipping hidden and `_`-prefixed files as pyarrow does."""
    selector = pafs.FileSelector(os.path.abspath(path), recursive=True)
    infos = pafs.LocalFileSystem().get_file_info(selector)
    files = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = os.path.relpath(info.path, os.path.abspath(path))
        if any(part.startswith((".", "_")) for part in rel.split(os.sep)):
            continue
        if input_format is not None or detect_format(info.path) is not None:
            files.append(os.path.join(path, rel))
    return sorted(files)


def _describe(path: str, input_format: str | None) -> InputFile:
    fmt = input_format or detect_format(path)
    if fmt is None:
        known = ", ".join(sorted(FORMAT_BY_SUFFIX))
        raise InputError(
            f"{path}: cannot tell the format from the name (known endings: {known}); "
            "pass the format explicitly"
        )
    size = os.path.getsize(path)
    return InputFile(path=path, format=fmt, size=size, rows_hint=_rows_hint(path, fmt, size))


def _rows_hint(path: str, fmt: str, size: int) -> int | None:
    """Rows in the file: exact from the footer of binary formats, sampled for text formats."""
    try:
        if fmt in ("parquet", "ipc"):
            return int(_dataset(path, fmt).count_rows())
        if path.lower().endswith((".gz", ".bz2", ".zst")) or size == 0:
            return None
        with open(path, "rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
        lines = sample.count(b"\n")
        if lines == 0:
            return None
        return max(1, round(lines * size / len(sample)) - (1 if fmt in ("csv", "tsv") else 0))
    except (OSError, pa.ArrowException):
        # The hint is for the progress bar only; a bad file is reported when it is read.
        return None


def _file_format(
    fmt: str,
    columns: Mapping[str, str] | None = None,
    options: ReadOptions | None = None,
) -> ds.FileFormat | str:
    if fmt == "parquet":
        # Pre-buffering fetches whole row groups ahead: a win on object stores, on a local
        # disk only memory (about 200 MiB more at the benchmark's size, no faster).
        options = ds.ParquetFragmentScanOptions(pre_buffer=False)
        return ds.ParquetFileFormat(default_fragment_scan_options=options)
    if fmt in ("csv", "tsv"):
        # An empty field is NULL, as in DuckDB and Polars: an empty event_id or order_id
        # must not become a real key that every such row shares.
        return ds.CsvFileFormat(
            parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True, column_types=_csv_types(columns, options)
            ),
        )
    return fmt


def _csv_types(
    columns: Mapping[str, str] | None, options: ReadOptions | None
) -> dict[str, pa.DataType]:
    """Types CSV must not guess, by the file's column names.

    Ids are text (or, by choice, integers): guessed, `00123` would become the integer
    123, one customer with `123`. `ts` is text, parsed value by value by the engine (a
    guessed timestamp type fails the whole file at the first value that differs). Text
    columns are declared text, so an invalid UTF-8 byte is an error naming the row, not
    a binary column. `event_type` is a dictionary: its few values are read once each.
    """
    options = options or ReadOptions()
    names = dict(columns or {})
    types: dict[str, pa.DataType] = {}
    for name in ID_COLUMNS:
        types[names.get(name, name)] = options.id_arrow_type()
    types[names.get("ts", "ts")] = pa.string()
    types[names.get("event_type", "event_type")] = pa.dictionary(pa.int32(), pa.string())
    for name in ("product_ids", "categories", "flags"):
        types[names.get(name, name)] = pa.string()
    return types


def _dataset(
    path: str,
    fmt: str,
    columns: Mapping[str, str] | None = None,
    options: ReadOptions | None = None,
) -> ds.Dataset:
    return ds.dataset(path, format=_file_format(fmt, columns, options))


# Arrow's JSON reader fixes the columns and their types from the first block (1 MiB) and
# fails when a later block disagrees: a file that opens with page views has `amount` null
# or absent there (JSON writers often leave out null keys). The event columns' types are
# therefore declared up front; a column that never appears reads as all null, which the
# engine treats like an absent one.
_JSON_TYPES: dict[str, pa.DataType] = {
    "event_type": pa.string(),
    "amount": pa.float64(),
    "product_ids": pa.list_(pa.string()),
    "categories": pa.list_(pa.string()),
    "quantity": pa.int64(),
    "flags": pa.list_(pa.string()),
}


def _json_schema(
    path: str, columns: Mapping[str, str] | None, block_size: int, options: ReadOptions
) -> pa.Schema:
    """The first block's inferred schema, with the event columns' types made stable.

    Ids written as JSON strings stay text whatever they hold; ids written as numbers are
    read as integers and made text after (see `_json_batches`), unless `--id-type int`.
    """
    with pa.input_stream(path, compression="detect") as stream:
        inferred = pajson.open_json(
            stream, read_options=pajson.ReadOptions(block_size=block_size)
        ).schema
    fields = {name: inferred.field(name) for name in inferred.names}
    for name in EVENT_COLUMNS:
        source = (columns or {}).get(name, name)
        kind = fields[source].type if source in fields else None
        if name == "ts":
            if kind is not None and (pa.types.is_timestamp(kind) or pa.types.is_null(kind)):
                # Inferred from whole seconds in the first block, a later "…:05.250Z" would
                # not parse; as text it always does, and becomes timestamp[ms] later.
                fields[source] = pa.field(source, pa.string())
        elif name in ID_COLUMNS:
            if kind is None or pa.types.is_null(kind):
                fields[source] = pa.field(source, options.id_arrow_type())
        elif name in _JSON_TYPES and (kind is None or pa.types.is_null(kind)):
            fields[source] = pa.field(source, _JSON_TYPES[name])
    return pa.schema(list(fields.values()))


def _as_id_type(array: pa.Array, name: str, path: str, options: ReadOptions) -> pa.Array:
    """An id column in the type asked for (JSON numbers made text, or text made integers)."""
    want = options.id_arrow_type()
    if array.type == want or pa.types.is_null(array.type):
        return array
    try:
        return pc.cast(array, want)
    except pa.ArrowInvalid as exc:
        raise InputError(
            f"{path}: column {name}: cannot read as {options.id_type} ids ({exc}); "
            "use --id-type text"
        ) from None


def _json_batches(
    path: str,
    columns: Mapping[str, str] | None,
    batch_size: int,
    wanted: Collection[str] | None,
    options: ReadOptions,
) -> Iterator[pa.RecordBatch]:
    """JSON lines through pyarrow's streaming JSON reader, with stable column types.

    (pyarrow's dataset JSON reader ignores an explicit schema, so it cannot be used here.)
    """
    # Blocks of about `batch_size` rows of a few hundred bytes each.
    block_size = max(1 << 20, min(64 << 20, batch_size * 256))
    schema = _json_schema(path, columns, block_size, options)
    sources = projection(schema, columns, path, wanted)
    parse = pajson.ParseOptions(explicit_schema=schema)
    read = pajson.ReadOptions(block_size=block_size)
    with pa.input_stream(path, compression="detect") as stream:
        for batch in pajson.open_json(stream, read_options=read, parse_options=parse):
            if batch.num_rows:
                arrays = [
                    _as_id_type(batch.column(source), name, path, options)
                    if name in ID_COLUMNS
                    else batch.column(source)
                    for name, source in sources.items()
                ]
                yield pa.RecordBatch.from_arrays(arrays, names=list(sources))


def projection(
    schema: pa.Schema,
    columns: Mapping[str, str] | None,
    path: str,
    wanted: Collection[str] | None = None,
) -> dict[str, str]:
    """Engine name -> the file's column name, for each event column present in the file
    (and in `wanted`, when given: columns nobody reads are not decoded).

    `columns` maps engine names to the file's names; a mapped name that is not in the
    file is an error, because a typo there would otherwise silently drop a column.
    """
    columns = dict(columns or {})
    names = set(schema.names)
    out: dict[str, str] = {}
    for engine_name in EVENT_COLUMNS:
        source = columns.get(engine_name, engine_name)
        if source in names:
            if wanted is None or engine_name in wanted:
                out[engine_name] = source
        elif engine_name in columns:
            raise InputError(
                f"{path}: no column {source!r} (mapped to {engine_name}); "
                f"the file has {', '.join(schema.names)}"
            )
    missing = [name for name in REQUIRED_COLUMNS if name not in out]
    if missing:
        raise InputError(
            f"{path}: no {' and no '.join(missing)} column (the file has "
            f"{', '.join(schema.names)}); map yours, e.g. --map {missing[0]}=YOUR_COLUMN"
        )
    return out


def check_column_map(columns: Mapping[str, str] | None) -> None:
    """Reject a column map whose keys are not event columns (the usual mistake: reversed pairs)."""
    for engine_name, source in (columns or {}).items():
        if engine_name not in EVENT_COLUMNS:
            hint = " (pairs are ENGINE_NAME=YOUR_NAME)" if source in EVENT_COLUMNS else ""
            raise InvalidInputError(
                f"column map: {engine_name!r} is not an event column{hint}; "
                f"event columns are {', '.join(EVENT_COLUMNS)}"
            )


def read_batches(
    file: InputFile,
    columns: Mapping[str, str] | None,
    batch_size: int,
    wanted: Collection[str] | None = None,
    options: ReadOptions | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream one file as batches of `batch_size` rows (the last one fewer), renamed to
    engine names; with `wanted`, only those event columns.

    Decoding runs on pyarrow's threads (the GIL is released); errors name the file (and
    the row, where the decoder tells it).
    """
    options = options or ReadOptions()
    try:
        yield from _rebatch(_decoded(file, columns, batch_size, wanted, options), batch_size)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{file.path}: cannot read as {file.format}: {_clean(exc)}") from exc


def is_empty_file_error(exc: BaseException) -> bool:
    """True for the decoders' complaint about a file with no content at all."""
    text = str(exc)
    return "Empty CSV file" in text or "empty file" in text.lower()


def _clean(exc: BaseException) -> str:
    """The decoder's message without pyarrow's preamble about creating a dataset."""
    text = str(exc)
    marker = "Could not open CSV input source"
    if marker in text:
        text = text[text.index(marker) :].split(": ", 1)[-1]
    return text.replace("In CSV column", "column").replace("Row #", "line ")


def _decoded(
    file: InputFile,
    columns: Mapping[str, str] | None,
    batch_size: int,
    wanted: Collection[str] | None,
    options: ReadOptions,
) -> Iterator[pa.RecordBatch]:
    if file.format == "json":
        yield from _json_batches(file.path, columns, batch_size, wanted, options)
        return
    dataset = _dataset(file.path, file.format, columns, options)
    sources = projection(dataset.schema, columns, file.path, wanted)
    # Projection and renaming in one: only the event columns are decoded.
    proj = {name: ds.field(source) for name, source in sources.items()}
    # Small scanner batches with a short readahead, coalesced by _rebatch: the scanner
    # reads `batch_readahead` batches ahead before it yields the first, so with 1Mi-row
    # batches it would decode 4Mi rows (seconds, hundreds of MiB) before any ingest.
    scan = {
        "columns": proj,
        "batch_size": min(batch_size, _SCAN_BATCH),
        "use_threads": True,
        "batch_readahead": 4,
    }
    if file.format != "parquet":
        yield from dataset.scanner(**scan, fragment_readahead=1).to_batches()
        return
    # A Parquet file is scanned in runs of row groups: one scan of a whole file keeps
    # decoding ahead of a slower consumer without bound (1 GiB ahead within 200 batches of
    # the benchmark's history), while a scan of a run ends where the run does.
    for fragment in dataset.get_fragments():
        groups = [g.id for g in fragment.row_groups]
        for start in range(0, len(groups), _ROW_GROUPS_PER_SCAN):
            part = fragment.subset(row_group_ids=groups[start : start + _ROW_GROUPS_PER_SCAN])
            yield from part.to_batches(**scan)


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of `size` rows out of batches of any size.

    Readers cut where the file does (a Parquet row group, a JSON block), often far below
    `size`; the engine evaluates every customer a batch touches once per batch, so fewer,
    larger batches mean less work. Concatenating costs one copy of the rows.
    """
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        if not pending and batch.num_rows >= size:
            yield batch
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows >= size:
            yield _concat(pending)
            pending, rows = [], 0
    if pending:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
