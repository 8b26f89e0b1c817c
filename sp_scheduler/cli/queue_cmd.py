"""`sp-scheduler queue`: the broker's side, starting with the items workers set aside as unusable."""

from __future__ import annotations

import click
import redis

from sp_scheduler import dead_letters
from sp_scheduler.cli.state import CliState, echo_json, echo_table, pass_state
from sp_scheduler.errors import BrokerUnavailable, UsageError
from sp_scheduler.redact import redis_problem
from sp_scheduler.redis_clients import redis_client

RAW_SHOWN = 60  # characters of each item in the table (--json shows it whole)


@click.group("queue")
def queue_group() -> None:
    """Inspect the broker's queues."""


@queue_group.command("dead-letters")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, each item in full.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show only the newest N items.")
@click.option("--drop", is_flag=True, help="Delete every item set aside.")
@click.option("--requeue", is_flag=True, help="Put every item back on its queue (after fixing what sent it).")
@pass_state
def dead_letters_cmd(state: CliState, as_json: bool, limit: int | None, drop: bool, requeue: bool) -> None:
    """List the queue items workers set aside as unusable (newest first), or drop or requeue them all."""
    if drop and requeue:
        raise UsageError("choose one of --drop and --requeue")
    client = redis_client(state.settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    try:
        if drop:
            click.echo(f"dropped {dead_letters.drop(client)} dead letter(s)")
            return
        if requeue:
            click.echo(f"requeued {dead_letters.requeue(client)} dead letter(s)")
            return
        letters = dead_letters.read(client, limit)
    except redis.RedisError as exc:
        url = state.settings.redis_url
        raise BrokerUnavailable(redis_problem(url, exc)) from None
    if as_json:
        echo_json({"dead_letters": [letter.to_dict() for letter in letters]})
        return
    if not letters:
        click.echo("no dead letters")
        return
    echo_table(
        ["SET ASIDE", "QUEUE", "MESSAGE ID", "WORKER", "REASON", "ITEM"],
        [
            [
                letter.at,
                letter.queue,
                letter.message_id or "-",
                letter.worker,
                letter.reason,
                _shown(letter.raw),
            ]
            for letter in letters
        ],
    )


def _shown(raw: str) -> str:
    """An item on one table line, cut short."""
    line = raw.replace("\r", "\\r").replace("\n", "\\n")
    return line if len(line) <= RAW_SHOWN else line[: RAW_SHOWN - 3] + "..."
