"""Claiming runs in tests: `claim_run` with defaults, so a test names only what it is about."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from sp_scheduler.jobs import Trigger
from sp_scheduler.store import Claim, LogRecordRow, Overlap, RunOutcome, claim_run, slot_run_id

SLOT = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)


def claim(
    conn: psycopg.Connection[Any],
    job: str = "cleanup",
    slot: datetime | None = SLOT,
    *,
    trigger: Trigger = "schedule",
    run_id: str | None = None,
    overlap: Overlap = "skip",
    enabled: bool = True,
    lease_seconds: float = 60.0,
    worker: str = "host-a:1",
    use_override: bool = False,
    finishing: Sequence[RunOutcome] = (),
    logs: Sequence[LogRecordRow] = (),
    retrying: bool = False,
) -> Claim:
    """Claim a slot (or a manual run when `slot` is None) as a worker would, recording `finishing` first."""
    if run_id is None:
        run_id = slot_run_id(job, slot) if slot is not None else str(uuid.uuid4())
    return claim_run(
        conn,
        run_id=run_id,
        job_name=job,
        trigger=trigger,
        scheduled_for=slot,
        params={"days": 30},
        worker=worker,
        lease_seconds=lease_seconds,
        overlap=overlap,
        enabled=enabled,
        use_override=use_override,
        finishing=finishing,
        logs=logs,
        retrying=retrying,
    )
