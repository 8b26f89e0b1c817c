"""`sp-scheduler logs view`: the logs table, where every job run's lines and errors land."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
import psycopg

from sp_scheduler.cli.state import CliState, echo_json, pass_state
from sp_scheduler.documents.runs import log_entries, parse_time
from sp_scheduler.errors import DatabaseUnavailable
from sp_scheduler.ledger.postgres import is_connection_failure
from sp_scheduler.store import query_logs

if TYPE_CHECKING:
    from sp_scheduler.store import LogRecordRow

LEVELS = ("debug", "info", "warning", "error", "critical")
FOLLOW_INTERVAL = 0.5
FOLLOW_BATCH = 1000
# How long a line's transaction may still commit after a line with a higher id became visible.
LATE_COMMIT_WINDOW = 10.0


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30s`, `30m`, `1h`, `2d`, `1w` before now, or an ISO-8601 time (naive means UTC)."""
    return parse_time("--since", text, now)


def format_line(row: LogRecordRow) -> str:
    """`2026-01-01T12:00:00.123Z ERROR    job [run] message key=value ...`, the traceback indented below."""
    stamp = row.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    where = row.job_name or row.logger
    run = f" [{row.run_id[:8]}]" if row.run_id else ""
    fields = " ".join(f"{key}={_value(value)}" for key, value in row.fields.items() if key != "traceback")
    line = f"{stamp} {row.level:<8} {where}{run} {row.message}" + (f"  {fields}" if fields else "")
    trace = row.fields.get("traceback")
    if trace:
        line += "\n" + "\n".join("    " + part for part in str(trace).rstrip().splitlines())
    return line


def _value(value: Any) -> str:
    if isinstance(value, str) and value and not any(char.isspace() or char in "\"'=" for char in value):
        return value
    return json.dumps(value, default=str)


@click.group("logs")
def logs_group() -> None:
    """Read the log lines jobs and processes wrote to Postgres."""


@logs_group.command("view")
@click.option("--level", type=click.Choice(LEVELS, case_sensitive=False), help="Only lines at this level or above.")
@click.option("--since", metavar="AGE|TIME", help="Only lines newer than 30s, 30m, 1h, 2d ... or an ISO-8601 time.")
@click.option("--job", help="Only lines of this job.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Only lines of this run.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000), help="Newest N lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines as they arrive (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="JSON (one object per line with --follow).")
@pass_state
def view_cmd(
    state: CliState,
    level: str | None,
    since: str | None,
    job: str | None,
    run_id: str | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """The newest log lines, oldest first, filtered by level (at least), age, job and run."""
    filters: dict[str, Any] = {
        "min_level": level,
        "since": parse_since(since) if since else None,
        "job": job,
        "run_id": run_id,
    }
    try:
        with state.database() as conn:
            rows = list(reversed(query_logs(conn, **filters, limit=limit)))
            if as_json and not follow:
                echo_json(log_entries(rows))
                return
            _print(rows, as_json)
            if follow:
                floor = rows[0][0] - 1 if rows else _newest_id(conn)
                _follow(conn, filters, floor, {log_id for log_id, _ in rows}, as_json)
    except psycopg.Error as exc:
        if not is_connection_failure(exc):
            raise
        raise DatabaseUnavailable(f"lost the database connection: {str(exc).strip().splitlines()[0]}") from None


def _print(rows: Sequence[tuple[int, LogRecordRow]], as_json: bool) -> None:
    for log_id, row in rows:
        click.echo(json.dumps(log_entries([(log_id, row)])[0], default=str) if as_json else format_line(row))


def _newest_id(conn: psycopg.Connection[Any]) -> int:
    """Where following starts when nothing matched yet: after the newest line of any kind."""
    newest = query_logs(conn, limit=1)
    return newest[0][0] if newest else 0


def _follow(
    conn: psycopg.Connection[Any], filters: dict[str, Any], floor: int, printed: set[int], as_json: bool
) -> None:
    """Poll for lines after `floor` that are not `printed` yet, until Ctrl-C.

    A line's id is given out when it is inserted, not when its transaction commits, so a line can
    become visible after one with a higher id was printed. Each poll therefore reads again from the
    newest id seen `LATE_COMMIT_WINDOW` seconds before, and skips the lines it printed already.
    """
    marks: deque[tuple[float, int]] = deque([(time.monotonic(), floor)])  # (when, newest id seen then)
    newest = max(printed, default=floor)
    try:
        while True:
            now = time.monotonic()
            while len(marks) > 1 and marks[1][0] <= now - LATE_COMMIT_WINDOW:
                marks.popleft()
            floor = marks[0][1]
            printed = {log_id for log_id in printed if log_id > floor}
            rows = query_logs(conn, **filters, limit=FOLLOW_BATCH + len(printed), after_id=floor)
            fresh = [(log_id, row) for log_id, row in rows if log_id not in printed]
            _print(fresh, as_json)
            printed.update(log_id for log_id, _ in fresh)
            newest = max(newest, rows[-1][0]) if rows else newest
            marks.append((now, newest))
            if len(fresh) < FOLLOW_BATCH:
                time.sleep(FOLLOW_INTERVAL)  # the poll interval of a tail, not a synchronisation guess
    except KeyboardInterrupt:
        return
