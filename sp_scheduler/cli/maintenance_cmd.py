"""`sp-scheduler jobs cleanup-sessions|log-cleanup`: the seeds' shortcuts to two core jobs.

Each runs the job in this process exactly as `jobs run NAME --local -p ...` would (same code, same
ledger row with trigger = manual, same log lines), prints the result and exits 1 if it failed.
"""

from __future__ import annotations

import click

from sp_scheduler.catalog import JobDefinition
from sp_scheduler.cli.runs_cmd import check_enabled, describe, run_local
from sp_scheduler.cli.state import CliState, echo_json, pass_state
from sp_scheduler.errors import ExitCode, UnknownJob
from sp_scheduler.params import check_params

CORE = "core"


def core_definition(state: CliState, job: str) -> JobDefinition:
    """The catalogue entry running the core job `job`: the one named after it, else the first configured one."""
    catalog = state.catalog()
    candidates = [d for d in catalog if d.extension == CORE and d.job.name == job]
    for definition in candidates:
        if definition.name == job:
            return definition
    if candidates:
        return candidates[0]
    raise UnknownJob(job, catalog.names())


def run_shortcut(state: CliState, job: str, params: dict[str, str], *, force: bool, as_json: bool) -> None:
    """Run one core job locally with `params`, refusing a disabled job unless forced (as `jobs run` does)."""
    definition = core_definition(state, job)
    checked = check_params(definition.name, definition.job.parameters, params, state.settings.param_roots())
    with state.database() as conn:
        check_enabled(conn, state.catalog(), definition, force)
    records = run_local(state, [definition], {definition.name: checked})
    if as_json:
        echo_json([record.to_dict() for record in records])
    else:
        for record in records:
            click.echo(describe(record))
    if not records or any(record.status != "succeeded" for record in records):
        raise SystemExit(ExitCode.FAILURE)


def _params(dry_run: bool, **values: int | None) -> dict[str, str]:
    params = {key: str(value) for key, value in values.items() if value is not None}
    if dry_run:
        params["dry_run"] = "true"
    return params


_dry_run = click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
_force = click.option("--force", is_flag=True, help="Run even if the job is disabled.")
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command("cleanup-sessions")
@click.option("--hours", type=click.IntRange(min=1), help="Expire sessions idle for more than this [job default 1].")
@click.option("--days", type=click.IntRange(min=1), help="Remove sessions ended more than this ago [job default 7].")
@_dry_run
@_force
@_json
@pass_state
def cleanup_sessions_cmd(
    state: CliState, hours: int | None, days: int | None, dry_run: bool, force: bool, as_json: bool
) -> None:
    """Expire idle sessions and remove old ended ones now (runs cleanup_inactive_sessions)."""
    run_shortcut(
        state, "cleanup_inactive_sessions", _params(dry_run, hours=hours, days=days), force=force, as_json=as_json
    )


@click.command("log-cleanup")
@click.option("--days", type=click.IntRange(min=1), help="Delete log lines older than this [job default 30].")
@_dry_run
@_force
@_json
@pass_state
def log_cleanup_cmd(state: CliState, days: int | None, dry_run: bool, force: bool, as_json: bool) -> None:
    """Delete old log lines now and vacuum the logs table (runs database_cleanup for the logs only)."""
    params = {**_params(dry_run, days=days), "oauth": "false"}
    run_shortcut(state, "database_cleanup", params, force=force, as_json=as_json)


MAINTENANCE_COMMANDS = (cleanup_sessions_cmd, log_cleanup_cmd)
