"""The documents of `jobs list` and `jobs show`: schedule, enabled state and where it comes from."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from sp_scheduler.catalog import Catalog, EnabledState, JobDefinition, effective_enabled
from sp_scheduler.cron_describe import describe
from sp_scheduler.params import Param

if TYPE_CHECKING:
    import psycopg

    from sp_scheduler.store import Override, OverrideChange, RunRecord

CHANGES_SHOWN = 5  # entries of the override trail a job's document carries
LAST_RUNS_SHOWN = 5


def iso(value: datetime | None) -> str:
    """ISO-8601 with offset, or '-'."""
    return value.isoformat() if value is not None else "-"


def next_fire(definition: JobDefinition, enabled: EnabledState, now: datetime) -> datetime | None:
    """The next scheduled instant, or None when the job is manual-only or not active."""
    if definition.cron is None or not enabled.value:
        return None
    return definition.cron.next_after(now)


def upcoming_fires(definition: JobDefinition, enabled: EnabledState, now: datetime, count: int) -> list[datetime]:
    """The next `count` scheduled instants (in the job's zone, DST-aware); none when it is not active."""
    if definition.cron is None or not enabled.value:
        return []
    return list(islice(definition.cron.iter_after(now), count))


def enabled_source(definition: JobDefinition, enabled: EnabledState, override: Override | None) -> dict[str, Any]:
    """Where the effective enabled state comes from: an override (who, why, until when) or the config."""
    if enabled.source == "override" and override is not None:
        return {
            "from": "override",
            "actor": override.actor,
            "reason": override.reason,
            "set_at": iso(override.updated_at),
            "expires_at": iso(override.expires_at) if override.expires_at else None,
        }
    if enabled.source == "not configured" or definition.entry is None:
        return {"from": "not configured", "where": None}
    return {"from": "config", "where": definition.entry.source or None}


def describe_source(source: Mapping[str, Any]) -> str:
    """One line: `config (file:line)`, `override by who until when: why`, `not configured`."""
    if source["from"] == "override":
        until = f" until {source['expires_at']}" if source["expires_at"] else " until reset"
        reason = f": {source['reason']}" if source["reason"] else ""
        return f"override by {source['actor']}{until}{reason}"
    if source["from"] == "config" and source["where"]:
        return f"config ({source['where']})"
    return str(source["from"])


def short_source(source: Mapping[str, Any]) -> str:
    """For the list: `config`, `override`, `override until <time>`."""
    if source["from"] == "override" and source["expires_at"]:
        return f"override until {source['expires_at']}"
    return str(source["from"])


def job_summary(
    definition: JobDefinition,
    catalog: Catalog,
    overrides: Mapping[str, Override],
    last: Mapping[str, RunRecord],
    now: datetime,
) -> dict[str, Any]:
    """One row of the jobs list."""
    override = overrides.get(definition.name)
    enabled = effective_enabled(catalog, definition, override, now=now)
    last_run = last.get(definition.name)
    return {
        "name": definition.name,
        "extension": definition.extension,
        "job": definition.job.name,
        "schedule": definition.schedule,
        "timezone": definition.timezone,
        "enabled": enabled.job,
        "enabled_source": enabled_source(definition, enabled, override),
        "configured": definition.configured,
        "next_run": iso(next_fire(definition, enabled, now)) if enabled.job else None,
        "last_status": last_run.status if last_run else None,
    }


def jobs_list(
    catalog: Catalog, overrides: Mapping[str, Override], last: Mapping[str, RunRecord], now: datetime
) -> dict[str, Any]:
    """`jobs list --json` and `GET /api/v1/jobs`."""
    return {
        "scheduler_enabled": catalog.scheduler_enabled,
        "jobs": [job_summary(definition, catalog, overrides, last, now) for definition in catalog],
    }


def read_jobs_list(catalog: Catalog, conn: psycopg.Connection[Any] | None, now: datetime) -> dict[str, Any]:
    """The jobs list with overrides and last runs from the ledger; without a connection, config only."""
    overrides: Mapping[str, Override] = {}
    last: Mapping[str, RunRecord] = {}
    if conn is not None:
        # Only with a database: `jobs list` works offline and must not load psycopg.
        from sp_scheduler.store import get_overrides, last_runs  # noqa: PLC0415

        overrides, last = get_overrides(conn), last_runs(conn, catalog.names())
    return jobs_list(catalog, overrides, last, now)


def declared_param(param: Param) -> dict[str, Any]:
    """A declared parameter: type, default, bounds, choices, and the one-line summary `jobs show` prints."""
    return {
        "name": param.name,
        "type": param.type,
        "default": param.default,
        "min": param.min,
        "max": param.max,
        "choices": list(param.choices) or None,
        "root": param.root,
        "description": param.description,
        "summary": param.describe(),
    }


def job_details(
    catalog: Catalog,
    definition: JobDefinition,
    override: Override | None,
    changes: list[OverrideChange],
    runs: list[RunRecord],
    now: datetime,
    count: int,
) -> dict[str, Any]:
    """`jobs show NAME --json` and `GET /api/v1/jobs/NAME`: config vs code default vs override."""
    enabled = effective_enabled(catalog, definition, override, now=now)
    entry = definition.entry
    return {
        "name": definition.name,
        "extension": definition.extension,
        "job": definition.job.name,
        "description": definition.job.description,
        "schedule": definition.schedule,
        "schedule_text": describe(definition.schedule) if definition.cron is not None else None,
        "code_schedule": definition.code_schedule,
        "timezone": definition.timezone,
        "configured": definition.configured,
        "source": entry.source if entry else None,
        "enabled": enabled.job,
        "yaml_enabled": definition.yaml_enabled,
        "override": None
        if override is None
        else {
            "enabled": override.enabled,
            "actor": override.actor,
            "reason": override.reason,
            "updated_at": iso(override.updated_at),
            "expires_at": iso(override.expires_at) if override.expires_at else None,
        },
        "enabled_source": enabled_source(definition, enabled, override),
        "override_changes": [change.to_dict() for change in changes],
        "run_on_startup": {"code": definition.job.run_on_startup, "effective": definition.run_on_startup},
        "params": dict(definition.params),
        "parameters": None
        if definition.job.parameters is None
        else [declared_param(param) for param in definition.job.parameters],
        "timeout": definition.timeout,
        "overlap": definition.overlap,
        "misfire_grace": definition.misfire_grace,
        "queue": definition.queue,
        "next_runs": [iso(instant) for instant in upcoming_fires(definition, enabled, now, count)],
        "last_runs": [run.to_dict() for run in runs],
    }


def read_job_details(
    catalog: Catalog, name: str, conn: psycopg.Connection[Any] | None, now: datetime, count: int
) -> dict[str, Any]:
    """One job's document (`UnknownJob` when nothing registers or configures it); offline without `conn`."""
    definition = catalog.get(name)
    override: Override | None = None
    changes: list[OverrideChange] = []
    runs: list[RunRecord] = []
    if conn is not None:
        # Only with a database: `jobs show` works offline and must not load psycopg.
        from sp_scheduler.store import get_override, history, override_changes  # noqa: PLC0415

        override = get_override(conn, name)
        changes = override_changes(conn, name, limit=CHANGES_SHOWN)
        runs = history(conn, job=name, limit=LAST_RUNS_SHOWN)
    return job_details(catalog, definition, override, changes, runs, now, count)
