"""Rule sets: loading from a YAML file, YAML text or a dict, and the JSON
form handed to the Rust compiler."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from segstream import _segstream
from segstream.errors import RuleError

if TYPE_CHECKING:
    from segstream.types import RuleSource


class RuleSet:
    """A rule set: segments, lifecycles, traits and options (see docs/rules.md)."""

    def __init__(self, spec: Mapping[str, Any], source: str | None = None) -> None:
        if not isinstance(spec, Mapping):
            raise RuleError(f"a rule set must be a mapping, got {type(spec).__name__}")
        self._spec: dict[str, Any] = dict(spec)
        self.source = source

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> RuleSet:
        """Parses YAML text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = source or "rules"
            raise RuleError(f"{where}: invalid YAML: {e}") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise RuleError(f"{source or 'rules'}: expected a mapping at the top level")
        return cls(data, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RuleSet:
        """Reads a YAML rule file."""
        p = Path(path)
        return cls.from_yaml(p.read_text(encoding="utf-8"), source=str(p))

    @classmethod
    def coerce(cls, rules: RuleSource) -> RuleSet:
        """Accepts a RuleSet, a dict, a path to a YAML file or YAML text."""
        if isinstance(rules, RuleSet):
            return rules
        if isinstance(rules, Mapping):
            return cls(rules)
        if isinstance(rules, os.PathLike):
            return cls.from_file(rules)
        if isinstance(rules, str):
            looks_like_path = "\n" not in rules and rules.rstrip().endswith((".yaml", ".yml"))
            if looks_like_path or ("\n" not in rules and Path(rules).is_file()):
                return cls.from_file(rules)
            return cls.from_yaml(rules)
        raise TypeError(
            f"rules must be a RuleSet, dict, path or YAML text, not {type(rules).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The rule set as a plain dict."""
        as_dict: dict[str, Any] = json.loads(self.to_json())
        return as_dict

    def to_json(self) -> str:
        """The JSON form the engine compiles."""
        try:
            return json.dumps(self._spec, default=str)
        except (TypeError, ValueError) as e:
            raise RuleError(f"rule set cannot be serialized: {e}") from None

    def describe(self) -> dict[str, Any]:
        """Compiles the rules and says what each segment needs; raises RuleError."""
        result: dict[str, Any] = _segstream.describe_rules(self.to_json())
        return result

    @property
    def segment_names(self) -> list[str]:
        """Segment names in order."""
        return [s["name"] for s in self._spec.get("segments", []) or []]

    @property
    def lifecycle_names(self) -> list[str]:
        """Lifecycle names in order."""
        return [lc["name"] for lc in self._spec.get("lifecycles", []) or []]

    def __repr__(self) -> str:
        return f"RuleSet(segments={self.segment_names}, lifecycles={self.lifecycle_names}" + (
            f", source={self.source!r})" if self.source else ")"
        )
