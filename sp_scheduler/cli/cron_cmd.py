"""`sp-scheduler cron`: preview when an expression fires."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import click

from sp_scheduler.cli.state import echo_json
from sp_scheduler.cron import CronExpression, load_zone
from sp_scheduler.cron_describe import describe
from sp_scheduler.errors import UsageError


@click.group("cron")
def cron_group() -> None:
    """Preview six-field cron expressions (seconds first)."""


def parse_instant(text: str, option: str) -> datetime:
    """An ISO-8601 instant from the command line, or a one-line usage error."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an ISO-8601 date-time (e.g. 2026-03-29T01:50:00)") from None


def _emit(cron: CronExpression, key: str, start: datetime, instants: list[datetime], as_json: bool) -> None:
    """The reading of the expression, then one instant per line (or all of it as JSON)."""
    reading = describe(cron.source)
    if as_json:
        echo_json(
            {
                "expression": cron.source,
                "schedule_text": reading,
                "timezone": cron.tz.key,
                key: start.isoformat(),
                "times": [instant.isoformat() for instant in instants],
            }
        )
        return
    click.echo(f"{reading} ({cron.tz.key})")
    for instant in instants:
        click.echo(instant.isoformat())


_count = click.option(
    "--count", "-n", default=5, show_default=True, type=click.IntRange(1, 10_000), help="How many times."
)
_tz = click.option("--tz", "tz", default="UTC", show_default=True, help="IANA time zone the expression runs in.")
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@cron_group.command("next")
@click.argument("expression")
@_count
@click.option("--after", help="Start after this ISO-8601 instant (naive = wall clock in --tz) [default: now].")
@_tz
@_json
def cron_next(expression: str, count: int, after: str | None, tz: str, as_json: bool) -> None:
    """Print what EXPRESSION means in words, then its next fire times, one ISO-8601 instant per line."""
    cron = CronExpression.parse(expression, load_zone(tz))
    start = parse_instant(after, "--after") if after else datetime.now(UTC)
    _emit(cron, "after", start, list(islice(cron.iter_after(start), count)), as_json)


@cron_group.command("prev")
@click.argument("expression")
@_count
@click.option("--before", help="Look back from this ISO-8601 instant (naive = wall clock in --tz) [default: now].")
@_tz
@_json
def cron_prev(expression: str, count: int, before: str | None, tz: str, as_json: bool) -> None:
    """Print what EXPRESSION means in words, then its previous fire times, newest first, one per line."""
    cron = CronExpression.parse(expression, load_zone(tz))
    start = parse_instant(before, "--before") if before else datetime.now(UTC)
    instants: list[datetime] = []
    moment = start
    try:
        for _ in range(count):
            moment = cron.prev_before(moment)
            instants.append(moment)
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"{expression!r} has no fire time before {moment.isoformat()}") from None
    _emit(cron, "before", start, instants, as_json)
