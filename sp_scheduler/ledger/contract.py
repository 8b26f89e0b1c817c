"""The ledger's operations as one typed contract, so runner, keeper and beat talk to it, not to SQL.

`PostgresLedger` (postgres.py) is the ledger of every deployment; `InMemoryLedger` (memory.py) keeps
the same rules in a process, for fast tests of the code above it. tests/contract runs one suite
against both, so they cannot drift apart. Every method is one atomic step; a failure raises
`LedgerUnavailable` (retry later) or `LedgerRefused` (skip that item), see errors.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from sp_scheduler.jobs import Trigger
from sp_scheduler.run_status import RunStatus
from sp_scheduler.store.logs import LogRecordRow
from sp_scheduler.store.records import Claim, Overlap, RunOutcome, RunRecord
from sp_scheduler.store.state import Override, OverrideChange

SlotStatus = Literal["missed", "skipped", "failed"]


class Ledger(Protocol):
    """The runs ledger and the enable/disable overrides, whatever holds them."""

    def enqueue(
        self,
        *,
        run_id: str,
        job_name: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        params: Mapping[str, Any],
    ) -> RunRecord:
        """Record a `queued` run before its message is sent; `RunExists` when the id is taken."""
        ...

    def enqueue_backfill(
        self, *, job_name: str, slots: Sequence[datetime], params: Mapping[str, Any]
    ) -> list[RunRecord]:
        """Record a `queued` backfill run for each slot that has no scheduled or backfill row (one
        statement); the runs queued, by slot. A slot held already, or taken meanwhile, is left out."""
        ...

    def slot_holders(self, *, job_name: str, slots: Sequence[datetime]) -> dict[datetime, RunRecord]:
        """The scheduled or backfill row holding each of these slots, by slot in UTC; free slots absent."""
        ...

    def claim(
        self,
        *,
        run_id: str,
        job_name: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        params: Mapping[str, Any],
        worker: str,
        lease_seconds: float,
        overlap: Overlap,
        enabled: bool,
        use_override: bool = False,
        finishing: Sequence[RunOutcome] = (),
        logs: Sequence[LogRecordRow] = (),
        retrying: bool = False,
    ) -> Claim:
        """Run it, recognise a duplicate, or record it skipped (disabled, overlap); `store.claim_run`."""
        ...

    def finish(self, outcomes: Sequence[RunOutcome], *, logs: Sequence[LogRecordRow] = ()) -> list[RunRecord]:
        """Record outcomes (and log lines) at once; the rows, in order, unknown ids left out."""
        ...

    def renew_leases(self, run_ids: Sequence[str], lease_seconds: float) -> set[str]:
        """Extend the leases of those still running; the ids extended."""
        ...

    def write_logs(self, rows: Sequence[LogRecordRow]) -> int:
        """Store log lines; how many."""
        ...

    def reap_lost(self, *, sparing: Sequence[str] = (), queued_deadline: float | None = None) -> list[RunRecord]:
        """Mark expired leases (and queued runs past the deadline) `lost`; the rows marked."""
        ...

    def record_slots(self, *, job_name: str, slots: Sequence[datetime], status: SlotStatus, message: str) -> int:
        """Record slots that will not run; how many were new (a slot with a row keeps it)."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """One run; `UnknownRun` when there is none."""
        ...

    def history(self, *, job: str | None = None, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs newest first (created_at, then id), optionally of one job and/or status."""
        ...

    def last_runs(self, job_names: Sequence[str] | None = None) -> dict[str, RunRecord]:
        """The newest row of each job."""
        ...

    def last_with_status(
        self,
        statuses: Sequence[RunStatus],
        job_names: Sequence[str] | None = None,
        *,
        triggers: Sequence[Trigger] | None = None,
    ) -> dict[str, RunRecord]:
        """The newest row of each job among `statuses` (and `triggers`, when given)."""
        ...

    def set_enabled(
        self,
        job_name: str,
        *,
        enabled: bool,
        actor: str,
        reason: str | None = None,
        expires_at: datetime | None = None,
    ) -> Override:
        """Store or replace a job's override (the latest call wins)."""
        ...

    def reset_override(self, job_name: str, *, actor: str, reason: str | None = None) -> Override | None:
        """Clear a job's override; what was cleared."""
        ...

    def overrides(self) -> dict[str, Override]:
        """Every override in force (unexpired), by job name."""
        ...

    def expire_overrides(self) -> list[Override]:
        """Delete overrides past their expiry, each recorded in the trail; those deleted."""
        ...

    def override_changes(self, job_name: str, *, limit: int = 5) -> list[OverrideChange]:
        """The newest entries of a job's override trail, newest first."""
        ...
