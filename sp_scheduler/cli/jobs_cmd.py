"""`sp-scheduler jobs list|show`: what the scheduler knows about each job."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

import click

from sp_scheduler.catalog import Catalog, EnabledState, JobDefinition, effective_enabled
from sp_scheduler.cli.lazy import LazyGroup
from sp_scheduler.cli.state import CliState, echo_json, echo_table, iso, pass_state
from sp_scheduler.cron_describe import describe
from sp_scheduler.params import Param

if TYPE_CHECKING:
    from sp_scheduler.store import Override, OverrideChange, RunRecord

CHANGES_SHOWN = 5  # entries of the override trail `jobs show` prints


@click.group(
    "jobs",
    cls=LazyGroup,
    lazy={
        "run": "sp_scheduler.cli.runs_cmd:run_jobs",
        "backfill": "sp_scheduler.cli.backfill_cmd:backfill_cmd",
        "history": "sp_scheduler.cli.runs_cmd:history_cmd",
        "enable": "sp_scheduler.cli.runs_cmd:enable_cmd",
        "disable": "sp_scheduler.cli.runs_cmd:disable_cmd",
        "cleanup-sessions": "sp_scheduler.cli.maintenance_cmd:cleanup_sessions_cmd",
        "log-cleanup": "sp_scheduler.cli.maintenance_cmd:log_cleanup_cmd",
        "status": "sp_scheduler.cli.status_cmd:status_cmd",
        "reset": "sp_scheduler.cli.reset_cmd:reset_cmd",
    },
)
def jobs_group() -> None:
    """List, inspect, run, enable and disable jobs."""


def next_fire(definition: JobDefinition, enabled: EnabledState, now: datetime) -> datetime | None:
    """The next scheduled instant, or None when the job is manual-only or not active."""
    if definition.cron is None or not enabled.value:
        return None
    return definition.cron.next_after(now)


def _database_view(state: CliState, names: list[str]) -> tuple[dict[str, Override], dict[str, RunRecord]]:
    """Overrides and last runs, when a database is configured; empty otherwise."""
    if not state.has_database:
        return {}, {}
    # `jobs list` works offline: psycopg only with a database.
    from sp_scheduler.store import get_overrides, last_runs  # noqa: PLC0415

    with state.database() as conn:
        return get_overrides(conn), last_runs(conn, names)


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
    override = overrides.get(definition.name)
    enabled = effective_enabled(catalog, definition, override, now=now)
    last_run = last.get(definition.name)
    source = enabled_source(definition, enabled, override)
    return {
        "name": definition.name,
        "extension": definition.extension,
        "job": definition.job.name,
        "schedule": definition.schedule,
        "timezone": definition.timezone,
        "enabled": enabled.job,
        "enabled_source": source,
        "configured": definition.configured,
        "next_run": iso(next_fire(definition, enabled, now)) if enabled.job else None,
        "last_status": last_run.status if last_run else None,
    }


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def list_jobs(state: CliState, as_json: bool) -> None:
    """Every registered and configured job: schedule, time zone, enabled, next run, last status."""
    catalog = state.catalog()
    overrides, last = _database_view(state, catalog.names())
    now = datetime.now(UTC)
    rows = [job_summary(definition, catalog, overrides, last, now) for definition in catalog]
    if as_json:
        echo_json({"scheduler_enabled": catalog.scheduler_enabled, "jobs": rows})
        return
    if not catalog.scheduler_enabled:
        click.echo("note: the scheduler is disabled in config (scheduler.enabled: false)", err=True)
    echo_table(
        ["NAME", "EXTENSION", "SCHEDULE", "TZ", "ENABLED", "FROM", "NEXT RUN", "LAST"],
        [
            [
                row["name"],
                row["extension"],
                row["schedule"] or ("(manual)" if row["configured"] else "(not configured)"),
                row["timezone"],
                "yes" if row["enabled"] else "no",
                short_source(row["enabled_source"]),
                row["next_run"] or "-",
                row["last_status"] or "-",
            ]
            for row in rows
        ],
    )


@jobs_group.command("show")
@click.argument("name")
@click.option("--count", default=5, show_default=True, type=click.IntRange(0, 100), help="Upcoming times to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def show_job(state: CliState, name: str, count: int, as_json: bool) -> None:
    """Details of one job: the schedule in words, YAML vs code default vs override, upcoming runs, last runs."""
    catalog = state.catalog()
    definition = catalog.get(name)
    runs: list[RunRecord] = []
    override: Override | None = None
    changes: list[OverrideChange] = []
    if state.has_database:
        # `jobs show` works offline: psycopg only with a database.
        from sp_scheduler.store import get_override, history, override_changes  # noqa: PLC0415

        with state.database() as conn:
            override = get_override(conn, name)
            changes = override_changes(conn, name, limit=CHANGES_SHOWN)
            runs = history(conn, job=name, limit=5)
    now = datetime.now(UTC)
    enabled = effective_enabled(catalog, definition, override, now=now)
    upcoming: list[datetime] = []
    if definition.cron is not None and enabled.value:
        upcoming = list(islice(definition.cron.iter_after(now), count))
    entry = definition.entry
    details: dict[str, Any] = {
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
        else [_declared(param) for param in definition.job.parameters],
        "timeout": definition.timeout,
        "overlap": definition.overlap,
        "misfire_grace": definition.misfire_grace,
        "queue": definition.queue,
        "next_runs": [iso(instant) for instant in upcoming],
        "last_runs": [run.to_dict() for run in runs],
    }
    if as_json:
        echo_json(details)
        return
    _print_details(details, scheduler_enabled=catalog.scheduler_enabled)


def _declared(param: Param) -> dict[str, Any]:
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


def _print_parameters(parameters: list[dict[str, Any]] | None) -> None:
    """Declared parameters with their defaults; a job that declares nothing takes any, unchecked."""
    if parameters is None:
        click.echo("Parameters:     not declared (values given with -p or params: pass unchecked)")
        return
    if not parameters:
        click.echo("Parameters:     none")
        return
    click.echo("Parameters:")
    for param in parameters:
        click.echo(f"  {param['summary']}: {param['description']}" if param["description"] else f"  {param['summary']}")


def _grace(seconds: float | None) -> str:
    return "one period (max 1 day)" if seconds is None else f"{seconds:g}s"


def _print_details(details: dict[str, Any], *, scheduler_enabled: bool) -> None:
    def field(label: str, value: object) -> None:
        click.echo(f"{label + ':':<16}{value}")

    field("Name", details["name"])
    field("Extension", f"{details['extension']} (job {details['job']})")
    field("Description", details["description"] or "-")
    field("Schedule", details["schedule"] or "(manual only)")
    if details["schedule_text"]:
        click.echo(f"{'':<16}{details['schedule_text']} ({details['timezone']})")
    field("Code default", details["code_schedule"] or "(manual only)")
    field("Time zone", details["timezone"])
    field("Config", details["source"] or "not in config.yaml: registered, runs only by hand")
    field("YAML enabled", "yes" if details["yaml_enabled"] else "no")
    override = details["override"]
    if override:
        state = "enabled" if override["enabled"] else "disabled"
        reason = f": {override['reason']}" if override["reason"] else ""
        until = f" until {override['expires_at']}" if override["expires_at"] else " until reset"
        field("Override", f"{state} by {override['actor']} at {override['updated_at']}{until}{reason}")
    else:
        field("Override", "none")
    field("Enabled", ("yes" if details["enabled"] else "no") + ("" if scheduler_enabled else " (scheduler off)"))
    field("Enabled from", describe_source(details["enabled_source"]))
    startup = details["run_on_startup"]
    field("On startup", f"{'yes' if startup['effective'] else 'no'} (code: {'yes' if startup['code'] else 'no'})")
    field(
        "Options",
        f"timeout={details['timeout'] or 'none'} overlap={details['overlap']} "
        f"misfire_grace={_grace(details['misfire_grace'])} queue={details['queue']}",
    )
    if details["params"]:
        field("Params", ", ".join(f"{k}={v}" for k, v in details["params"].items()))
    _print_parameters(details["parameters"])
    click.echo("Override changes:")
    for change in details["override_changes"] or [None]:
        click.echo(f"  {describe_change(change)}" if change else "  -")
    click.echo("Next runs:")
    for instant in details["next_runs"] or ["-"]:
        click.echo(f"  {instant}")
    click.echo("Last runs:")
    for run in details["last_runs"] or [None]:
        if run is None:
            click.echo("  -")
            continue
        click.echo(f"  {run['created_at']}  {run['status']:<9}  {run['trigger']:<8}  {run['message'] or ''}".rstrip())


def describe_change(change: Mapping[str, Any]) -> str:
    """One trail entry: `<time>  disable  by alice until <time>: reason`."""
    until = f" until {change['expires_at']}" if change["expires_at"] and change["action"] != "expire" else ""
    reason = f": {change['reason']}" if change["reason"] else ""
    by = "set by" if change["action"] == "expire" else "by"
    return f"{change['at']}  {change['action']:<7}  {by} {change['actor']}{until}{reason}"
