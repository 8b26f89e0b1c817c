"""Reading a config YAML file so every mapping remembers its line, for messages that say `file:line`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from sp_scheduler.errors import Problem

LINE_KEY = "__line__"


# libyaml's parser when PyYAML was built with it: the pure-Python one takes about 7 s for a config of
# 10,000 jobs (and beat reads the config on a thread beside its tick), libyaml well under a second.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """A safe loader that remembers the line of every mapping, for precise messages."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        mapping[LINE_KEY] = node.start_mark.line + 1
        return mapping


def read_yaml(path: Path, problems: list[Problem]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(str(path), None, "file not found"))
        return None
    except OSError as exc:
        problems.append(Problem(str(path), None, f"cannot read: {exc.strerror}"))
        return None
    try:
        document = yaml.load(text, Loader=_LineLoader)  # _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problems.append(Problem(where, None, f"invalid YAML: {exc.problem}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(str(path), None, f"invalid YAML: {exc}"))
    else:
        line = _recursive_alias_line(document, ())
        if line is None:
            return document
        where = f"{path}:{line}" if line else str(path)
        problems.append(Problem(where, None, "invalid YAML: an alias refers to a node that contains it (a cycle)"))
    return None


def _recursive_alias_line(value: Any, enclosing: tuple[int, ...]) -> int | None:
    """The line of a mapping or list that contains itself through an alias (0 if unknown), else None.

    A safe loader builds such a cycle without complaint, and every walk over the config would then
    recurse until Python gives up.
    """
    if not isinstance(value, dict | list):
        return None
    if id(value) in enclosing:
        return 0
    inside = (*enclosing, id(value))
    children = value.values() if isinstance(value, dict) else value
    for child in children:
        found = _recursive_alias_line(child, inside)
        if found is not None:
            line = value.get(LINE_KEY) if isinstance(value, dict) else None
            return found or (line if isinstance(line, int) else 0)
    return None


def location(path: Path, node: Any) -> str:
    line = node.get(LINE_KEY) if isinstance(node, dict) else None
    return f"{path}:{line}" if line else str(path)


def unknown_keys(node: dict[Any, Any], allowed: tuple[str, ...]) -> list[str]:
    reasons = []
    for key in node:
        if key == LINE_KEY or key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
        reasons.append(f"unknown key {key!r}{hint}")
    return reasons


def strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k != LINE_KEY}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value
