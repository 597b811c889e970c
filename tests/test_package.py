"""The package as a user meets it: the command's entry points and a light import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import segstream


def test_python_dash_m_and_version_flag_print_the_package_version() -> None:
    argv = [sys.executable, "-m", "segstream", "--version"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"segstream {segstream.__version__}"


#: What `import segstream` must not pull in: the service's stack (an extra), the dev-only
#: data frames, and the parts of pyarrow and of segstream that only bulk runs need.
HEAVY = (
    "faust",
    "aiokafka",
    "polars",
    "duckdb",
    "pandas",
    "pyarrow.compute",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "segstream.bulk",
    "segstream.service",
)


def test_importing_segstream_does_not_import_the_service_stack_or_the_bulk_runner() -> None:
    code = f"import sys, segstream; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_segment_files_is_loaded_on_first_use() -> None:
    from segstream import bulk

    assert segstream.segment_files is bulk.segment_files
    with pytest.raises(AttributeError, match="no attribute 'segment_filez'"):
        segstream.segment_filez  # noqa: B018


def test_every_list_of_event_columns_is_the_engines() -> None:
    from segstream import _segstream, file_inputs, generate

    assert list(file_inputs.EVENT_COLUMNS) == list(_segstream.EVENT_COLUMNS)
    assert generate.SCHEMA.names == list(_segstream.EVENT_COLUMNS)
