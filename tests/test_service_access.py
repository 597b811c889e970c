"""Who may use the worker's views: the token check and the refusal to listen openly without one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from segstream.service.access import bearer_allows, customer_id_problem
from segstream.service.settings import ServiceSettings

TOKEN = "0123456789abcdef-token"


def test_bearer_token_must_match_exactly() -> None:
    assert bearer_allows(f"Bearer {TOKEN}", TOKEN)
    assert bearer_allows(f"bearer {TOKEN}", TOKEN)  # the scheme is case-insensitive
    assert not bearer_allows(None, TOKEN)
    assert not bearer_allows("", TOKEN)
    assert not bearer_allows(f"Basic {TOKEN}", TOKEN)
    assert not bearer_allows(f"Bearer {TOKEN}x", TOKEN)
    assert not bearer_allows(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert bearer_allows(None, None)  # no token configured: loopback only, open


def test_customer_ids_in_paths_are_checked() -> None:
    assert customer_id_problem("c000042") is None
    assert customer_id_problem("") is not None
    assert customer_id_problem("x" * 257) is not None
    assert customer_id_problem("a\nb") is not None


@pytest.mark.parametrize("bind", ["0.0.0.0", "10.1.2.3", "::", "example.com"])
def test_an_open_bind_needs_a_token(bind: str) -> None:
    with pytest.raises(ValueError, match="without an API token"):
        ServiceSettings(rules="segments: []", web_bind=bind)
    assert ServiceSettings(rules="segments: []", web_bind=bind, api_token=TOKEN).api_token


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_needs_no_token(bind: str) -> None:
    assert ServiceSettings(rules="segments: []", web_bind=bind).api_token is None


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        ServiceSettings(rules="segments: []", api_token="short")


def test_token_from_the_environment() -> None:
    env = {"SEGSTREAM_RULES": "r.yaml", "SEGSTREAM_API_TOKEN": TOKEN, "SEGSTREAM_WEB_BIND": "::"}
    assert ServiceSettings.from_env(env).api_token == TOKEN


def test_worker_refuses_to_start_open_without_a_token(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("segments:\n  - {name: big, rule: 'ltv >= 100'}\n")
    # No broker is needed: the settings are refused before anything connects.
    proc = subprocess.run(
        [sys.executable, "-m", "segstream.cli", "worker", str(rules), "--web-bind", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "without an API token" in proc.stderr and "--api-token-file" in proc.stderr
    empty = tmp_path / "token"
    empty.write_text("\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "segstream.cli",
            "worker",
            str(rules),
            "--api-token-file",
            str(empty),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "empty" in proc.stderr
