"""Beat's Postgres work on a thread of its own, so a slow or absent Postgres never holds up a slot.

Beat publishes slots through Redis alone. Postgres is where it records missed slots, queues startup
runs, reads the enable/disable overrides and reaps lost runs and expired overrides; all of that
happens here. An override that expires drops out of what the tick reads at its expiry, without
waiting for a read, so a running beat applies it within a tick. The tick
hands work over and reads the last overrides without waiting (except, briefly, for a sync the CLI
asked for), and this thread retries what failed, pausing longer each time, until Postgres answers.
Before, each of those calls waited on the tick for up to the pool's timeout: with Postgres away,
slots went out seconds late, were recorded missed, and the leader lost its lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sp_scheduler.ledger import BEAT_RETRY_DELAYS, Backoff, Ledger, LedgerRefused, RunExists
from sp_scheduler.reaping import ReaperGate

log = logging.getLogger(__name__)

MAX_PENDING_MISSED = 1000  # batches of missed slots kept while Postgres is away; the oldest go first
STOP_TIMEOUT = 5.0  # at shutdown, how long the thread may keep trying to write what is pending


@dataclass(frozen=True, slots=True)
class MissedSlots:
    """Slots of one job that will not run, to be recorded `missed` with the reason."""

    job_name: str
    slots: tuple[datetime, ...]
    message: str


@dataclass(frozen=True, slots=True)
class StartupRun:
    """A startup run to record as queued; the tick publishes it once the row is committed."""

    job_name: str
    run_id: str
    params: Mapping[str, Any] = field(default_factory=dict)


class BeatLedger:
    """One thread doing beat's Postgres work; every method the tick calls returns at once."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        reap_interval: float,
        refresh_interval: float,
        queued_deadline: float | None = None,
        lease_seconds: float = 0.0,
    ) -> None:
        self._ledger = ledger
        self.reap_interval = reap_interval
        self._reaper_gate = ReaperGate(lease_seconds)  # no reaping for a lease after an outage (reaping.py)
        self.refresh_interval = refresh_interval
        self.queued_deadline = queued_deadline  # queued runs older than this are reaped as never claimed
        self.leading = False  # the tick sets it; only a leading beat reaps
        self._wake = threading.Condition()
        self._missed: deque[MissedSlots] = deque()
        self._startup: list[StartupRun] = []
        self._queued: list[StartupRun] = []
        self._overrides: dict[str, bool] = {}
        self._expiries: dict[str, datetime] = {}  # when overrides with an expiry stop counting (UTC)
        self._overrides_version = 0  # 0: never read
        self._refresh_requested = True
        self._refreshed_at = 0.0
        self._reaped_at = 0.0
        self._backoff = Backoff(BEAT_RETRY_DELAYS)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the tick's side -------------------------------------------------------------------------------

    def start(self) -> None:
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sp-beat-ledger", daemon=True)
                self._thread.start()

    def record_missed(self, missed: MissedSlots) -> None:
        with self._wake:
            if len(self._missed) >= MAX_PENDING_MISSED:
                dropped = self._missed.popleft()
                log.error(
                    "missed slots not recorded: too many waiting for Postgres",
                    extra={"job": dropped.job_name, "missed": len(dropped.slots)},
                )
            self._missed.append(missed)
            self._wake.notify()

    def queue_startup(self, runs: list[StartupRun]) -> None:
        """Record these runs as queued; `take_queued` hands them back once committed."""
        with self._wake:
            self._startup.extend(runs)
            self._wake.notify()

    def take_queued(self) -> list[StartupRun]:
        with self._wake:
            queued, self._queued = self._queued, []
        return queued

    def overrides(self, now: datetime | None = None) -> tuple[int, dict[str, bool]]:
        """(version, overrides) as last read, less those expired by `now`; the version changes whenever
        a read finds them changed or one expires. An expiry also asks for a read (which reaps it)."""
        now = now or datetime.now(UTC)
        with self._wake:
            expired = [name for name, at in self._expiries.items() if at <= now]
            if expired:
                self._overrides = {k: v for k, v in self._overrides.items() if k not in expired}
                for name in expired:
                    del self._expiries[name]
                self._overrides_version += 1
                self._refresh_requested = True
                self._wake.notify_all()
            return self._overrides_version, self._overrides

    def refresh_overrides(self, wait: float) -> None:
        """Ask for a fresh read of the overrides and wait up to `wait` seconds for it."""
        deadline = time.monotonic() + wait
        with self._wake:
            self._refresh_requested = True
            self._wake.notify_all()
            while self._refresh_requested and (remaining := deadline - time.monotonic()) > 0:
                self._wake.wait(remaining)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Write what is pending (up to `timeout` seconds), then end the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------------------

    def _loop(self) -> None:
        stop_at: float | None = None
        while True:
            with self._wake:
                while not self._stopping and (delay := self._next_due() - time.monotonic()) > 0:
                    self._wake.wait(delay)
                if self._stopping:
                    stop_at = stop_at or time.monotonic() + STOP_TIMEOUT
                    if not (self._missed or self._startup) or time.monotonic() > stop_at:
                        return
            try:
                self._work()
            except Exception as exc:  # Postgres away or failing: keep everything, pause, try again
                self._reaper_gate.unreachable()
                pause = self._backoff.next_delay()
                log.warning("beat's ledger work failed; retrying", extra={"error": str(exc), "retry_in": pause})
                with self._wake:
                    if stop_at is not None:  # shutting down: never pause past the deadline
                        pause = min(pause, max(stop_at - time.monotonic(), 0.0))
                    self._wake.wait(pause)
            else:
                self._backoff.reset()

    def _next_due(self) -> float:
        """When the thread has something to do next (monotonic); called with the lock held."""
        if self._missed or self._startup or self._refresh_requested:
            return 0.0
        due = self._refreshed_at + self.refresh_interval
        return min(due, self._reaped_at + self.reap_interval) if self.leading else due

    def _work(self) -> None:
        now = time.monotonic()
        if self._refresh_requested or now >= self._refreshed_at + self.refresh_interval:
            self._read_overrides(now)
        self._write_missed()
        self._write_startup()
        if self.leading and now >= self._reaped_at + self.reap_interval:
            self._reaped_at = now
            self._ledger.expire_overrides()  # records each expiry in the override trail
            if self._reaper_gate.may_reap():
                self._ledger.reap_lost(queued_deadline=self.queued_deadline)  # logs each run it marks lost

    def _read_overrides(self, now: float) -> None:
        # Those in force (Postgres leaves out expired ones), judged by this host's clock too, so a
        # clock ahead of the database's does not bring back an override the tick already dropped.
        wall = datetime.now(UTC)
        read = {n: o for n, o in self._ledger.overrides().items() if o.expires_at is None or o.expires_at > wall}
        overrides = {name: o.enabled for name, o in read.items()}
        with self._wake:
            self._expiries = {name: o.expires_at for name, o in read.items() if o.expires_at is not None}
            if overrides != self._overrides or self._overrides_version == 0:
                self._overrides = overrides
                self._overrides_version += 1
            self._refresh_requested = False
            self._refreshed_at = now
            self._wake.notify_all()

    def _write_missed(self) -> None:
        while True:
            with self._wake:
                if not self._missed:
                    return
                missed = self._missed[0]
            with _refusal_logged("missed slots", missed.job_name):
                self._ledger.record_slots(
                    job_name=missed.job_name, slots=missed.slots, status="missed", message=missed.message
                )
            with self._wake:
                if self._missed and self._missed[0] is missed:
                    self._missed.popleft()

    def _write_startup(self) -> None:
        with self._wake:
            runs = list(self._startup)
        for run in runs:
            # Refused or not, the run is handed back: published without its queued row, the worker's
            # claim inserts it. `RunExists` is an earlier attempt that committed before its
            # connection broke: the row is there.
            with _refusal_logged("startup run", run.job_name), suppress(RunExists):
                self._ledger.enqueue(
                    run_id=run.run_id,
                    job_name=run.job_name,
                    trigger="startup",
                    scheduled_for=None,
                    params=run.params,
                )
            with self._wake:
                self._startup.remove(run)
                self._queued.append(run)


@contextmanager
def _refusal_logged(what: str, job_name: str) -> Iterator[None]:
    """Let connection failures (`LedgerUnavailable`) through, so the work is retried; log the ledger
    refusing the data itself and go on, so one bad item never blocks the work behind it."""
    try:
        yield
    except LedgerRefused as exc:
        log.error(
            "Postgres refused beat's ledger write; skipped", extra={"what": what, "job": job_name, "error": str(exc)}
        )
