"""The `retention:` section (scheduler-wide) and a job entry's `retention:` override, checked here.

How long runs and log lines are kept and how many runs per job always stay; the `ledger_retention`
job enforces it (sp_scheduler/store/retention.py). Each check appends one-line reasons, as the rest of
the config does, so a broken file is reported in one pass with its file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sp_scheduler.config_yaml import unknown_keys

_PART = re.compile(r"(\d+)\s*([hdw])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+\s*[hdw]\s*)+$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
MIN_AGE = timedelta(hours=1)
MAX_AGE = timedelta(days=36600)  # a hundred years: longer is a typo, and beyond it datetimes overflow
MAX_MIN_RUNS = 1_000_000

SECTION_KEYS = ("runs", "logs", "min_runs_per_job")
JOB_KEYS = ("runs", "logs", "min_runs")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished runs and log lines are kept, and the newest runs per job that always stay.

    The defaults are conservative: a month of runs, two weeks of log lines, ten runs per job.
    """

    runs: timedelta = timedelta(days=30)
    logs: timedelta = timedelta(days=14)
    min_runs_per_job: int = 10


@dataclass(frozen=True, slots=True)
class JobRetention:
    """One job's override of the scheduler-wide rules; None keeps the scheduler's value."""

    runs: timedelta | None = None
    logs: timedelta | None = None
    min_runs: int | None = None


def parse_age(value: Any) -> timedelta | None:
    """`36h`, `30d`, `2w` or parts together (`1w3d`); None when the text is no such age."""
    if not isinstance(value, str) or not _WHOLE.match(value):
        return None
    try:
        return sum((timedelta(**{_UNITS[u.lower()]: int(n)}) for n, u in _PART.findall(value)), timedelta())
    except OverflowError:
        return MAX_AGE + timedelta(days=1)


def _age(node: dict[str, Any], key: str, reasons: list[str], where: str) -> timedelta | None:
    value = node[key]
    age = parse_age(value)
    if age is None:
        reasons.append(f"'{where}.{key}' must be an age such as 36h, 30d or 2w, not {value!r}")
    elif age < MIN_AGE or age > MAX_AGE:
        reasons.append(f"'{where}.{key}' must be between 1h and 36600d, not {value!r}")
    else:
        return age
    return None


def _count(node: dict[str, Any], key: str, reasons: list[str], where: str) -> int | None:
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MIN_RUNS:
        reasons.append(f"'{where}.{key}' must be a whole number from 0 to {MAX_MIN_RUNS}, not {value!r}")
        return None
    return value


def check_section(node: Any, reasons: list[str]) -> Retention:
    """The scheduler-wide section; its defaults for whatever it leaves out (or for a broken value)."""
    default = Retention()
    if node is None:
        return default
    if not isinstance(node, dict):
        reasons.append("'scheduler.retention' must be a mapping with runs, logs and min_runs_per_job")
        return default
    reasons.extend(f"scheduler.retention: {r}" for r in unknown_keys(node, SECTION_KEYS))
    runs = _age(node, "runs", reasons, "retention") if "runs" in node else None
    logs = _age(node, "logs", reasons, "retention") if "logs" in node else None
    minimum = _count(node, "min_runs_per_job", reasons, "retention") if "min_runs_per_job" in node else None
    return Retention(
        runs=runs or default.runs,
        logs=logs or default.logs,
        min_runs_per_job=default.min_runs_per_job if minimum is None else minimum,
    )


def check_job_retention(node: Any, reasons: list[str]) -> JobRetention | None:
    """A job entry's `retention:`; None (and a reason) when it is unusable."""
    if not isinstance(node, dict):
        reasons.append("'retention' must be a mapping with runs, logs and/or min_runs")
        return None
    before = len(reasons)
    reasons.extend(f"retention: {r}" for r in unknown_keys(node, JOB_KEYS))
    runs = _age(node, "runs", reasons, "retention") if "runs" in node else None
    logs = _age(node, "logs", reasons, "retention") if "logs" in node else None
    minimum = _count(node, "min_runs", reasons, "retention") if "min_runs" in node else None
    if len(reasons) > before:
        return None
    return JobRetention(runs=runs, logs=logs, min_runs=minimum)


def describe(age: timedelta) -> str:
    """An age as the config writes it: `30d`, `36h`."""
    hours = int(age.total_seconds()) // 3600
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"
