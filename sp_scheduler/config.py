"""Load and validate `services/scheduler/config.yaml` and its profile override.

Validation collects every problem (file, line, job, reason) before anything runs, so an operator
fixes a broken file in one pass. Pure: no celery, redis or psycopg.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sp_scheduler.cron import load_zone, parse_schedule
from sp_scheduler.errors import ConfigError, InvalidCronExpression, InvalidTimeZone, Problem

Overlap = Literal["skip", "allow"]
OVERLAP_POLICIES: tuple[Overlap, ...] = ("skip", "allow")
DEFAULT_QUEUE = "sp_scheduler"

_LINE_KEY = "__line__"
_REQUIRED_JOB_KEYS = ("name", "extension", "job", "schedule", "enabled")
_OPTIONAL_JOB_KEYS = ("timezone", "params", "timeout", "overlap", "misfire_grace", "queue")
_SCHEDULER_KEYS = ("enabled", "jobs", "timezone", "extensions")
_PROFILE_JOB_KEYS = ("name", "extension", "job", "schedule", "enabled", *_OPTIONAL_JOB_KEYS)


@dataclass(frozen=True, slots=True)
class JobConfig:
    """One `jobs:` entry after validation and profile merge."""

    name: str
    extension: str
    job: str
    schedule: str
    enabled: bool
    timezone: str = "UTC"
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    overlap: Overlap = "skip"
    misfire_grace: float | None = None  # seconds; None = follow the period (sp_scheduler.slots.default_grace)
    queue: str = DEFAULT_QUEUE
    source: str = ""  # "file:line", for messages


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The whole validated configuration."""

    enabled: bool
    jobs: tuple[JobConfig, ...]
    extensions: tuple[str, ...] = ()
    path: Path | None = None
    profile_path: Path | None = None

    def job(self, name: str) -> JobConfig | None:
        """The entry named `name`, if configured."""
        return next((job for job in self.jobs if job.name == name), None)


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """What reading a configuration found: the usable config, its problems and its warnings."""

    config: SchedulerConfig
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    def raise_for_problems(self) -> SchedulerConfig:
        """The config, or ConfigError carrying every problem."""
        if self.problems:
            raise ConfigError(list(self.problems))
        return self.config


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping, for precise messages."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[_LINE_KEY] = node.start_mark.line + 1
        return mapping


def _read_yaml(path: Path, problems: list[Problem]) -> Any:
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
            line = value.get(_LINE_KEY) if isinstance(value, dict) else None
            return found or (line if isinstance(line, int) else 0)
    return None


def _where(path: Path, node: Any) -> str:
    line = node.get(_LINE_KEY) if isinstance(node, dict) else None
    return f"{path}:{line}" if line else str(path)


def _unknown_keys(node: dict[Any, Any], allowed: tuple[str, ...]) -> list[str]:
    reasons = []
    for key in node:
        if key == _LINE_KEY or key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
        reasons.append(f"unknown key {key!r}{hint}")
    return reasons


def _not_json(value: Any, where: str) -> str | None:
    """Why `value` cannot travel as JSON (in task messages and the ledger's jsonb), or None if it can.

    YAML reads `2024-01-01` as a date and `12:30:00` as a number of seconds; a date is no JSON value.
    """
    if isinstance(value, str) and "\x00" in value:
        return f"'{where}' contains a NUL character, which the ledger cannot store"
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{where}' is {value!r}, which is not a JSON number"
    if value is None or isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, list):
        return next((why for i, item in enumerate(value) if (why := _not_json(item, f"{where}[{i}]"))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"'{where}' keys must be strings, not {key!r}"
            if "\x00" in key:
                return f"'{where}' has a key with a NUL character, which the ledger cannot store"
            if why := _not_json(item, f"{where}.{key}"):
                return why
        return None
    return f"'{where}' is a {type(value).__name__} ({value!r}); params must be JSON values: quote it to pass text"


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE_KEY}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _check_job_fields(entry: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """Type-check the fields one entry sets, appending reasons; return the normalised values."""
    values: dict[str, Any] = {}
    for key in ("name", "extension", "job"):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key].strip():
                reasons.append(f"{key!r} must be a non-empty string")
            else:
                values[key] = entry[key].strip()
    if "schedule" in entry:
        schedule = entry["schedule"]
        if schedule is None:
            schedule = ""
        if not isinstance(schedule, str):
            reasons.append("'schedule' must be a string (quote it: schedule: \"0 0 * * * *\")")
        else:
            values["schedule"] = schedule.strip()
    if "enabled" in entry:
        if not isinstance(entry["enabled"], bool):
            reasons.append(f"'enabled' must be true or false, not {entry['enabled']!r}")
        else:
            values["enabled"] = entry["enabled"]
    _check_option_fields(entry, values, reasons)
    return values


def _check_option_fields(entry: dict[str, Any], values: dict[str, Any], reasons: list[str]) -> None:
    """The optional keys (docs/configuration.md), each with a safe default."""
    if "timezone" in entry:
        timezone = entry["timezone"]
        if not isinstance(timezone, str):
            reasons.append("'timezone' must be a string such as 'Europe/Berlin'")
        else:
            try:
                load_zone(timezone)
                values["timezone"] = timezone
            except InvalidTimeZone as exc:
                reasons.append(str(exc))
    if "params" in entry:
        if not isinstance(entry["params"], dict):
            reasons.append("'params' must be a mapping of names to values")
        else:
            params = _strip_lines(entry["params"])
            not_json = _not_json(params, "params")
            if not_json:
                reasons.append(not_json)
            else:
                values["params"] = params
    if "timeout" in entry:
        timeout = entry["timeout"]
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            reasons.append(f"'timeout' must be a positive number of seconds, not {timeout!r}")
        else:
            values["timeout"] = None if timeout is None else float(timeout)
    if "overlap" in entry:
        if entry["overlap"] not in OVERLAP_POLICIES:
            reasons.append(f"'overlap' must be one of {', '.join(OVERLAP_POLICIES)}, not {entry['overlap']!r}")
        else:
            values["overlap"] = entry["overlap"]
    if "misfire_grace" in entry:
        grace = entry["misfire_grace"]
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0):
            reasons.append(f"'misfire_grace' must be a number of seconds >= 0, not {grace!r}")
        else:
            values["misfire_grace"] = None if grace is None else float(grace)
    if "queue" in entry:
        if not isinstance(entry["queue"], str) or not entry["queue"].strip():
            reasons.append("'queue' must be a non-empty string")
        else:
            values["queue"] = entry["queue"].strip()


