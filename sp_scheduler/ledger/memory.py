"""The ledger in a process's memory, with Postgres's rules: for fast tests of what talks to a ledger.

Not a mock: it enforces what `sp_claim_run` and `sp_finish_runs` (store/sql/functions.sql) and the store's
statements enforce: one row per (job, slot) of scheduled and backfill runs and deterministic slot ids; a duplicate
delivery is recognised (and a retried claim of this worker's own running row is run); disabled jobs
(the flag, or a live override) and `overlap: skip` are recorded `skipped`; leases are renewed and
reaped; queued runs past their deadline become lost; outcomes are taken from queued, running and
lost (saying it had been marked lost), never over another final status. tests/contract proves that
both ledgers agree. Every timestamp comes from one clock that never repeats a value, as Postgres's
`clock_timestamp()` orders rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sp_scheduler.errors import UnknownRun
from sp_scheduler.jobs import SLOT_TRIGGERS, Trigger
from sp_scheduler.ledger import memory_rows as rows
from sp_scheduler.ledger.contract import SlotStatus
from sp_scheduler.ledger.errors import RunExists
from sp_scheduler.ledger.memory_overrides import OverrideTable
from sp_scheduler.run_status import RUN_STATUSES, RunStatus
from sp_scheduler.store.logs import LogRecordRow
from sp_scheduler.store.records import (
    Claim,
    Overlap,
    RunOutcome,
    RunRecord,
    already_holds,
    run_uuid,
    slot_run_id,
    storable,
)
from sp_scheduler.store.state import Override, OverrideChange

log = logging.getLogger(__name__)  # the same lines as the Postgres ledger (store/claims.py, closing.py)
_REOPENABLE = ("queued", "running", "lost")  # statuses an outcome may replace (sp_finish_runs)


class InMemoryLedger:
    """`Ledger` in memory; thread-safe (the keeper and a claim may call it at once)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.RLock()
        self._runs: dict[str, RunRecord] = {}
        self._slots: dict[tuple[str, datetime], str] = {}  # (job, slot) -> id of scheduled rows
        self._overrides = OverrideTable(self.now)
        self.log_rows: list[LogRecordRow] = []  # every log line written, oldest first

    def now(self) -> datetime:
        """The ledger's clock: never the same value twice, never backwards."""
        with self._lock:
            now = self._clock().astimezone(UTC)
            self._last = now if now > self._last else self._last + timedelta(microseconds=1)
            return self._last

    # -- runs --------------------------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        run_id: str,
        job_name: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        params: Mapping[str, Any],
    ) -> RunRecord:
        key = rows.uuid_or_refuse(run_id)
        with self._lock:
            if trigger in SLOT_TRIGGERS and scheduled_for is None:
                raise ValueError(f"a {trigger} run needs its slot (scheduled_for)")
            if key in self._runs or (trigger in SLOT_TRIGGERS and self._slot_holder(job_name, scheduled_for)):
                raise RunExists(f"run {key} is in the ledger already")
            now = self.now()
            return self._insert(
                rows.record(key, job_name, trigger, scheduled_for, "queued", now, params=params, enqueued_at=now)
            )

    def enqueue_backfill(
        self, *, job_name: str, slots: Sequence[datetime], params: Mapping[str, Any]
    ) -> list[RunRecord]:
        queued = []
        with self._lock:
            for slot in sorted(slot.astimezone(UTC) for slot in slots):
                key = slot_run_id(job_name, slot)
                if key in self._runs or self._slot_holder(job_name, slot) is not None:
                    continue
                now = self.now()
                row = rows.record(key, job_name, "backfill", slot, "queued", now, params=params, enqueued_at=now)
                queued.append(self._insert(row))
        return queued

    def slot_holders(self, *, job_name: str, slots: Sequence[datetime]) -> dict[datetime, RunRecord]:
        with self._lock:
            held = {slot.astimezone(UTC): self._slot_holder(job_name, slot) for slot in slots}
        return {slot: record for slot, record in held.items() if record is not None}

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
        if trigger in SLOT_TRIGGERS and scheduled_for is None:
            raise ValueError(f"a {trigger} run needs its slot (scheduled_for)")
        key = str(run_uuid(run_id))
        rows.check_outcomes(finishing)
        with self._lock:
            finished = self._finish(finishing, logs)
            existing = self._slot_holder(job_name, scheduled_for) if trigger in SLOT_TRIGGERS else None
            existing = existing or self._runs.get(key)  # a slot's holder, else the row of this id
            # Only a queued row of this very run is claimed; a slot another row holds is a duplicate.
            if existing is not None and (trigger == "schedule" or existing.id != key or existing.status != "queued"):
                return self._duplicate(existing, run_id, worker, retrying, finished)
            now = self.now()
            status, message = self._decide(key, job_name, worker, overlap, enabled, use_override, now)
            running = status == "running"
            started = now if running else None
            lease = now + timedelta(seconds=float(lease_seconds)) if running else None
            ended = None if running else now
            if existing is not None:  # a queued manual, startup or backfill run, now claimed
                record = replace(
                    existing,
                    status=status,
                    message=message,
                    started_at=started,
                    finished_at=ended,
                    worker=worker,
                    lease_expires_at=lease,
                )
                self._runs[key] = record
            else:
                row = rows.record(key, job_name, trigger, scheduled_for, status, now, params=params, message=message)
                record = self._insert(replace(row, started_at=started, finished_at=ended, worker=worker))
                record = self._runs[key] = replace(record, lease_expires_at=lease)
        if status == "skipped":
            log.info("run skipped", extra={"job": job_name, "run_id": key, "reason": message})
        return Claim("run" if running else "skipped", record, message, finished)

    def _decide(
        self, key: str, job: str, worker: str, overlap: Overlap, enabled: bool, use_override: bool, now: datetime
    ) -> tuple[RunStatus, str | None]:
        """The claim's verdict: running, or skipped with the reason (disabled, or overlap)."""
        if use_override and (override := self._overrides.live(now).get(job)) is not None:
            enabled = override.enabled
        if not enabled:
            return "skipped", "job is disabled"
        if overlap != "skip":
            return "running", None
        others = [r for r in self._runs.values() if r.job_name == job and r.status == "running" and r.id != key]
        others = [r for r in others if r.worker != worker]
        if not others:
            return "running", None
        other = min(others, key=lambda r: r.started_at or now)
        lease = other.lease_expires_at
        if lease is not None and lease > now:
            return "skipped", f"overlap: run {other.id} still running"
        expired = rows.millis(lease) if lease is not None else ""
        return "skipped", (
            f"overlap: run {other.id} still marked running (its lease expired at {expired} and no reaper"
            " has marked it lost yet)"
        )

    def _duplicate(
        self, existing: RunRecord, run_id: str, worker: str, retrying: bool, finished: list[RunRecord]
    ) -> Claim:
        extra = {"job": existing.job_name, "run_id": existing.id}
        own = existing.id == str(run_uuid(run_id)) and existing.status == "running" and existing.worker == worker
        if retrying and own:
            log.info("claim committed before its connection broke; running it", extra={**extra, "reason": None})
            return Claim("run", existing, None, finished)
        reason = f"already claimed as run {existing.id} ({existing.status})"
        log.info("duplicate delivery ignored", extra={**extra, "reason": reason})
        return Claim("duplicate", existing, reason, finished)

    def finish(self, outcomes: Sequence[RunOutcome], *, logs: Sequence[LogRecordRow] = ()) -> list[RunRecord]:
        rows.check_outcomes(outcomes)
        if not outcomes:
            return []
        with self._lock:
            return self._finish(outcomes, logs)

    def _finish(self, outcomes: Sequence[RunOutcome], logs: Sequence[LogRecordRow]) -> list[RunRecord]:
        self.log_rows.extend(logs)
        found: dict[str, RunRecord] = {}
        for outcome in outcomes:
            key = str(run_uuid(outcome.run_id))
            row = self._runs.get(key)
            if row is None:
                continue
            if row.status not in _REOPENABLE:
                extra = {"job": row.job_name, "run_id": key, "status": row.status, "reason": f"already {row.status}"}
                if already_holds(row, outcome):
                    log.info("outcome already recorded", extra=extra)
                else:
                    log.warning("run already finished; outcome not recorded", extra=extra)
                found[key] = row
                continue
            message = storable(outcome.message)
            if row.status == "lost":
                note = f"[{outcome.status} after it had been marked lost: {row.message or ''}]"
                message = f"{message} {note}" if message is not None else note
            now = self.now()
            ended = now
            if outcome.elapsed_seconds is not None and row.started_at is not None:
                ended = min(now, row.started_at + timedelta(seconds=outcome.elapsed_seconds))
            found[key] = self._runs[key] = replace(
                row,
                status=outcome.status,
                message=message,
                items_processed=outcome.items_processed or 0,
                items_failed=outcome.items_failed or 0,
                duration_ms=outcome.duration_ms,
                error=storable(outcome.error),
                traceback=storable(outcome.traceback),
                finished_at=ended,
                lease_expires_at=None,
            )
        ordered = []
        for outcome in outcomes:
            stored = found.get(str(run_uuid(outcome.run_id)))
            if stored is None:
                log.warning("outcome of an unknown run not recorded", extra={"run_id": outcome.run_id})
            else:
                ordered.append(stored)
        return ordered

    def renew_leases(self, run_ids: Sequence[str], lease_seconds: float) -> set[str]:
        keys = {rows.uuid_or_refuse(run_id) for run_id in run_ids}
        with self._lock:
            lease = self.now() + timedelta(seconds=float(lease_seconds))
            renewed = {key for key in keys if key in self._runs and self._runs[key].status == "running"}
            for key in renewed:
                self._runs[key] = replace(self._runs[key], lease_expires_at=lease)
        return renewed

    def write_logs(self, rows: Sequence[LogRecordRow]) -> int:
        with self._lock:
            self.log_rows.extend(rows)
        return len(rows)

    def reap_lost(self, *, sparing: Sequence[str] = (), queued_deadline: float | None = None) -> list[RunRecord]:
        with self._lock:
            now = self.now()
            expired = [
                r
                for r in self._runs.values()
                if r.status == "running"
                and r.lease_expires_at is not None
                and r.lease_expires_at < now
                and (r.worker or "") not in sparing
            ]
            lost = []
            for row in sorted(expired, key=lambda r: r.created_at):
                message = f"worker stopped heartbeating; lease expired at {rows.millis(row.lease_expires_at or now)}"
                lost.append(self._close(row, "lost", message, self.now()))
                log.warning(
                    "run lost: lease expired", extra={"job": row.job_name, "run_id": row.id, "worker": row.worker}
                )
            if queued_deadline is not None:
                lost.extend(self._reap_unclaimed(queued_deadline))
        return lost

    def _reap_unclaimed(self, deadline: float) -> list[RunRecord]:
        now = self.now()
        oldest = now - timedelta(seconds=float(deadline))
        stale = [r for r in self._runs.values() if r.status == "queued" and r.enqueued_at and r.enqueued_at < oldest]
        message = f"never claimed: no worker took the run within {deadline:g} s of its queueing (SP_QUEUED_DEADLINE)"
        unclaimed = []
        for row in sorted(stale, key=lambda r: r.created_at):
            unclaimed.append(self._close(row, "lost", message, self.now()))
            extra = {"job": row.job_name, "run_id": row.id, "trigger": row.trigger, "deadline_s": deadline}
            log.warning("run lost: never claimed", extra=extra)
        return unclaimed

    def _close(self, row: RunRecord, status: RunStatus, message: str, at: datetime) -> RunRecord:
        closed = self._runs[row.id] = replace(row, status=status, message=message, finished_at=at)
        return closed

    def record_slots(self, *, job_name: str, slots: Sequence[datetime], status: SlotStatus, message: str) -> int:
        ids = [slot_run_id(job_name, slot) for slot in slots]
        new = 0
        with self._lock:
            for key, slot in zip(ids, slots, strict=True):
                if key in self._runs or self._slot_holder(job_name, slot) is not None:
                    continue
                now = self.now()
                self._insert(
                    replace(rows.record(key, job_name, "schedule", slot, status, now, message=message), finished_at=now)
                )
                new += 1
        return new

    # -- reads --------------------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        key = str(run_uuid(run_id))
        with self._lock:
            record = self._runs.get(key)
        if record is None:
            raise UnknownRun(f"unknown run {run_id}")
        return record

    def history(self, *, job: str | None = None, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self._lock:
            found = [
                r
                for r in self._runs.values()
                if (job is None or r.job_name == job) and (status is None or r.status == status)
            ]
        return sorted(found, key=rows.age_order, reverse=True)[:limit]

    def last_runs(self, job_names: Sequence[str] | None = None) -> dict[str, RunRecord]:
        return self._latest(job_names, None)

    def last_with_status(
        self,
        statuses: Sequence[RunStatus],
        job_names: Sequence[str] | None = None,
        *,
        triggers: Sequence[Trigger] | None = None,
    ) -> dict[str, RunRecord]:
        return self._latest(job_names, list(statuses), triggers)

    def _latest(
        self,
        job_names: Sequence[str] | None,
        statuses: list[RunStatus] | None,
        triggers: Sequence[Trigger] | None = None,
    ) -> dict[str, RunRecord]:
        if (job_names is not None and not job_names) or (statuses is not None and not statuses):
            return {}
        newest: dict[str, RunRecord] = {}
        with self._lock:
            for row in sorted(self._runs.values(), key=rows.age_order):
                if (
                    (job_names is None or row.job_name in job_names)
                    and (statuses is None or row.status in statuses)
                    and (triggers is None or row.trigger in triggers)
                ):
                    newest[row.job_name] = row
        return newest

    # -- overrides ------------------------------------------------------------------------------------------

    def set_enabled(
        self,
        job_name: str,
        *,
        enabled: bool,
        actor: str,
        reason: str | None = None,
        expires_at: datetime | None = None,
    ) -> Override:
        with self._lock:
            return self._overrides.set_enabled(
                job_name, enabled=enabled, actor=actor, reason=reason, expires_at=expires_at
            )

    def reset_override(self, job_name: str, *, actor: str, reason: str | None = None) -> Override | None:
        with self._lock:
            return self._overrides.reset(job_name, actor=actor, reason=reason)

    def overrides(self) -> dict[str, Override]:
        with self._lock:
            return self._overrides.live(self.now())

    def expire_overrides(self) -> list[Override]:
        with self._lock:
            return self._overrides.expire(None)

    def override_changes(self, job_name: str, *, limit: int = 5) -> list[OverrideChange]:
        with self._lock:
            return self._overrides.changes(job_name, limit)

    # -- plumbing ---------------------------------------------------------------------------------------

    def _slot_holder(self, job_name: str, slot: datetime | None) -> RunRecord | None:
        if slot is None:
            return None
        key = self._slots.get((job_name, slot.astimezone(UTC)))
        return self._runs.get(key) if key is not None else None

    def _insert(self, record: RunRecord) -> RunRecord:
        self._runs[record.id] = record
        if record.trigger in SLOT_TRIGGERS and record.scheduled_for is not None:
            self._slots[(record.job_name, record.scheduled_for)] = record.id
        return record
