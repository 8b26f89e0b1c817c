"""`sp-scheduler alerts`: send a test alert to a target, and list what was sent (docs/alerts.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from sp_scheduler.alert_payload import build_payload, event_for_alerts_test
from sp_scheduler.alert_targets import describe, send
from sp_scheduler.cli.state import CliState, echo_json, echo_table, pass_state
from sp_scheduler.errors import SchedulerError, UsageError
from sp_scheduler.store.alerts import delivery_history


@click.group("alerts")
def alerts_group() -> None:
    """Alert targets and the alerts sent."""


@alerts_group.command("test")
@click.argument("target")
@click.option("--web-url", envvar="SP_WEB_URL", help="Dashboard base URL for links [env SP_WEB_URL].")
@pass_state
def test_cmd(state: CliState, target: str, web_url: str | None) -> None:
    """Send one test alert to TARGET now (one attempt, outside the outbox); exit 1 if it is not taken."""
    config = state.catalog().config
    targets = config.alerts.targets if config is not None else {}
    chosen = targets.get(target)
    if chosen is None:
        known = ", ".join(sorted(targets)) or "none defined"
        raise UsageError(f"unknown alert target {target!r} (alerts.targets: {known})")
    payload = build_payload(event_for_alerts_test(target, datetime.now(UTC)), web_url, test=True)
    result = send(chosen, payload, attempt=1)
    where = describe(chosen)
    if not result.delivered:
        raise SchedulerError(f"test alert to {target!r} ({where}) not delivered: {result.error}")
    click.echo(f"test alert delivered to {target!r} ({where})")


@alerts_group.command("history")
@click.option("--job", "job_name", help="Only this job's alerts.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest N lines.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def history_cmd(state: CliState, job_name: str | None, limit: int, as_json: bool) -> None:
    """What was sent (newest first): when, which job and event, to which target, delivered or not."""
    with state.database() as conn:
        records = delivery_history(conn, job_name=job_name, limit=limit)
    if as_json:
        echo_json({"alerts": [record.to_dict() for record in records]})
        return
    if not records:
        click.echo("no alerts")
        return
    echo_table(
        ["QUEUED", "JOB", "EVENT", "TARGET", "OUTCOME", "ATTEMPTS", "DETAIL"],
        [
            [
                record.created_at.isoformat(timespec="seconds"),
                record.job_name,
                record.event,
                record.target or "-",
                record.outcome,
                str(record.attempts),
                record.suppressed or record.last_error or "-",
            ]
            for record in records
        ],
    )