def _check_schedule(values: dict[str, Any], timezone: str, reasons: list[str], warnings: list[str]) -> None:
    schedule = values.get("schedule")
    if not schedule:
        return
    try:
        expression = parse_schedule(schedule, values.get("timezone", timezone))
    except InvalidCronExpression as exc:
        reasons.append(f"schedule: {exc.reason}")
        return
    except InvalidTimeZone:
        return  # already reported by the timezone check
    if expression is not None and expression.dom_dow_both_restricted:
        warnings.append(
            f"schedule {schedule!r} restricts both day-of-month and day-of-week: "
            "it fires on days matching EITHER field (classic cron rule)"
        )


def _parse_jobs(
    path: Path, scheduler: dict[str, Any], timezone: str, problems: list[Problem], warnings: list[Problem]
) -> list[dict[str, Any]]:
    raw_jobs = scheduler.get("jobs", [])
    if raw_jobs is None:
        raw_jobs = []
    if not isinstance(raw_jobs, list):
        problems.append(Problem(_where(path, scheduler), None, "'scheduler.jobs' must be a list of job entries"))
        return []
    parsed: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(raw_jobs):
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), None, f"jobs[{index}] must be a mapping, not {type(entry).__name__}"))
            continue
        where = _where(path, entry)
        label = entry.get("name") if isinstance(entry.get("name"), str) else f"jobs[{index}]"
        reasons = _unknown_keys(entry, _REQUIRED_JOB_KEYS + _OPTIONAL_JOB_KEYS)
        missing = [key for key in _REQUIRED_JOB_KEYS if key not in entry]
        if missing:
            reasons.append(f"missing required field(s): {', '.join(missing)}")
        job_warnings: list[str] = []
        values = _check_job_fields(entry, reasons)
        _check_schedule(values, timezone, reasons, job_warnings)
        name = values.get("name")
        if name is not None:
            if name in seen:
                reasons.append(f"duplicate job name (first defined at {seen[name]})")
            else:
                seen[name] = where
        problems.extend(Problem(where, label, reason) for reason in reasons)
        warnings.extend(Problem(where, label, reason) for reason in job_warnings)
        if not reasons:
            values["source"] = where
            parsed.append(values)
    return parsed


def _scheduler_section(path: Path, document: Any, problems: list[Problem]) -> dict[str, Any] | None:
    if document is None:
        problems.append(Problem(str(path), None, "file is empty; expected a 'scheduler:' section"))
        return None
    if not isinstance(document, dict) or "scheduler" not in document:
        problems.append(Problem(str(path), None, "expected a top-level 'scheduler:' section"))
        return None
    problems.extend(Problem(_where(path, document), None, r) for r in _unknown_keys(document, ("scheduler",)))
    scheduler = document["scheduler"]
    if not isinstance(scheduler, dict):
        problems.append(Problem(str(path), None, "'scheduler' must be a mapping"))
        return None
    problems.extend(Problem(_where(path, scheduler), None, r) for r in _unknown_keys(scheduler, _SCHEDULER_KEYS))
    return scheduler


