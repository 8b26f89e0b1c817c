"""Load and validate `services/scheduler/config.yaml` and its profile override.

Validation collects every problem (file, line, job, reason) before anything runs, so an operator
fixes a broken file in one pass. Pure: no celery, redis or psycopg.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sp_scheduler.config_alerts import Alerts, JobAlerts, check_rule_targets
from sp_scheduler.config_alerts import check_section as check_alerts_section
from sp_scheduler.config_fields import OVERLAP_POLICIES, JobValues, Overlap, check_job_fields, check_schedule
from sp_scheduler.config_retention import JobRetention, Retention, check_section
from sp_scheduler.config_yaml import location, read_yaml, unknown_keys
from sp_scheduler.cron import load_zone
from sp_scheduler.errors import ConfigError, InvalidTimeZone, Problem

__all__ = [
    "DEFAULT_QUEUE",
    "OVERLAP_POLICIES",
    "ConfigReport",
    "JobConfig",
    "Overlap",
    "SchedulerConfig",
    "load_config",
    "read_config",
]

DEFAULT_QUEUE = "sp_scheduler"

_REQUIRED_JOB_KEYS = ("name", "extension", "job", "schedule", "enabled")
_OPTIONAL_JOB_KEYS = ("timezone", "params", "timeout", "overlap", "misfire_grace", "queue", "retention", "alerts")
_SCHEDULER_KEYS = ("enabled", "jobs", "timezone", "extensions", "retention", "alerts")
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
    retention: JobRetention = field(default_factory=JobRetention)  # overrides of the scheduler's rules
    alerts: JobAlerts = field(default_factory=JobAlerts)  # overrides of the scheduler's alert rules
    source: str = ""  # "file:line", for messages


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The whole validated configuration."""

    enabled: bool
    jobs: tuple[JobConfig, ...]
    extensions: tuple[str, ...] = ()
    retention: Retention = field(default_factory=Retention)
    alerts: Alerts = field(default_factory=Alerts)
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


def _parse_jobs(
    path: Path, scheduler: dict[str, Any], timezone: str, problems: list[Problem], warnings: list[Problem]
) -> list[JobValues]:
    raw_jobs = scheduler.get("jobs", [])
    if raw_jobs is None:
        raw_jobs = []
    if not isinstance(raw_jobs, list):
        problems.append(Problem(location(path, scheduler), None, "'scheduler.jobs' must be a list of job entries"))
        return []
    parsed: list[JobValues] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(raw_jobs):
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), None, f"jobs[{index}] must be a mapping, not {type(entry).__name__}"))
            continue
        where = location(path, entry)
        label = entry.get("name") if isinstance(entry.get("name"), str) else f"jobs[{index}]"
        reasons = unknown_keys(entry, _REQUIRED_JOB_KEYS + _OPTIONAL_JOB_KEYS)
        missing = [key for key in _REQUIRED_JOB_KEYS if key not in entry]
        if missing:
            reasons.append(f"missing required field(s): {', '.join(missing)}")
        job_warnings: list[str] = []
        values = check_job_fields(entry, reasons)
        check_schedule(values, timezone, reasons, job_warnings)
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
    problems.extend(Problem(location(path, document), None, r) for r in unknown_keys(document, ("scheduler",)))
    scheduler = document["scheduler"]
    if not isinstance(scheduler, dict):
        problems.append(Problem(str(path), None, "'scheduler' must be a mapping"))
        return None
    problems.extend(Problem(location(path, scheduler), None, r) for r in unknown_keys(scheduler, _SCHEDULER_KEYS))
    return scheduler


def _retention(path: Path, scheduler: dict[str, Any], problems: list[Problem]) -> Retention:
    """The `retention:` section (config_retention.py); each problem at the section's line."""
    node = scheduler.get("retention")
    reasons: list[str] = []
    retention = check_section(node, reasons)
    problems.extend(Problem(location(path, node if isinstance(node, dict) else scheduler), None, r) for r in reasons)
    return retention


def _alerts(path: Path, scheduler: dict[str, Any], problems: list[Problem]) -> Alerts:
    """The `alerts:` section (config_alerts.py); each problem at the line of the mapping it concerns."""
    report: list[tuple[Any, str]] = []
    alerts = check_alerts_section(scheduler.get("alerts"), scheduler, report)
    problems.extend(Problem(location(path, node), None, reason) for node, reason in report)
    return alerts


def _check_job_alert_targets(records: list[JobConfig], alerts: Alerts, problems: list[Problem]) -> None:
    """A job's own rules may name only targets the section defines."""
    for record in records:
        if record.alerts.rules:
            report: list[tuple[Any, str]] = []
            check_rule_targets(record.alerts.rules, alerts.targets, None, report)
            problems.extend(Problem(record.source, record.name, reason) for _, reason in report)


