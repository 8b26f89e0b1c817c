"""Row plumbing of the in-memory ledger: new rows with the table's defaults, orderings, checks."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from sp_scheduler.jobs import Trigger
from sp_scheduler.ledger.errors import LedgerRefused
from sp_scheduler.run_status import FinishStatus, RunStatus
from sp_scheduler.store.records import RunOutcome, RunRecord, run_uuid


def millis(at: datetime) -> str:
    """An instant as Postgres's `to_char(... 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` writes it."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def record(
    key: str,
    job_name: str,
    trigger: Trigger,
    slot: datetime | None,
    status: RunStatus,
    now: datetime,
    *,
    params: Mapping[str, Any] | None = None,
    message: str | None = None,
    enqueued_at: datetime | None = None,
) -> RunRecord:
    """A new row with the table's defaults."""
    return RunRecord(
        id=key,
        job_name=job_name,
        trigger=trigger,
        scheduled_for=slot.astimezone(UTC) if slot is not None else None,
        enqueued_at=enqueued_at,
        started_at=None,
        finished_at=None,
        status=status,
        message=message,
        items_processed=0,
        items_failed=0,
        duration_ms=None,
        error=None,
        traceback=None,
        worker=None,
        attempt=1,
        lease_expires_at=None,
        params=dict(params or {}),
        created_at=now,
    )


def age_order(record: RunRecord) -> tuple[datetime, int]:
    """Sort key, oldest first: created_at, then id (Postgres's uuid order); reversed, the reads' order."""
    return (record.created_at, uuid.UUID(record.id).int)


def uuid_or_refuse(run_id: str) -> str:
    """A run id as the ledger stores it; a malformed one is refused, as Postgres refuses it."""
    try:
        return str(uuid.UUID(str(run_id)))
    except ValueError:
        raise LedgerRefused(f"invalid input syntax for type uuid: {run_id!r}") from None


def check_outcomes(outcomes: Sequence[RunOutcome]) -> None:
    """What `store.finish_runs` checks before it writes: known statuses and well-formed ids."""
    for outcome in outcomes:
        if outcome.status not in get_args(FinishStatus):
            raise ValueError(f"cannot finish a run as {outcome.status!r}")
        run_uuid(outcome.run_id)