def _parse_profile(
    path: Path, base_timezone: str, problems: list[Problem], warnings: list[Problem]
) -> tuple[bool | None, list[dict[str, Any]]]:
    """Profile entries: keyed by (extension, job), they override schedule/enabled and optional keys."""
    document = _read_yaml(path, problems)
    scheduler = _scheduler_section(path, document, problems)
    if scheduler is None:
        return None, []
    enabled = scheduler.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        problems.append(Problem(_where(path, scheduler), None, "'scheduler.enabled' must be true or false"))
        enabled = None
    entries: list[dict[str, Any]] = []
    raw_jobs = scheduler.get("jobs") or []
    if not isinstance(raw_jobs, list):
        problems.append(Problem(_where(path, scheduler), None, "'scheduler.jobs' must be a list"))
        return enabled, []
    for index, entry in enumerate(raw_jobs):
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), None, f"jobs[{index}] must be a mapping"))
            continue
        where = _where(path, entry)
        label = str(entry.get("name") or entry.get("job") or f"jobs[{index}]")
        reasons = _unknown_keys(entry, _PROFILE_JOB_KEYS)
        missing = [key for key in ("extension", "job") if key not in entry]
        if missing:
            reasons.append(f"profile overrides are keyed by extension and job; missing: {', '.join(missing)}")
        job_warnings: list[str] = []
        values = _check_job_fields(entry, reasons)
        _check_schedule(values, base_timezone, reasons, job_warnings)
        problems.extend(Problem(where, label, reason) for reason in reasons)
        warnings.extend(Problem(where, label, reason) for reason in job_warnings)
        if not reasons:
            values["source"] = where
            entries.append(values)
    return enabled, entries


def _apply_profile(
    jobs: list[dict[str, Any]], overrides: list[dict[str, Any]], timezone: str, problems: list[Problem]
) -> list[dict[str, Any]]:
    merged = [dict(job) for job in jobs]
    for override in overrides:
        targets = [
            job
            for job in merged
            if job.get("extension") == override["extension"]
            and job.get("job") == override["job"]
            and ("name" not in override or job.get("name") == override["name"])
        ]
        if targets:
            for job in targets:
                job.update({k: v for k, v in override.items() if k != "name"})
        elif "schedule" not in override:
            problems.append(
                Problem(override["source"], override["job"], "adds a job config.yaml lacks, so needs a 'schedule'")
            )
        else:
            # A profile may schedule an extension's job the base file does not list (seeds: profile.yaml).
            added = {"timezone": timezone, "enabled": True, **override}
            added.setdefault("name", override["job"])
            merged.append(added)
    return merged


def read_config(path: Path | str, profile: Path | str | None = None) -> ConfigReport:
    """Read, validate and merge; never raises for content problems (they are in the report)."""
    path = Path(path)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    document = _read_yaml(path, problems)
    scheduler = _scheduler_section(path, document, problems) if not problems else None
    enabled = True
    jobs: list[dict[str, Any]] = []
    extensions: tuple[str, ...] = ()
    timezone = "UTC"
    if scheduler is not None:
        enabled_value = scheduler.get("enabled", True)
        if not isinstance(enabled_value, bool):
            problems.append(Problem(_where(path, scheduler), None, "'scheduler.enabled' must be true or false"))
        else:
            enabled = enabled_value
        tz_value = scheduler.get("timezone", "UTC")
        try:
            load_zone(str(tz_value))
            timezone = str(tz_value)
        except InvalidTimeZone as exc:
            problems.append(Problem(_where(path, scheduler), None, f"scheduler.timezone: {exc}"))
        raw_extensions = scheduler.get("extensions", []) or []
        if not isinstance(raw_extensions, list) or not all(isinstance(e, str) and ":" in e for e in raw_extensions):
            problems.append(
                Problem(_where(path, scheduler), None, "'scheduler.extensions' must be a list of 'module:attribute'")
            )
        else:
            extensions = tuple(raw_extensions)
        jobs = _parse_jobs(path, scheduler, timezone, problems, warnings)
    profile_path = Path(profile) if profile else None
    if profile_path is not None:
        profile_enabled, overrides = _parse_profile(profile_path, timezone, problems, warnings)
        if profile_enabled is not None:
            enabled = profile_enabled
        jobs = _apply_profile(jobs, overrides, timezone, problems)
    records = []
    names: dict[str, str] = {}
    for values in jobs:
        record = JobConfig(**{"timezone": timezone, **values})
        if record.name in names and names[record.name] != record.source:
            problems.append(Problem(record.source, record.name, f"duplicate job name (also at {names[record.name]})"))
            continue
        names[record.name] = record.source
        records.append(record)
    config = SchedulerConfig(
        enabled=enabled, jobs=tuple(records), extensions=extensions, path=path, profile_path=profile_path
    )
    return ConfigReport(config=config, problems=tuple(problems), warnings=tuple(warnings))


def load_config(path: Path | str, profile: Path | str | None = None) -> SchedulerConfig:
    """Read and validate; raise ConfigError listing every problem."""
    return read_config(path, profile).raise_for_problems()
