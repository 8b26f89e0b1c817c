"""A manual run claimed through the Ledger contract, as `jobs run` and the worker would claim it."""

from __future__ import annotations

import uuid

from sp_scheduler.ledger import Ledger
from sp_scheduler.store import Claim


def claim_manual(
    ledger: Ledger, job: str, *, worker: str = "host-a:1", lease_seconds: float = 60.0, run_id: str | None = None
) -> Claim:
    """Claim a new manual run of `job` (overlap allowed, enabled) on `ledger`."""
    return ledger.claim(
        run_id=run_id or str(uuid.uuid4()),
        job_name=job,
        trigger="manual",
        scheduled_for=None,
        params={},
        worker=worker,
        lease_seconds=lease_seconds,
        overlap="allow",
        enabled=True,
    )
