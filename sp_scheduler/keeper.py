"""The run keeper: one background thread per worker process that owns each run from claim to outcome.

While a run goes on, the thread pushes its lease forward every third of the lease and writes its
buffered log lines; if the process dies, the pushing stops, the lease runs out, and any worker or
beat marks the run `lost`. The thread is independent of the job's event loop, so a job that blocks
its loop does not look dead.

When a run ends, the task hands its outcome here and returns, so the worker takes its next message
while the outcome waits. A busy process claims its next run within a few milliseconds, and that claim
takes the waiting outcomes along (`take_outcomes`), recording them in its own statement and commit;
only an outcome no claim picks up within `linger` seconds is written by this thread, together with
any others waiting. The run stays tracked (its lease alive) until its outcome is committed, and an
outcome that cannot be written because Postgres is down is kept and retried until it can.
Acknowledging the message before the outcome is written loses nothing: the claim is already
committed, so a redelivery is a recognised duplicate, and a process that dies with outcomes unwritten
leaves runs the reaper marks `lost`, as it would for a death during the run. Shutdown writes what is
pending first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from sp_scheduler.errors import DatabaseUnavailable
from sp_scheduler.ledger import KEEPER_RETRY_DELAYS, Backoff, Ledger
from sp_scheduler.runlog import RunLogBuffer, flush
from sp_scheduler.store import LogRecordRow, RunOutcome, RunRecord
from sp_scheduler.store.records import run_uuid

log = logging.getLogger(__name__)

# How long an outcome waits for the process's next claim to carry it before this thread writes it.
OUTCOME_LINGER = 0.025


@dataclass(slots=True)
class PendingOutcome:
    """An outcome handed over and not yet committed; `taken` while a write or a claim carries it."""

    outcome: RunOutcome
    logs: list[LogRecordRow]
    handed_at: float
    taken: bool = False
    recorded: Future[RunRecord] = field(default_factory=Future)


class RunKeeper:
    """Tracks the runs this process executes: keeps their leases alive and records their outcomes."""

    def __init__(
        self,
        ledger: Ledger,
        lease_seconds: float,
        on_recorded: Callable[[RunRecord], None] | None = None,
        linger: float = OUTCOME_LINGER,
        fallback: Ledger | None = None,
    ) -> None:
        self._ledger = ledger
        # The ledger over a fresh connection, for lease renewals when the pool fails: after a long outage
        # the pool reconnects with an exponential backoff that can outlast a lease (reaping.py).
        self._fallback = fallback
        self.lease_seconds = lease_seconds
        self.linger = linger
        self.interval = max(lease_seconds / 3, 0.05)
        self._on_recorded = on_recorded
        self._runs: dict[str, RunLogBuffer] = {}
        self._pending: list[PendingOutcome] = []
        self._wake = threading.Condition()
        self._stop_at: float | None = None  # monotonic deadline for writing what is pending, once stopping
        self._sleeping_until: float | None = None  # when the thread wakes by itself, while it sleeps
        self._thread: threading.Thread | None = None
        self._unrenewed_since: float | None = None  # when heartbeats started failing (monotonic)
        self._reaped: set[str] = set()  # tracked runs already noted as reaped while running

    def track(self, run_id: str, buffer: RunLogBuffer) -> None:
        """Start keeping `run_id` alive (and flushing its log lines)."""
        with self._wake:
            self._runs[run_id] = buffer
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sp-run-keeper", daemon=True)
                self._thread.start()

    def tracks(self, run_id: str) -> bool:
        """Whether `run_id` is one of this process's runs whose outcome is not committed yet."""
        with self._wake:
            return run_id in self._runs

    def untrack(self, run_id: str) -> None:
        """Stop keeping `run_id` alive without recording an outcome (the reaper will mark it lost)."""
        with self._wake:
            self._runs.pop(run_id, None)

    def finish(self, outcome: RunOutcome) -> Future[RunRecord]:
        """Hand over a tracked run's outcome; the future resolves to the stored row once it is committed."""
        with self._wake:
            buffer = self._runs.get(outcome.run_id)
            pending = PendingOutcome(outcome, buffer.drain() if buffer is not None else [], time.monotonic())
            self._pending.append(pending)
            # Wake the thread only if it sleeps past this outcome's due time: under load it is already
            # set to wake for an earlier one, and a busy process's next claim takes both first.
            if self._sleeping_until is not None and self._sleeping_until > pending.handed_at + self.linger:
                self._wake.notify()
        return pending.recorded

    def take_outcomes(self) -> list[PendingOutcome]:
        """Hand the waiting outcomes to a claim (or this thread's own write) that records them; the taker
        must call `recorded` or `release`."""
        with self._wake:
            taken = [pending for pending in self._pending if not pending.taken]
            for pending in taken:
                pending.taken = True
        return taken

    def recorded(self, taken: list[PendingOutcome], records: Sequence[RunRecord]) -> None:
        """The claim that carried `taken` committed: these are the rows it returned."""
        self._settle(taken, {record.id: record for record in records}, None)

    def release(self, taken: list[PendingOutcome]) -> None:
        """The claim (or write) that carried `taken` failed: this thread writes them, without lingering."""
        due_now = time.monotonic() - self.linger
        with self._wake:
            for pending in taken:
                pending.taken = False
                pending.handed_at = min(pending.handed_at, due_now)
            self._wake.notify()

    def pending(self) -> int:
        """Outcomes handed over and not yet committed."""
        with self._wake:
            return len(self._pending)

    def stop(self, timeout: float) -> None:
        """Write what is pending (trying for up to `timeout` seconds if Postgres is down), then stop."""
        with self._wake:
            self._stop_at = time.monotonic() + timeout
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=timeout + 5)
            self._thread = None
        with self._wake:
            unwritten, self._pending = self._pending, []
        for pending in unwritten:
            log.error(
                "run outcome not recorded before shutdown; the run will be marked lost",
                extra={"run_id": pending.outcome.run_id, "status": pending.outcome.status},
            )
            _resolve(pending.recorded, RuntimeError("the worker stopped before the outcome was recorded"))

    def _loop(self) -> None:
        next_beat = time.monotonic() + self.interval
        backoff = Backoff(KEEPER_RETRY_DELAYS)
        while True:
            with self._wake:
                while self._stop_at is None:
                    now = time.monotonic()
                    due = min((p.handed_at + self.linger for p in self._pending if not p.taken), default=next_beat)
                    if now >= min(due, next_beat):
                        break
                    self._sleeping_until = min(due, next_beat)
                    self._wake.wait(self._sleeping_until - now)
                    self._sleeping_until = None
                batch = self.take_outcomes()
                stop_at = self._stop_at
            if batch:
                if self._write(batch):
                    backoff.reset()
                else:
                    self.release(batch)
                    delay = backoff.next_delay()
                    with self._wake:
                        self._wake.wait(delay)
            if time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + self.interval
            if stop_at is not None and (not self.pending() or time.monotonic() >= stop_at):
                return

    def _write(self, batch: list[PendingOutcome]) -> bool:
        """Record a batch of outcomes; False (batch kept) when the ledger cannot be reached."""
        logs = [line for pending in batch for line in pending.logs]
        try:
            records = {r.id: r for r in self._ledger.finish([p.outcome for p in batch], logs=logs)}
        except DatabaseUnavailable as exc:  # LedgerUnavailable, or a pool that could not open at all
            log.warning("cannot record run outcomes yet; retrying", extra={"runs": len(batch), "error": str(exc)})
            return False
        except Exception as exc:  # not a connectivity problem: retrying cannot help; the reaper will step in
            if len(batch) > 1:  # one outcome Postgres refuses must not take the others with it
                log.warning("run outcomes refused as a batch; writing them one by one", extra={"runs": len(batch)})
                return all([self._write([pending]) for pending in batch])
            log.error("cannot record run outcome", extra={"run_id": batch[0].outcome.run_id, "error": repr(exc)})
            self._settle(batch, {}, exc)
            return True
        self._settle(batch, records, None)
        return True

    def _settle(self, batch: list[PendingOutcome], records: dict[str, RunRecord], error: Exception | None) -> None:
        with self._wake:
            for pending in batch:
                self._pending.remove(pending)
                self._runs.pop(pending.outcome.run_id, None)
                self._reaped.discard(pending.outcome.run_id)
        for pending in batch:
            record = records.get(pending.outcome.run_id)
            if record is None:
                missing = LookupError(f"run {pending.outcome.run_id} is not in the ledger")
                _resolve(pending.recorded, error or missing)
                continue
            if self._on_recorded is not None:
                try:
                    self._on_recorded(record)
                except Exception as exc:  # metrics must never stop the keeper (and with it every lease)
                    log.warning("run outcome callback failed", extra={"run_id": record.id, "error": repr(exc)})
            _resolve(pending.recorded, record)

    def _beat(self) -> None:
        """Extend every tracked lease and write pending log lines; a missed beat is retried next interval.

        Runs whose leases lapsed meanwhile (Postgres was away longer than a lease) say so in their own
        log, and so does a run found no longer running: a reaper marked it lost while it still ran.
        """
        with self._wake:
            finishing = {pending.outcome.run_id for pending in self._pending}
            runs = {run_id: buffer for run_id, buffer in self._runs.items() if run_id not in finishing}
            running = list(self._runs)
        if not running:
            return
        for ledger in (self._ledger, self._fallback):
            if ledger is None:
                continue
            try:
                renewed = ledger.renew_leases(running, self.lease_seconds)
                self._note_lapses(runs, renewed)
                for buffer in runs.values():
                    flush(buffer, ledger.write_logs)
                return
            except Exception as exc:  # the lease tolerates two missed beats
                failure = exc
        if self._unrenewed_since is None:
            self._unrenewed_since = time.monotonic()
        log.warning("lease heartbeat failed", extra={"error": str(failure)})

    def _note_lapses(self, runs: dict[str, RunLogBuffer], renewed: set[str]) -> None:
        """Write into each run's log what happened to its lease while it could not be renewed."""
        away = time.monotonic() - self._unrenewed_since if self._unrenewed_since is not None else 0.0
        self._unrenewed_since = None
        for run_id, buffer in runs.items():
            if str(run_uuid(run_id)) not in renewed:
                if run_id not in self._reaped:
                    self._reaped.add(run_id)
                    _note(
                        buffer,
                        logging.ERROR,
                        "run no longer marked running in the ledger (a reaper marked it lost) while it still"
                        " runs here; its outcome will say so",
                        away_seconds=round(away, 1),
                    )
            elif away > self.lease_seconds:
                _note(
                    buffer,
                    logging.WARNING,
                    "lease renewed after the ledger was unreachable for longer than the lease",
                    away_seconds=round(away, 1),
                    lease_seconds=self.lease_seconds,
                )


def _note(buffer: RunLogBuffer, level: int, message: str, **fields: Any) -> None:
    """One line in a run's own log (and on the console), from this thread."""
    extra = {"run_id": buffer.run_id, "job": buffer.job_name, **fields}
    log.log(level, message, extra=extra)
    buffer.handle(log.makeRecord(log.name, level, __file__, 0, message, (), None, extra=fields))


def _resolve(future: Future[RunRecord], outcome: RunRecord | BaseException) -> None:
    """Settle a future once: a write that outlived `stop()`'s wait must not fail on one already given up."""
    with suppress(InvalidStateError):
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
