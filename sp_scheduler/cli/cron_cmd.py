"""`sp-scheduler cron`: preview when an expression fires."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import click

from sp_scheduler.cron import CronExpression, load_zone
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


@cron_group.command("next")
@click.argument("expression")
@click.option("--count", "-n", default=5, show_default=True, type=click.IntRange(1, 10_000), help="How many times.")
@click.option("--after", help="Start after this ISO-8601 instant (naive = wall clock in --tz) [default: now].")
@click.option("--tz", "tz", default="UTC", show_default=True, help="IANA time zone the expression runs in.")
def cron_next(expression: str, count: int, after: str | None, tz: str) -> None:
    """Print the next fire times of EXPRESSION, one ISO-8601 instant per line."""
    cron = CronExpression.parse(expression, load_zone(tz))
    start = parse_instant(after, "--after") if after else datetime.now(UTC)
    for instant in islice(cron.iter_after(start), count):
        click.echo(instant.isoformat())
