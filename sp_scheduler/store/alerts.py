"""The alert tables (migration 0010): per-job alert state, the outbox of events, and their deliveries.

Events caused by run outcomes and missed slots are queued by the SQL that records them
(`sp_alert_observe`, `sp_alert_missed` in store/sql/functions.sql). What is here is the notifier's
side: the events it queues itself (late, renotify, paused), routing each event to its targets, and
claiming deliveries under a lease so a notifier that dies mid-delivery leaves them to be retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sp_scheduler.store.records import as_utc
from sp_scheduler.store.state import set_enabled

log = logging.getLogger(__name__)

AlertEvent = Literal["failed", "timeout", "lost", "missed", "late", "recovered", "paused"]
ALERT_EVENTS: tuple[AlertEvent, ...] = ("failed", "timeout", "lost", "missed", "late", "recovered", "paused")
AUTO_PAUSE_ACTOR = "auto-pause"


def _run_id(row: Mapping[str, Any]) -> str | None:
    return str(row["run_id"]) if row["run_id"] is not None else None


@dataclass(frozen=True, slots=True)
class AlertState:
    """A job's alert state: `ok`, `failing` or `late`, since when, and the failures in a row."""

    job_name: str
    state: str
    since: datetime
    consecutive_failures: int
    last_notified_at: datetime | None
    paused_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AlertState:
        return cls(
            job_name=row["job_name"],
            state=row["state"],
            since=row["since"].astimezone(UTC),
            consecutive_failures=row["consecutive_failures"],
            last_notified_at=as_utc(row["last_notified_at"]),
            paused_at=as_utc(row["paused_at"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since.isoformat(),
            "consecutive_failures": self.consecutive_failures,
            "last_notified_at": self.last_notified_at.isoformat() if self.last_notified_at else None,
            "paused_at": self.paused_at.isoformat() if self.paused_at else None,
        }


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One alert event as queued: what happened to which job (and run), with the run's facts in `detail`."""

    id: int
    job_name: str
    event: AlertEvent
    run_id: str | None
    detail: Mapping[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OutboxEvent:
        return cls(
            id=row["id"],
            job_name=row["job_name"],
            event=row["event"],
            run_id=_run_id(row),
            detail=row["detail"] or {},
            created_at=row["created_at"].astimezone(UTC),
        )


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A delivery this notifier claimed: send `event` to `target`; `attempts` counts this one."""

    id: int
    target: str
    attempts: int
    event: OutboxEvent


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One line of `alerts history`: an event and what became of it at one target (or why none)."""

    outbox_id: int
    job_name: str
    event: str
    run_id: str | None
    created_at: datetime
    target: str | None
    attempts: int
    delivered_at: datetime | None
    gave_up_at: datetime | None
    last_error: str | None
    suppressed: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeliveryRecord:
        return cls(
            outbox_id=row["outbox_id"],
            job_name=row["job_name"],
            event=row["event"],
            run_id=_run_id(row),
            created_at=row["created_at"].astimezone(UTC),
            target=row["target"],
            attempts=row["attempts"],
            delivered_at=as_utc(row["delivered_at"]),
            gave_up_at=as_utc(row["gave_up_at"]),
            last_error=row["last_error"],
            suppressed=row["suppressed"],
        )

    @property
    def outcome(self) -> str:
        if self.suppressed:
            return "suppressed"
        if self.target is None:
            return "unrouted"
        if self.delivered_at is not None:
            return "delivered"
        return "gave up" if self.gave_up_at is not None else "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "outbox_id": self.outbox_id,
            "job": self.job_name,
            "event": self.event,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "target": self.target,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "gave_up_at": self.gave_up_at.isoformat() if self.gave_up_at else None,
            "last_error": self.last_error,
            "suppressed": self.suppressed,
        }


def alert_states(conn: psycopg.Connection[Any]) -> dict[str, AlertState]:
    """Every job's alert state row, by job name (a job without one is `ok`)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT job_name, state, since, consecutive_failures, last_notified_at, paused_at FROM sp_alert_state"
        ).fetchall()
    return {row["job_name"]: AlertState.from_row(row) for row in rows}


def _queue(
    cur: psycopg.Cursor[Any], job_name: str, event: AlertEvent, run_id: str | None, detail: Mapping[str, Any]
) -> None:
    cur.execute(
        "INSERT INTO sp_alert_outbox (job_name, event, run_id, detail) VALUES (%s, %s, %s, %s)",
        (job_name, event, run_id, Jsonb(dict(detail))),
    )


def mark_late(conn: psycopg.Connection[Any], job_name: str, detail: Mapping[str, Any]) -> bool:
    """Move an `ok` job to `late` and queue one `late` event, in one transaction; False if it was not ok
    (already late or failing: alerted already, or another notifier got there first)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sp_alert_state (job_name, state) VALUES (%s, 'ok') ON CONFLICT DO NOTHING", (job_name,)
        )
        row = cur.execute(
            "UPDATE sp_alert_state SET state = 'late', since = clock_timestamp(), last_notified_at = clock_timestamp(),"
            " updated_at = clock_timestamp() WHERE job_name = %s AND state = 'ok' RETURNING 1",
            (job_name,),
        ).fetchone()
        if row is None:
            return False
        _queue(cur, job_name, "late", None, {"status": "late", **detail})
    return True


def renotify(conn: psycopg.Connection[Any], job_name: str, older_than: datetime) -> bool:
    """Queue the job's current state again (`failed` or `late`) when it was last notified before
    `older_than`; False when it is ok, or was notified since (by another notifier, say)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE sp_alert_state SET last_notified_at = clock_timestamp()"
            " WHERE job_name = %s AND state <> 'ok' AND (last_notified_at IS NULL OR last_notified_at < %s)"
            " RETURNING state, since, consecutive_failures, last_run_id",
            (job_name, older_than),
        ).fetchone()
        if row is None:
            return False
        event: AlertEvent = "failed" if row["state"] == "failing" else "late"
        run_id = str(row["last_run_id"]) if row["last_run_id"] and event == "failed" else None
        detail = {
            "status": event,
            "renotify": True,
            "since": row["since"].astimezone(UTC).isoformat(),
            "consecutive_failures": row["consecutive_failures"],
        }
        _queue(cur, job_name, event, run_id, detail)
    return True


def auto_pause(conn: psycopg.Connection[Any], job_name: str, failures: int) -> bool:
    """Disable the job with an override (actor `auto-pause`) when it has failed `failures` times in a row
    since it was last paused, and queue a `paused` event, in one transaction; False otherwise."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT consecutive_failures, pause_base, last_run_id FROM sp_alert_state"
            " WHERE job_name = %s AND state = 'failing' FOR UPDATE",
            (job_name,),
        ).fetchone()
        if row is None or row["consecutive_failures"] - row["pause_base"] < failures:
            return False
        count = row["consecutive_failures"]
        reason = f"auto-pause: {count} consecutive failed runs (pause_after_failures: {failures})"
        set_enabled(conn, job_name, enabled=False, actor=AUTO_PAUSE_ACTOR, reason=reason)
        cur.execute(
            "UPDATE sp_alert_state SET pause_base = consecutive_failures, paused_at = clock_timestamp(),"
            " last_notified_at = clock_timestamp(), updated_at = clock_timestamp() WHERE job_name = %s",
            (job_name,),
        )
        run_id = str(row["last_run_id"]) if row["last_run_id"] else None
        _queue(cur, job_name, "paused", run_id, {"status": "paused", "consecutive_failures": count, "message": reason})
    log.warning("job paused after consecutive failures", extra={"job": job_name, "failures": count})
    return True


