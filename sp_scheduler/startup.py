"""Startup runs: the jobs that say run_on_startup, sent once per beat process by the leading beat.

The ledger thread records each as queued; the tick publishes it once its row is committed, and a
publish that fails is retried next tick under the same run id.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable

from sp_scheduler.beat_ledger import BeatLedger, StartupRun
from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.entries import startup_jobs
from sp_scheduler.messages import RunRequest

log = logging.getLogger(__name__)

# Publishes one run: (request, queue, timeout); raises if the broker is away.
SendRun = Callable[[RunRequest, str, float | None], None]


class StartupRuns:
    """Decides the startup jobs once the overrides are known, then sends each once its row exists."""

    def __init__(self, ledger: BeatLedger, catalog: Callable[[], Catalog], send: SendRun) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.send = send
        self.done = False
        self._waiting: dict[str, JobDefinition] | None = None  # decided once overrides are known
        self._ready: deque[StartupRun] = deque()

    def step(self) -> None:
        """One tick's share: decide (once), then publish every run whose queued row is committed."""
        if self.done:
            return
        if self._waiting is None:
            version, overrides = self.ledger.overrides()
            if version == 0:
                return  # the overrides decide which jobs start: wait for their first read
            self._waiting = startup_jobs(self.catalog(), overrides)
            self.ledger.queue_startup(
                [StartupRun(d.name, str(uuid.uuid4()), dict(d.params)) for d in self._waiting.values()]
            )
        self._ready.extend(self.ledger.take_queued())
        while self._ready:
            run = self._ready[0]
            definition = self._waiting[run.job_name]
            try:
                self.send(RunRequest(run.job_name, "startup", None, run.run_id), definition.queue, definition.timeout)
            except Exception as exc:  # the broker is away: the queued row waits, the publish is retried
                log.error("cannot send startup run; retrying", extra={"job": run.job_name, "error": str(exc)})
                return
            self._ready.popleft()
            del self._waiting[run.job_name]
            log.info("startup run sent", extra={"job": run.job_name, "run_id": run.run_id})
        if not self._waiting:
            self.done = True
