"""Declared job parameters: one place that parses, checks and types them for every process.

A job lists its parameters in `Job.parameters`. The CLI (`jobs run -p`), config loading (`config
validate`, beat and worker start) and the worker (before `execute`) all call `check_params`, so an
unknown name or a badly typed value is refused before anything runs, with one line naming the job,
the parameter and the accepted ones. A job that declares nothing gets its values unchecked, as before.

Values travel in two forms: *normalised* (JSON-ready: what the ledger and task messages hold, and what
`check_params` returns) and *typed* (what the job reads from `ctx.param`: `Path`, `datetime`, ...).
Pure: no celery, redis or psycopg.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sp_scheduler.errors import UsageError

ParamType = Literal["bool", "int", "float", "str", "path", "instant"]
PARAM_TYPES: tuple[ParamType, ...] = ("bool", "int", "float", "str", "path", "instant")
RootName = Literal["output", "services"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ParamError(UsageError):
    """A parameter a job does not declare, or a value of the wrong type or out of bounds (exit 2)."""

    def __init__(self, job: str, reason: str) -> None:
        self.job = job
        self.reason = reason
        super().__init__(f"job {job!r}: {reason}")


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter: name, type, default, bounds or choices, and a one-line description.

    `root` (path parameters only) names the deployment directory the path must resolve inside:
    "output" (SP_OUTPUT_ROOT) or "services" (SP_SERVICES_DIR). A default of None means "not set":
    the job decides (for example, a path parameter then falls back to a setting).
    """

    name: str
    type: ParamType
    default: Any = None
    description: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    root: RootName | None = None

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: type must be one of {', '.join(PARAM_TYPES)}")
        if self.root is not None and self.type != "path":
            raise ValueError(f"parameter {self.name!r}: only path parameters have a root")

    def describe(self) -> str:
        """`days (int >= 1, default 30)`: the form error messages and `jobs show` use."""
        rules: list[str] = [self.type]
        if self.min is not None and self.max is not None:
            rules.append(f"{self.min:g}..{self.max:g}")
        elif self.min is not None:
            rules.append(f">= {self.min:g}")
        elif self.max is not None:
            rules.append(f"<= {self.max:g}")
        if self.choices:
            rules.append("one of " + "|".join(str(choice) for choice in self.choices))
        if self.root is not None:
            rules.append(f"inside the {self.root} root")
        default = "none" if self.default is None else _show(self.default)
        return f"{self.name} ({' '.join(rules)}, default {default})"

    def normalise(self, value: Any, roots: Mapping[str, Path] | None = None) -> Any:
        """The JSON-ready form of `value` (text from the CLI is parsed); ValueError says why not."""
        if value is None:
            return None
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character, which the ledger cannot store")
        parsed = _PARSERS[self.type](value)
        if self.type in ("int", "float"):
            if self.min is not None and parsed < self.min:
                raise ValueError(f"{parsed!r} is below the minimum {self.min:g}")
            if self.max is not None and parsed > self.max:
                raise ValueError(f"{parsed!r} is above the maximum {self.max:g}")
        if self.choices and parsed not in self.choices:
            raise ValueError(f"{parsed!r} is not one of {', '.join(str(c) for c in self.choices)}")
        if self.root is not None and roots is not None:
            inside(Path(parsed), roots[self.root], self.root)
        return parsed

    def typed(self, value: Any) -> Any:
        """The value a job reads: a normalised value turned into `Path` or `datetime` where declared so."""
        if value is None:
            return None
        if self.type == "path":
            return Path(value)
        if self.type == "instant":
            return datetime.fromisoformat(value)
        return value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_bool(value: Any) -> bool:
    """true/false, yes/no, on/off, 1/0 as text; a real bool as is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"{value!r} is not true or false")


def parse_int(value: Any) -> int:
    """A whole number, or its text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a whole number")


def parse_float(value: Any) -> float:
    """A finite number, or its text."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"{value!r} is not a number")
    return number


def parse_text(value: Any) -> str:
    """Non-empty text, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty text")
    return value.strip()


def parse_instant(value: Any) -> str:
    """An ISO-8601 instant (naive means UTC), normalised to its ISO text with an offset."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 instant") from None
    else:
        raise ValueError(f"{value!r} is not an ISO-8601 instant")
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).isoformat()


_PARSERS: dict[ParamType, Any] = {
    "bool": parse_bool,
    "int": parse_int,
    "float": parse_float,
    "str": parse_text,
    "path": parse_text,
    "instant": parse_instant,
}


def inside(path: Path, root: Path, label: str) -> Path:
    """`path` resolved (symlinks followed, relative to the working directory), if strictly inside `root`."""
    resolved = Path(os.path.realpath(path))
    base = Path(os.path.realpath(root))
    if resolved == base or base not in resolved.parents:
        raise ValueError(f"{str(path)!r} resolves to {resolved}, outside the {label} root {base}")
    return resolved


def convert_text(key: str, text: str, kind: type[Any]) -> Any:
    """Text from the CLI as `kind` (bool, int, float): for jobs that declare no parameters."""
    parser = {bool: parse_bool, int: parse_int, float: parse_float}.get(kind, kind)
    try:
        return parser(text)
    except ValueError:
        raise ValueError(f"parameter {key!r}: {text!r} is not a valid {kind.__name__}") from None


def check_params(
    job: str, declared: Sequence[Param] | None, values: Mapping[str, Any], roots: Mapping[str, Path] | None = None
) -> dict[str, Any]:
    """`values` normalised against the declaration; ParamError (one line) for the first bad one.

    `declared` None (a job written before declarations) gets its values back unchecked; () accepts
    none. Normalising twice changes nothing, so the CLI, beat and worker can each check the same values.
    """
    if declared is None:
        return dict(values)
    by_name = {param.name: param for param in declared}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        param = by_name.get(key)
        if param is None:
            close = difflib.get_close_matches(str(key), list(by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            names = ", ".join(by_name) or "none"
            raise ParamError(job, f"unknown parameter {key!r}{hint}; accepted: {names}")
        try:
            checked[key] = param.normalise(value, roots)
        except ValueError as exc:
            raise ParamError(job, f"parameter {key!r}: {exc}; accepted: {param.describe()}") from None
    return checked


def resolve_params(declared: Sequence[Param] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for a run's context: every declared parameter, its default where not given.

    `values` must already be checked (`check_params`); undeclared jobs get them as they are.
    """
    if declared is None:
        return dict(values)
    return {param.name: param.typed(values.get(param.name, param.default)) for param in declared}


def roots_for(output_root: Path, services_dir: Path) -> dict[str, Path]:
    """The directories path parameters may point into, by root name."""
    return {"output": output_root, "services": services_dir}