Router = Callable[[OutboxEvent], tuple[Sequence[str], str | None]]


def route_events(conn: psycopg.Connection[Any], router: Router, *, limit: int = 100) -> int:
    """Turn queued events into one delivery per target `router` names (or mark them suppressed with its
    reason), oldest first; concurrent notifiers skip each other's rows. Returns how many were routed."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, job_name, event, run_id, detail, created_at FROM sp_alert_outbox"
            " WHERE routed_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        ).fetchall()
        for row in rows:
            event = OutboxEvent.from_row(row)
            targets, suppressed = router(event)
            if targets:
                cur.executemany(
                    "INSERT INTO sp_alert_deliveries (outbox_id, target) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(event.id, target) for target in targets],
                )
            cur.execute(
                "UPDATE sp_alert_outbox SET routed_at = clock_timestamp(), suppressed = %s WHERE id = %s",
                (None if targets else suppressed, event.id),
            )
    return len(rows)


def recent_events(conn: psycopg.Connection[Any], job_name: str, since: datetime) -> int:
    """How many of the job's events since `since` went to a target (the flapping limit counts these)."""
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute(
            "SELECT count(*) FROM sp_alert_outbox WHERE job_name = %s AND created_at >= %s"
            " AND routed_at IS NOT NULL AND suppressed IS NULL",
            (job_name, since),
        ).fetchone()
    return int(row[0]) if row is not None else 0


