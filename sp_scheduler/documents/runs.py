"""The documents of run history, one run and a run's log lines, with the filters and paging they take."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from sp_scheduler.errors import UsageError
from sp_scheduler.jobs import TRIGGERS, Trigger
from sp_scheduler.run_status import RUN_STATUSES, RunStatus
from sp_scheduler.store import RunPosition, RunRecord, get_run, history, query_logs

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 50
LOG_BATCH = 1000  # log lines per page of a run's logs
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class BadFilter(UsageError):
    """A filter or paging value that cannot be used; the message names it."""


def parse_time(name: str, text: str, now: datetime | None = None) -> datetime:
    """`30s`, `30m`, `1h`, `2d`, `1w` before now, or an ISO-8601 time (naive means UTC)."""
    match = _AGE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        instant = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"{name} {text!r}: expected an age such as 30m, 1h, 2d or an ISO-8601 time") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def encode_cursor(position: RunPosition) -> str:
    """An opaque page token: the (created_at, id) the next page starts after."""
    raw = f"{position.created_at.isoformat()}|{position.run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> RunPosition:
    """The position a page token names; `BadFilter` for one this code did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, _, run_id = raw.partition("|")
        position = RunPosition(datetime.fromisoformat(stamp), run_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadFilter(f"cursor {token!r}: not a cursor this server gave out") from None
    if position.created_at.tzinfo is None or not run_id:
        raise BadFilter(f"cursor {token!r}: not a cursor this server gave out")
    return position


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a history page shows: each field narrows it, `cursor` continues a previous page."""

    job: str | None = None
    status: RunStatus | None = None
    trigger: Trigger | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: RunPosition | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_query(cls, query: Mapping[str, str], now: datetime | None = None) -> RunFilter:
        """From query-string values (`job`, `status`, `trigger`, `since`, `until`, `cursor`, `limit`);
        `BadFilter` names the first value that is wrong, and an unknown name is wrong too."""
        unknown = sorted(set(query) - {"job", "status", "trigger", "since", "until", "cursor", "limit"})
        if unknown:
            raise BadFilter(f"unknown filter {unknown[0]!r} (use job, status, trigger, since, until, cursor, limit)")
        status = query.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            raise BadFilter(f"status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
        trigger = query.get("trigger") or None
        if trigger is not None and trigger not in TRIGGERS:
            raise BadFilter(f"trigger {trigger!r}: expected one of {', '.join(TRIGGERS)}")
        since = parse_time("since", query["since"], now) if query.get("since") else None
        until = parse_time("until", query["until"], now) if query.get("until") else None
        if since is not None and until is not None and until <= since:
            raise BadFilter("until must be later than since")
        return cls(
            job=query.get("job") or None,
            status=status,
            trigger=trigger,
            since=since,
            until=until,
            cursor=decode_cursor(query["cursor"]) if query.get("cursor") else None,
            limit=parse_limit(query.get("limit"), DEFAULT_LIMIT, MAX_LIMIT),
        )

    def query_values(self) -> dict[str, str]:
        """The filter as query-string values (without the cursor), for links to other pages."""
        values = {
            "job": self.job,
            "status": self.status,
            "trigger": self.trigger,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in values.items() if value}


def parse_limit(text: str | None, default: int, maximum: int) -> int:
    """A page size between 1 and `maximum`; `BadFilter` otherwise."""
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadFilter(f"limit {text!r}: expected a whole number from 1 to {maximum}") from None
    if not 1 <= value <= maximum:
        raise BadFilter(f"limit {value}: expected a whole number from 1 to {maximum}")
    return value


def read_runs(conn: psycopg.Connection[Any], runs: RunFilter) -> tuple[list[RunRecord], RunPosition | None]:
    """One page of runs, newest first, and where the next page starts (None on the last page)."""
    records = history(
        conn,
        job=runs.job,
        status=runs.status,
        trigger=runs.trigger,
        since=runs.since,
        until=runs.until,
        before=runs.cursor,
        limit=runs.limit + 1,
    )
    page = records[: runs.limit]
    more = len(records) > runs.limit
    return page, RunPosition.after(page[-1]) if more and page else None


def runs_list(records: list[RunRecord]) -> list[dict[str, Any]]:
    """`jobs history --json`: each run as stored."""
    return [record.to_dict() for record in records]


def runs_page(conn: psycopg.Connection[Any], runs: RunFilter) -> dict[str, Any]:
    """`GET /api/v1/runs`: a page of runs and the cursor of the next page."""
    records, following = read_runs(conn, runs)
    return {"runs": runs_list(records), "next_cursor": encode_cursor(following) if following else None}


def run_document(conn: psycopg.Connection[Any], run_id: str) -> dict[str, Any]:
    """`GET /api/v1/runs/ID`: every recorded field (`UnknownRun` for an id the ledger does not hold)."""
    return get_run(conn, run_id).to_dict()


def log_entries(rows: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    """`logs view --json`: each line with its id (the cursor of following)."""
    return [{"id": log_id, **row.to_dict()} for log_id, row in rows]


def run_logs(conn: psycopg.Connection[Any], run_id: str, after: int = 0, limit: int = LOG_BATCH) -> dict[str, Any]:
    """`GET /api/v1/runs/ID/logs`: the run's lines after the line id `after`, oldest first.

    `next_after` is the id to ask after next time; `finished` says whether the run can still add lines.
    """
    record = get_run(conn, run_id)
    rows = query_logs(conn, run_id=run_id, after_id=after, limit=limit)
    return {
        "run_id": record.id,
        "status": record.status,
        "finished": record.finished,
        "logs": log_entries(rows),
        "next_after": rows[-1][0] if rows else after,
    }
