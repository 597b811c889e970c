"""The package as a user meets it: the command's entry points and a light import."""

from __future__ import annotations

import subprocess
import sys

import segstream


def test_python_dash_m_and_version_flag_print_the_package_version() -> None:
    argv = [sys.executable, "-m", "segstream", "--version"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"segstream {segstream.__version__}"


def test_importing_segstream_does_not_import_the_service_stack() -> None:
    code = (
        "import sys, segstream; "
        "heavy = [m for m in ('faust', 'aiokafka', 'polars', 'duckdb') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_list_of_event_columns_is_the_engines() -> None:
    from segstream import _segstream, file_inputs, generate

    assert list(file_inputs.EVENT_COLUMNS) == list(_segstream.EVENT_COLUMNS)
    assert generate.SCHEMA.names == list(_segstream.EVENT_COLUMNS)
