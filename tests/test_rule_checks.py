"""Rule sets that used to pass `segstream check` and then gave a wrong or broken result:
node names that clash with an output column, and comparisons that can never be true.
Each is now refused by `segstream check` with the problem named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import segstream
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st


def check(tmp_path: Path, spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "r.yaml"
    rules.write_text(yaml.safe_dump(spec))
    return subprocess.run(
        [sys.executable, "-m", "segstream.cli", "check", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(tmp_path: Path, spec: dict[str, Any], *expected: str) -> None:
    done = check(tmp_path, spec)
    assert done.returncode != 0, done.stdout
    for text in expected:
        assert text in done.stderr, done.stderr


def test_a_segment_named_like_a_trait_is_refused(tmp_path: Path) -> None:
    spec = {
        "traits": {"tier": "string"},
        "segments": [{"name": "tier", "rule": "tier = 'gold'"}],
    }
    refused(tmp_path, spec, "segment `tier`", "trait `tier`")
    with pytest.raises(segstream.RuleError, match="trait `tier`"):
        segstream.Engine(spec)


def test_a_lifecycle_named_like_a_trait_is_refused(tmp_path: Path) -> None:
    spec = {
        "traits": {"plan": "string"},
        "lifecycles": [{"name": "plan", "stages": [{"name": "paid", "rule": "orders >= 1"}]}],
    }
    refused(tmp_path, spec, "lifecycle `plan`", "trait `plan`")


def test_a_trait_named_customer_id_is_refused(tmp_path: Path) -> None:
    spec = {
        "traits": {"customer_id": "string"},
        "segments": [{"name": "buyers", "rule": "orders >= 1"}],
    }
    refused(tmp_path, spec, "trait `customer_id`")


def test_the_holdout_column_suffix_is_reserved(tmp_path: Path) -> None:
    spec = {
        "segments": [
            {"name": "vip", "rule": "ltv >= 100", "holdout": 10},
            {"name": "vip__holdout", "rule": "orders >= 1"},
        ]
    }
    refused(tmp_path, spec, "`vip__holdout`", "__holdout")


@pytest.mark.parametrize(
    ("rule", "hint"),
    [
        ("last_refund_at = NULL", "IS NULL"),
        ("last_refund_at <> NULL", "IS NOT NULL"),
        ("last_refund_at != NULL", "IS NOT NULL"),
        ("month(NULL) = 5", "IS NULL"),
        ("coalesce(NULL, NULL) = 1", "IS NULL"),
    ],
)
def test_check_refuses_a_comparison_with_null(tmp_path: Path, rule: str, hint: str) -> None:
    refused(tmp_path, {"segments": [{"name": "s", "rule": rule}]}, "never true", hint)


def test_check_refuses_an_unknown_stage_and_suggests_the_nearest(tmp_path: Path) -> None:
    spec = {
        "segments": [{"name": "lapsed_gold", "rule": "stage('vip') = 'gld'"}],
        "lifecycles": [
            {
                "name": "vip",
                "stages": [
                    {"name": "gold", "rule": "ltv >= 100"},
                    {"name": "silver", "rule": "ltv >= 10"},
                ],
            }
        ],
    }
    refused(tmp_path, spec, "lifecycle `vip` has no stage `gld`", "did you mean `gold`")
    spec["segments"][0]["rule"] = "stage('vip') = 'gold'"
    assert check(tmp_path, spec).returncode == 0


NAMES = st.sampled_from(
    ["customer_id", "ltv", "orders", "last_refund_at", "tier", "score", "vip", "buyers"]
)


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(NAMES, max_size=3),
    lifecycles=st.lists(NAMES, max_size=2),
    traits=st.lists(NAMES, max_size=2),
)
def test_snapshot_never_has_two_columns_of_one_name(
    segments: list[str], lifecycles: list[str], traits: list[str]
) -> None:
    spec = {
        "traits": {t: "string" for t in traits},
        "segments": [{"name": n, "rule": "orders >= 1"} for n in segments],
        "lifecycles": [
            {"name": n, "stages": [{"name": "any", "rule": "orders >= 1"}]} for n in lifecycles
        ],
    }
    try:
        engine = segstream.Engine(spec)
    except segstream.RuleError:
        return
    names = engine.snapshot().column_names
    assert len(set(names)) == len(names), names