def _parse_profile(
    path: Path, base_timezone: str, problems: list[Problem], warnings: list[Problem]
) -> tuple[bool | None, list[JobValues], Retention | None, Alerts | None]:
    """Profile entries: keyed by (extension, job), they override schedule/enabled and optional keys.
    A profile's `retention:` and `alerts:` sections replace the base file's."""
    document = read_yaml(path, problems)
    scheduler = _scheduler_section(path, document, problems)
    if scheduler is None:
        return None, [], None, None
    retention = _retention(path, scheduler, problems) if "retention" in scheduler else None
    alerts = _alerts(path, scheduler, problems) if "alerts" in scheduler else None
    enabled = scheduler.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        problems.append(Problem(location(path, scheduler), None, "'scheduler.enabled' must be true or false"))
        enabled = None
    entries: list[JobValues] = []
    raw_jobs = scheduler.get("jobs") or []
    if not isinstance(raw_jobs, list):
        problems.append(Problem(location(path, scheduler), None, "'scheduler.jobs' must be a list"))
        return enabled, [], retention, alerts
    for index, entry in enumerate(raw_jobs):
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), None, f"jobs[{index}] must be a mapping"))
            continue
        where = location(path, entry)
        label = str(entry.get("name") or entry.get("job") or f"jobs[{index}]")
        reasons = unknown_keys(entry, _PROFILE_JOB_KEYS)
        missing = [key for key in ("extension", "job") if key not in entry]
        if missing:
            reasons.append(f"profile overrides are keyed by extension and job; missing: {', '.join(missing)}")
        job_warnings: list[str] = []
        values = check_job_fields(entry, reasons)
        check_schedule(values, base_timezone, reasons, job_warnings)
        problems.extend(Problem(where, label, reason) for reason in reasons)
        warnings.extend(Problem(where, label, reason) for reason in job_warnings)
        if not reasons:
            values["source"] = where
            entries.append(values)
    return enabled, entries, retention, alerts


def _apply_profile(
    jobs: list[JobValues], overrides: list[JobValues], timezone: str, problems: list[Problem]
) -> list[JobValues]:
    merged = [JobValues(**job) for job in jobs]
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
                job.update(_without_name(override))
        elif "schedule" not in override:
            problems.append(
                Problem(override["source"], override["job"], "adds a job config.yaml lacks, so needs a 'schedule'")
            )
        else:
            # A profile may schedule an extension's job the base file does not list (seeds: profile.yaml).
            added = JobValues(timezone=timezone, enabled=True)
            added.update(override)
            added.setdefault("name", override["job"])
            merged.append(added)
    return merged


def _without_name(values: JobValues) -> JobValues:
    """A profile entry's fields but its name: the name only picks which entry it changes."""
    copy = JobValues(**values)
    copy.pop("name", None)
    return copy


def _job_config(values: JobValues, timezone: str) -> JobConfig:
    """The record of a checked entry; an entry that sets no time zone takes the scheduler's."""
    return JobConfig(
        name=values["name"],
        extension=values["extension"],
        job=values["job"],
        schedule=values["schedule"],
        enabled=values["enabled"],
        timezone=values.get("timezone", timezone),
        params=values.get("params", {}),
        timeout=values.get("timeout"),
        overlap=values.get("overlap", "skip"),
        misfire_grace=values.get("misfire_grace"),
        queue=values.get("queue", DEFAULT_QUEUE),
        retention=values.get("retention", JobRetention()),
        alerts=values.get("alerts", JobAlerts()),
        source=values.get("source", ""),
    )


def read_config(path: Path | str, profile: Path | str | None = None) -> ConfigReport:
    """Read, validate and merge; never raises for content problems (they are in the report)."""
    path = Path(path)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    document = read_yaml(path, problems)
    scheduler = _scheduler_section(path, document, problems) if not problems else None
    enabled = True
    jobs: list[JobValues] = []
    extensions: tuple[str, ...] = ()
    timezone = "UTC"
    retention = Retention()
    alerts = Alerts()
    if scheduler is not None:
        enabled_value = scheduler.get("enabled", True)
        if not isinstance(enabled_value, bool):
            problems.append(Problem(location(path, scheduler), None, "'scheduler.enabled' must be true or false"))
        else:
            enabled = enabled_value
        tz_value = scheduler.get("timezone", "UTC")
        try:
            load_zone(str(tz_value))
            timezone = str(tz_value)
        except InvalidTimeZone as exc:
            problems.append(Problem(location(path, scheduler), None, f"scheduler.timezone: {exc}"))
        raw_extensions = scheduler.get("extensions", []) or []
        if not isinstance(raw_extensions, list) or not all(isinstance(e, str) and ":" in e for e in raw_extensions):
            problems.append(
                Problem(location(path, scheduler), None, "'scheduler.extensions' must be a list of 'module:attribute'")
            )
        else:
            extensions = tuple(raw_extensions)
        retention = _retention(path, scheduler, problems)
        alerts = _alerts(path, scheduler, problems)
        jobs = _parse_jobs(path, scheduler, timezone, problems, warnings)
    profile_path = Path(profile) if profile else None
    if profile_path is not None:
        profile_enabled, overrides, profile_retention, profile_alerts = _parse_profile(
            profile_path, timezone, problems, warnings
        )
        if profile_enabled is not None:
            enabled = profile_enabled
        retention = profile_retention or retention
        alerts = profile_alerts or alerts
        jobs = _apply_profile(jobs, overrides, timezone, problems)
    records = []
    names: dict[str, str] = {}
    for values in jobs:
        record = _job_config(values, timezone)
        if record.name in names and names[record.name] != record.source:
            problems.append(Problem(record.source, record.name, f"duplicate job name (also at {names[record.name]})"))
            continue
        names[record.name] = record.source
        records.append(record)
    _check_job_alert_targets(records, alerts, problems)
    config = SchedulerConfig(
        enabled=enabled,
        jobs=tuple(records),
        extensions=extensions,
        retention=retention,
        alerts=alerts,
        path=path,
        profile_path=profile_path,
    )
    return ConfigReport(config=config, problems=tuple(problems), warnings=tuple(warnings))


def load_config(path: Path | str, profile: Path | str | None = None) -> SchedulerConfig:
    """Read and validate; raise ConfigError listing every problem."""
    return read_config(path, profile).raise_for_problems()
