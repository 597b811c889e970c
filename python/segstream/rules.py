"""Rule sets: loading from a YAML file, YAML text or a dict, and the JSON
form handed to the Rust compiler."""

from __future__ import annotations

import json
import os
import re
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

    def __init__(
        self, spec: Mapping[str, Any], source: str | None = None, *, _yaml: str | None = None
    ) -> None:
        if not isinstance(spec, Mapping):
            raise RuleError(f"a rule set must be a mapping, got {type(spec).__name__}")
        self._spec: dict[str, Any] = dict(spec)
        self.source = source
        self._check_shape(_yaml)

    def _check_shape(self, yaml_text: str | None) -> None:
        """Unknown keys and values of the wrong type, reported where the user wrote them.

        The engine reads the JSON form, so its own position would be a column of one long
        JSON line; the position is mapped back to the key's path in the spec, then to the
        YAML line and column, with the segment or lifecycle it is in.
        """
        text = self.to_json()
        try:
            _segstream.check_rule_spec(text)
        except RuleError as exc:
            raise _located(exc, self._spec, yaml_text) from None

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
        return cls(data, source=source, _yaml=text)

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


# serde's position in the JSON text: always on line 1, as json.dumps writes one line.
_JSON_POSITION = re.compile(r"^(?:rule set: )?(?P<what>.*) at line 1 column (?P<column>\d+)$", re.S)
Path_ = tuple[str | int, ...]


def _located(exc: RuleError, spec: dict[str, Any], yaml_text: str | None) -> RuleError:
    """The engine's shape error with the key path, the YAML position and the segment."""
    found = _JSON_POSITION.match(str(exc))
    if found is None:
        return exc
    spans: list[tuple[int, int, Path_]] = []
    _serialize(spec, (), spans, [0])
    offset = int(found["column"]) - 1
    inside = [(start, end, path) for start, end, path in spans if start <= offset <= end]
    path: Path_ = max(inside, key=lambda s: len(s[2]))[2] if inside else ()
    mark = _yaml_mark(yaml_text, path) if yaml_text is not None else None
    owner = _owner(spec, path)
    where = f"line {mark[0]} column {mark[1]}" if mark is not None else ""
    if owner is not None:
        where = f"{where} in {owner}" if where else owner
    if path:
        where = f"{where} ({_dotted(path)})" if where else _dotted(path)
    message = f"{where}: {found['what']}" if where else found["what"]
    segment = owner.split("`")[1] if owner else None
    return RuleError(message, segment=segment)


def _serialize(value: Any, path: Path_, spans: list[tuple[int, int, Path_]], pos: list[int]) -> str:
    """`json.dumps(value, default=str)`, recording where each key's entry starts and ends."""
    if isinstance(value, Mapping):
        parts = ["{"]
        pos[0] += 1
        for k, (key, item) in enumerate(value.items()):
            if k:
                parts.append(", ")
                pos[0] += 2
            start = pos[0]
            head = json.dumps(str(key) if not isinstance(key, str) else key) + ": "
            pos[0] += len(head)
            body = _serialize(item, (*path, str(key)), spans, pos)
            spans.append((start, pos[0], (*path, str(key))))
            parts += [head, body]
        parts.append("}")
        pos[0] += 1
        return "".join(parts)
    if isinstance(value, (list, tuple)):
        parts = ["["]
        pos[0] += 1
        for i, item in enumerate(value):
            if i:
                parts.append(", ")
                pos[0] += 2
            start = pos[0]
            body = _serialize(item, (*path, i), spans, pos)
            spans.append((start, pos[0], (*path, i)))
            parts.append(body)
        parts.append("]")
        pos[0] += 1
        return "".join(parts)
    text = json.dumps(value, default=str)
    pos[0] += len(text)
    return text


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _owner(spec: dict[str, Any], path: Path_) -> str | None:
    """`segment `x``, `lifecycle `y`` (with its stage) for a path inside one."""
    if len(path) < 2 or path[0] not in ("segments", "lifecycles") or not isinstance(path[1], int):
        return None
    try:
        item = spec[path[0]][path[1]]
        name = item.get("name")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if name is None:
        return None
    kind = "segment" if path[0] == "segments" else "lifecycle"
    owner = f"{kind} `{name}`"
    if kind == "lifecycle" and len(path) >= 4 and path[2] == "stages":
        try:
            stage = item["stages"][path[3]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            stage = None
        if stage is not None:
            owner += f", stage `{stage}`"
    return owner


def _yaml_mark(text: str, path: Path_) -> tuple[int, int] | None:
    """1-based line and column of the key (or list item) at `path` in the YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    mark = None
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            pair = next((p for p in node.value if getattr(p[0], "value", None) == part), None)
            if pair is None:
                break
            mark, node = pair[0].start_mark, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return None if mark is None else (mark.line + 1, mark.column + 1)