def claim_deliveries(conn: psycopg.Connection[Any], *, lease: float, limit: int = 20) -> list[PendingDelivery]:
    """Deliveries due (never tried, retry time reached, or a lease that lapsed: the notifier holding it
    died), each now held for `lease` seconds and its attempt counted; committed before anything is sent."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "WITH due AS (SELECT id AS due_id FROM sp_alert_deliveries"
            " WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= clock_timestamp()"
            " AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())"
            " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED),"
            " held AS (UPDATE sp_alert_deliveries SET attempts = attempts + 1,"
            " lease_expires_at = clock_timestamp() + make_interval(secs => %s)"
            " FROM due WHERE id = due_id RETURNING id, outbox_id, target, attempts)"
            " SELECT h.id AS delivery_id, h.target, h.attempts, o.id, o.job_name, o.event, o.run_id, o.detail,"
            " o.created_at FROM held h JOIN sp_alert_outbox o ON o.id = h.outbox_id ORDER BY h.id",
            (limit, float(lease)),
        ).fetchall()
    return [
        PendingDelivery(row["delivery_id"], row["target"], row["attempts"], OutboxEvent.from_row(row)) for row in rows
    ]


def mark_delivered(conn: psycopg.Connection[Any], delivery_id: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE sp_alert_deliveries SET delivered_at = clock_timestamp(), lease_expires_at = NULL,"
            " last_error = NULL WHERE id = %s",
            (delivery_id,),
        )


def retry_later(conn: psycopg.Connection[Any], delivery_id: int, *, delay: float, error: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE sp_alert_deliveries SET lease_expires_at = NULL, last_error = %s,"
            " next_attempt_at = clock_timestamp() + make_interval(secs => %s) WHERE id = %s",
            (error, float(delay), delivery_id),
        )


def give_up(conn: psycopg.Connection[Any], delivery_id: int, *, error: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE sp_alert_deliveries SET gave_up_at = clock_timestamp(), lease_expires_at = NULL,"
            " last_error = %s WHERE id = %s",
            (error, delivery_id),
        )


def delivery_history(
    conn: psycopg.Connection[Any], *, job_name: str | None = None, limit: int = 50
) -> list[DeliveryRecord]:
    """The newest events (with each target's delivery, or why they went nowhere), newest first."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT o.id AS outbox_id, o.job_name, o.event, o.run_id, o.created_at, o.suppressed,"
            " d.target, coalesce(d.attempts, 0) AS attempts, d.delivered_at, d.gave_up_at, d.last_error"
            " FROM sp_alert_outbox o LEFT JOIN sp_alert_deliveries d ON d.outbox_id = o.id"
            " WHERE %(job)s::text IS NULL OR o.job_name = %(job)s"
            " ORDER BY o.id DESC, d.target LIMIT %(limit)s",
            {"job": job_name, "limit": limit},
        ).fetchall()
    return [DeliveryRecord.from_row(row) for row in rows]


@dataclass(frozen=True, slots=True)
class DeliveryProblems:
    """What `jobs status` says about alert delivery: retries under way and deliveries given up (a day)."""

    retrying: int
    gave_up: int
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"retrying": self.retrying, "gave_up_last_day": self.gave_up, "last_error": self.last_error}


def delivery_problems(conn: psycopg.Connection[Any]) -> DeliveryProblems:
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute(
            "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND gave_up_at IS NULL AND last_error IS NOT NULL),"
            " count(*) FILTER (WHERE gave_up_at > clock_timestamp() - interval '1 day'),"
            " (SELECT last_error FROM sp_alert_deliveries WHERE delivered_at IS NULL AND last_error IS NOT NULL"
            "  ORDER BY id DESC LIMIT 1)"
            " FROM sp_alert_deliveries WHERE delivered_at IS NULL"
        ).fetchone()
    if row is None:
        return DeliveryProblems(0, 0, None)
    return DeliveryProblems(int(row[0]), int(row[1]), row[2])


def prune_outbox(conn: psycopg.Connection[Any], older_than: datetime) -> int:
    """Delete events routed before `older_than` whose deliveries are all settled (their rows go with them)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM sp_alert_outbox o WHERE o.created_at < %s AND o.routed_at IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM sp_alert_deliveries d WHERE d.outbox_id = o.id"
            " AND d.delivered_at IS NULL AND d.gave_up_at IS NULL)",
            (older_than,),
        )
        return cur.rowcount
