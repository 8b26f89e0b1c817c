"""Checking one `jobs:` entry (base file or profile): each field's type, the options, the schedule.

Each check appends a one-line reason instead of raising, so validation reports every problem at once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from sp_scheduler.config_alerts import JobAlerts, check_job_alerts
from sp_scheduler.config_retention import JobRetention, check_job_retention
from sp_scheduler.config_yaml import strip_lines
from sp_scheduler.cron import CronExpression, load_zone, parse_schedule
from sp_scheduler.errors import InvalidCronExpression, InvalidTimeZone, NoFireTime

Overlap = Literal["skip", "allow"]
OVERLAP_POLICIES: tuple[Overlap, ...] = ("skip", "allow")


class JobValues(TypedDict, total=False):
    """The fields an entry sets, checked and normalised (a profile entry sets only some)."""

    name: str
    extension: str
    job: str
    schedule: str
    enabled: bool
    timezone: str
    params: dict[str, Any]
    timeout: float | None
    overlap: Overlap
    misfire_grace: float | None
    queue: str
    retention: JobRetention
    alerts: JobAlerts
    source: str


def check_job_fields(entry: dict[str, Any], reasons: list[str]) -> JobValues:
    """Type-check the fields one entry sets, appending reasons; return the normalised values."""
    values: JobValues = {}
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


def _check_option_fields(entry: dict[str, Any], values: JobValues, reasons: list[str]) -> None:
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
            params = strip_lines(entry["params"])
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
    _check_job_sections(entry, values, reasons)


def _check_job_sections(entry: dict[str, Any], values: JobValues, reasons: list[str]) -> None:
    """A job's overrides of the scheduler-wide sections: `retention:` and `alerts:`."""
    if "retention" in entry:
        retention = check_job_retention(entry["retention"], reasons)
        if retention is not None:
            values["retention"] = retention
    if "alerts" in entry:
        alerts = check_job_alerts(entry["alerts"], reasons)
        if alerts is not None:
            values["alerts"] = alerts


def check_schedule(values: JobValues, timezone: str, reasons: list[str], warnings: list[str]) -> None:
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
    if expression is not None and not _ever_fires(expression):
        reasons.append(f"schedule {schedule!r} never fires: no date matches all of its fields")
        return
    if expression is not None and expression.dom_dow_both_restricted:
        warnings.append(
            f"schedule {schedule!r} restricts both day-of-month and day-of-week: "
            "it fires on days matching EITHER field (classic cron rule)"
        )


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # cron has no year field: any instant will do


def _ever_fires(expression: CronExpression) -> bool:
    """Whether the expression has any fire time. `0 0 3 */16 * FRIL` parses, but its days (1 and 17)
    and the last Friday (day 22 or later) must both match, and never do: beat would find no slot."""
    try:
        expression.next_after(_EPOCH)
    except NoFireTime:
        return False
    return True


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
