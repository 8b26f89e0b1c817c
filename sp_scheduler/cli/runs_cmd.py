"""`sp-scheduler jobs run|history|enable|disable`: act on jobs through the ledger and the broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, cast

import click

from sp_scheduler.actions import describe_override, disabled_run_allowed, enqueue_manual_run, request_beat_sync
from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.cli.expiry import expiry
from sp_scheduler.cli.state import CliState, echo_json, echo_table, pass_state
from sp_scheduler.documents.runs import runs_list
from sp_scheduler.errors import (
    DatabaseUnavailable,
    ExitCode,
    UnknownJob,
    UsageError,
    WaitTimedOut,
)
from sp_scheduler.params import check_params
from sp_scheduler.run_status import FINISHED_STATUSES, RUN_STATUSES, RunStatus
from sp_scheduler.store import describe_url, enqueue_run, get_run, history, set_enabled

if TYPE_CHECKING:
    import psycopg

    from sp_scheduler.store import RunRecord


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """`-p K=V` pairs as a dict; a malformed pair is a one-line usage error."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p {pair!r}: expected KEY=VALUE")
        params[key.strip()] = value
    return params


def check_enabled(conn: psycopg.Connection[Any], catalog: Catalog, definition: JobDefinition, force: bool) -> None:
    """Refuse a disabled job unless `force` (then say so): the rule every manual run follows."""
    if disabled_run_allowed(conn, catalog, definition, force, "use --force"):
        click.echo(f"note: {definition.name} is disabled; running it anyway (--force)", err=True)


def _wait(conn: psycopg.Connection[Any], run_ids: list[str], timeout: float) -> list[RunRecord]:
    """Poll the ledger until every run is finished, or give up at the deadline."""
    deadline = time.monotonic() + timeout
    interval = 0.05
    while True:
        records = [get_run(conn, run_id) for run_id in run_ids]
        conn.commit()
        if all(record.status in FINISHED_STATUSES for record in records):
            return records
        if time.monotonic() >= deadline:
            pending = [r.job_name for r in records if r.status not in FINISHED_STATUSES]
            raise WaitTimedOut(f"gave up waiting after {timeout:g} s for {', '.join(pending)} (the runs go on)")
        time.sleep(interval)  # poll interval of a deadline-bounded wait, not a synchronisation guess
        interval = min(interval * 1.5, 0.5)


def describe(record: RunRecord) -> str:
    duration = f"{record.duration_ms} ms" if record.duration_ms is not None else "-"
    stats = f"processed {record.items_processed}, failed {record.items_failed}"
    message = f": {record.message}" if record.message else ""
    return f"{record.job_name}  {record.status}  in {duration}  ({stats}){message}"


