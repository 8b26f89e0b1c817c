"""`sp-scheduler jobs backfill NAME --from TIME --to TIME`: run a job's past cron slots.

Each slot in the range that has no scheduled or backfill run gets a `queued` run with trigger
`backfill` and its own `scheduled_for`, then the run message, as `jobs run` does for a manual run.
The ledger's slot index decides which slots are free, in the same statement that queues them, so two
backfills of one range, or a backfill and beat, never both run a slot. The rules of the range are in
`sp_scheduler/backfill.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from sp_scheduler.backfill import (
    COUNT_LIMIT,
    DEFAULT_MAX_SLOTS,
    check_range,
    range_slots,
    render_json,
    render_text,
    retention_note,
    slot_reports,
)
from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.cli.expiry import parse_instant
from sp_scheduler.cli.runs_cmd import check_enabled
from sp_scheduler.cli.state import CliState, echo_json, pass_state
from sp_scheduler.config_retention import Retention
from sp_scheduler.cron import load_zone
from sp_scheduler.errors import BrokerUnavailable, UsageError
from sp_scheduler.redact import redis_problem
from sp_scheduler.store import enqueue_backfill, release_backfill, slot_holders, slot_run_id

if TYPE_CHECKING:
    import psycopg

    from sp_scheduler.store import RunRecord

_TIME_HELP = "ISO-8601 time; without an offset it is in the job's time zone. The range includes both ends."


@click.command("backfill")
@click.argument("name")
@click.option("--from", "from_text", required=True, metavar="TIME", help=f"First slot to cover. {_TIME_HELP}")
@click.option(
    "--to", "to_text", required=True, metavar="TIME", help=f"Last slot to cover, not in the future. {_TIME_HELP}"
)
@click.option("--dry-run", is_flag=True, help="List the slots that would be queued and those skipped; enqueue nothing.")
@click.option(
    "--max",
    "max_slots",
    default=DEFAULT_MAX_SLOTS,
    show_default=True,
    type=click.IntRange(1, COUNT_LIMIT),
    help="Refuse a range with more slots than this (exit 2, nothing enqueued).",
)
@click.option("--force", is_flag=True, help="Backfill even if the job is disabled.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def backfill_cmd(
    state: CliState,
    name: str,
    from_text: str,
    to_text: str,
    dry_run: bool,
    max_slots: int,
    force: bool,
    as_json: bool,
) -> None:
    """Run a job's missed past cron slots (trigger = backfill), each at most once.

    A slot that already has a scheduled or backfill run (whatever its status: succeeded, failed,
    missed, skipped...) is skipped and listed. The job's overlap policy applies on the worker as for
    any run.
    """
    catalog = state.catalog()
    definition = catalog.get(name)
    if definition.cron is None:
        raise UsageError(f"job {definition.name!r} has no schedule (manual only, or not in the config): no slots")
    zone = load_zone(definition.timezone)
    start = parse_instant("--from", from_text, zone)
    end = parse_instant("--to", to_text, zone)
    check_range(start, end, datetime.now(UTC))
    slots = range_slots(definition.cron, start, end, max_slots)
    note = retention_note(start, _runs_kept(catalog, definition), datetime.now(UTC))
    if note is not None and slots:
        click.echo(note, err=True)
    with state.database() as conn:
        check_enabled(conn, catalog, definition, force)
        if dry_run:
            holders = slot_holders(conn, job_name=definition.name, slots=slots)
            queued = {slot: slot_run_id(definition.name, slot) for slot in slots if slot not in holders}
        else:
            runs = enqueue_backfill(conn, job_name=definition.name, slots=slots, params=definition.params)
            conn.commit()
            _publish(state, conn, definition, runs)
            queued = {run.scheduled_for: run.id for run in runs if run.scheduled_for is not None}
            holders = slot_holders(conn, job_name=definition.name, slots=[s for s in slots if s not in queued])
        conn.commit()
    reports = slot_reports(slots, queued, holders)
    if as_json:
        echo_json(render_json(definition.name, start, end, reports, dry_run=dry_run))
        return
    for line in render_text(definition.name, reports, dry_run=dry_run, zone=zone):
        click.echo(line)


def _runs_kept(catalog: Catalog, definition: JobDefinition) -> timedelta:
    """How long the job's finished runs are kept: its own `retention: runs`, else the config's."""
    base = catalog.config.retention if catalog.config is not None else Retention()
    own = definition.entry.retention.runs if definition.entry is not None else None
    return own or base.runs


def _publish(
    state: CliState, conn: psycopg.Connection[Any], definition: JobDefinition, runs: Sequence[RunRecord]
) -> None:
    """Send each queued run's message; if the broker fails, free the slots whose message never left."""
    from kombu.exceptions import OperationalError  # noqa: PLC0415 -- celery loads only for a run sent to workers

    from sp_scheduler.celery_app import configured_app  # noqa: PLC0415 -- celery loads only for a run sent to workers
    from sp_scheduler.messages import RunRequest, send_run  # noqa: PLC0415 -- celery loads only for a run sent to workers

    app = configured_app(state.settings)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for run in runs:
                request = RunRequest(definition.name, "backfill", run.scheduled_for, run.id, {})
                send_run(app, request, queue=definition.queue, timeout=definition.timeout, producer=producer)
                sent += 1
    except OperationalError as exc:
        message = redis_problem(state.settings.redis_url, exc)
        released = release_backfill(conn, runs[sent:])
        conn.commit()
        raise BrokerUnavailable(
            f"{message}; {sent} backfill run(s) sent, {released} slot(s) released (run the same command again)"
        ) from None
