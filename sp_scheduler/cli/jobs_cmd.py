"""`sp-scheduler jobs list|show`: what the scheduler knows about each job."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import click

from sp_scheduler.cli.lazy import LazyGroup
from sp_scheduler.cli.state import CliState, echo_json, echo_table, pass_state
from sp_scheduler.documents.jobs import describe_source, read_job_details, read_jobs_list, short_source


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


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def list_jobs(state: CliState, as_json: bool) -> None:
    """Every registered and configured job: schedule, time zone, enabled, next run, last status."""
    catalog = state.catalog()
    with state.optional_database() as conn:
        document = read_jobs_list(catalog, conn, datetime.now(UTC))
    if as_json:
        echo_json(document)
        return
    rows = document["jobs"]
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
    catalog.get(name)  # an unknown job is an error before any database is opened
    with state.optional_database() as conn:
        details = read_job_details(catalog, name, conn, datetime.now(UTC), count)
    if as_json:
        echo_json(details)
        return
    _print_details(details, scheduler_enabled=catalog.scheduler_enabled)


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