@click.command("run")
@click.argument("names", nargs=-1, required=True)
@click.option("--wait", is_flag=True, help="Wait for the runs and print their results; exit 1 if one failed.")
@click.option(
    "--timeout", default=600.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds --wait waits."
)
@click.option("--local", is_flag=True, help="Run in this process instead of on a worker (still recorded).")
@click.option("--force", is_flag=True, help="Run even if the job is disabled.")
@click.option("-p", "--param", "param_pairs", multiple=True, metavar="K=V", help="Job parameter (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def run_jobs(
    state: CliState,
    names: tuple[str, ...],
    wait: bool,
    timeout: float,
    local: bool,
    force: bool,
    param_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run jobs now, outside their schedule (which this never moves); trigger = manual."""
    catalog = state.catalog()
    definitions = [catalog.get(name) for name in names]
    params = parse_params(param_pairs)
    roots = state.settings.param_roots()
    # Checked before anything is written: a typo'd or badly typed parameter never becomes a run.
    checked = {d.name: check_params(d.name, d.job.parameters, params, roots) for d in definitions}
    with state.database() as conn:
        for definition in definitions:
            check_enabled(conn, catalog, definition, force)
        if local:
            records = run_local(state, definitions, checked)
        else:
            run_ids = [
                enqueue_manual_run(state.settings, conn, definition, checked[definition.name])
                for definition in definitions
            ]
            if not wait:
                if as_json:
                    echo_json([{"job": d.name, "run_id": r} for d, r in zip(definitions, run_ids, strict=True)])
                else:
                    for definition, run_id in zip(definitions, run_ids, strict=True):
                        click.echo(f"queued {definition.name} run {run_id}")
                return
            records = _wait(conn, run_ids, timeout)
    if as_json:
        echo_json([record.to_dict() for record in records])
    else:
        for record in records:
            click.echo(describe(record))
    if any(record.status != "succeeded" for record in records):
        raise SystemExit(ExitCode.FAILURE)


def run_local(state: CliState, definitions: list[JobDefinition], checked: dict[str, dict[str, Any]]) -> list[RunRecord]:
    """Run jobs in this process through the worker's code path, so each is recorded in the ledger."""
    # Celery loads only for runs.
    from sp_scheduler.messages import RunRequest  # noqa: PLC0415
    from sp_scheduler.runner import WorkerRuntime, execute_run  # noqa: PLC0415

    runtime = WorkerRuntime(state.settings)
    records = []
    try:
        for definition in definitions:
            params = checked[definition.name]
            run_id = str(uuid.uuid4())
            with runtime.ledger().connection() as conn:
                enqueue_run(
                    conn,
                    run_id=run_id,
                    job_name=definition.name,
                    trigger="manual",
                    scheduled_for=None,
                    params={**definition.params, **params},
                )
            recorded = execute_run(runtime, RunRequest(definition.name, "manual", None, run_id, params))
            if recorded is not None:
                records.append(_wait_recorded(recorded, state))
    finally:
        runtime.close()
    return records


def _wait_recorded(recorded: Future[RunRecord], state: CliState) -> RunRecord:
    """The run's stored row, once the run keeper has written its outcome."""
    from sp_scheduler.runner import OUTCOME_FLUSH_SECONDS  # noqa: PLC0415 -- celery loads only for runs

    try:
        return recorded.result(timeout=OUTCOME_FLUSH_SECONDS)
    except FutureTimeout:
        where = describe_url(state.settings.require_database_url())
        raise DatabaseUnavailable(f"cannot record the run's outcome: Postgres at {where} does not answer") from None


@click.command("history")
@click.option("--job", "job", help="Only this job.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def history_cmd(state: CliState, job: str | None, limit: int, status: str | None, as_json: bool) -> None:
    """Recent runs, newest first: trigger, slot, timings, status, stats, worker."""
    with state.database() as conn:
        records = history(conn, job=job, status=cast(RunStatus | None, status), limit=limit)
        if (
            job is not None
            and not records
            and state.catalog().find(job) is None
            and not history(conn, job=job, limit=1)
        ):
            raise UnknownJob(job, state.catalog().names())  # a removed job with runs still shows them
    if as_json:
        echo_json(runs_list(records))
        return
    echo_table(
        ["CREATED", "JOB", "TRIGGER", "STATUS", "SCHEDULED FOR", "DURATION", "ITEMS", "WORKER", "MESSAGE"],
        [
            [
                record.created_at.isoformat(timespec="seconds"),
                record.job_name,
                record.trigger,
                record.status,
                record.scheduled_for.isoformat() if record.scheduled_for else "-",
                f"{record.duration_ms} ms" if record.duration_ms is not None else "-",
                f"{record.items_processed}/{record.items_failed}",
                record.worker or "-",
                (record.message or "").splitlines()[0][:80] if record.message else "",
            ]
            for record in records
        ],
    )


def _set_enabled(
    state: CliState, name: str, enabled: bool, reason: str | None, for_: str | None = None, until: str | None = None
) -> None:
    expires_at = expiry(for_, until)
    definition = state.catalog().get(name)
    with state.database() as conn:
        override = set_enabled(
            conn, definition.name, enabled=enabled, actor=state.settings.actor, reason=reason, expires_at=expires_at
        )
    signal_beat(state)
    word, _, rest = describe_override(override).partition(" ")
    click.echo(f"{word} {definition.name} {rest}")


def signal_beat(state: CliState) -> None:
    """Tell the leading beat to apply the override now (it also re-syncs every few seconds anyway)."""
    problem = request_beat_sync(state.settings.redis_url)
    if problem is not None:
        click.echo(
            f"note: could not signal beat ({problem}); it applies the change at its next periodic sync", err=True
        )


_FOR_HELP = "End the override after this long (30m, 2h, 1d, 1h30m); the config's value then stands again."
_UNTIL_HELP = "End the override at this ISO-8601 time (naive means UTC)."


@click.command("enable")
@click.argument("name")
@click.option("--reason", help="Why (shown in jobs show).")
@click.option("--for", "for_", metavar="DURATION", help=_FOR_HELP)
@click.option("--until", metavar="TIME", help=_UNTIL_HELP)
@pass_state
def enable_cmd(state: CliState, name: str, reason: str | None, for_: str | None, until: str | None) -> None:
    """Enable a job (an override in Postgres, applied to the live schedule; `jobs reset` clears it)."""
    _set_enabled(state, name, True, reason, for_, until)


@click.command("disable")
@click.argument("name")
@click.option("--reason", help="Why (shown in jobs show).")
@click.option("--for", "for_", metavar="DURATION", help=_FOR_HELP)
@click.option("--until", metavar="TIME", help=_UNTIL_HELP)
@pass_state
def disable_cmd(state: CliState, name: str, reason: str | None, for_: str | None, until: str | None) -> None:
    """Disable a job without removing its configuration (an override in Postgres; `jobs reset` clears it)."""
    _set_enabled(state, name, False, reason, for_, until)


RUN_COMMANDS = (run_jobs, history_cmd, enable_cmd, disable_cmd)
