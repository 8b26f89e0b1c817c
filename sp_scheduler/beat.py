"""Beat on RedBeat: one leader fires every enabled job at its six-field cron slots, exactly once per slot.

Started as `celery beat -S sp_scheduler.beat:SlotScheduler` (what `sp-scheduler beat` runs). Entries
live in Redis in RedBeat's format (a hash per job, a sorted set scored by due time). Each tick the
leader sends one message per due slot carrying `scheduled_for`; slots it could not send in time are
recorded `missed` in Postgres, and after downtime a job runs once (coalesced), never as a burst.

This module only orders the tick; its parts are leadership.py (the lock), entries.py and sync.py
(what the schedule holds), firing.py and lookahead.py (due slots, prepared early enough), startup.py
(startup runs), beat_catalog.py (the config, reloaded on its own thread) and beat_resources.py
(settings, ledger pool). A Redis outage makes beat wait and retry instead of exiting, and
Postgres is never touched on the tick: beat_ledger.py does that work on its own thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from redbeat.schedulers import RedBeatScheduler, get_redis

from sp_scheduler import keys
from sp_scheduler.beat_catalog import BeatCatalog
from sp_scheduler.beat_resources import BeatResources, beat_ledger
from sp_scheduler.catalog import Catalog
from sp_scheduler.celery_app import settings_of
from sp_scheduler.entries import EntrySpec, SentSlots, desired_entries
from sp_scheduler.firing import MAX_SLEEP, Firing
from sp_scheduler.leadership import LOCK_TTL, Leadership, new_beat_id
from sp_scheduler.ledger_metrics import ScheduledJob
from sp_scheduler.messages import RunRequest, send_run
from sp_scheduler.publish import BatchPublisher
from sp_scheduler.startup import StartupRuns
from sp_scheduler.sync import sync_entries

if TYPE_CHECKING:
    from sp_scheduler.metrics import BeatMetrics

__all__ = ["EntrySpec", "SlotScheduler", "desired_entries"]

log = logging.getLogger(__name__)

STANDBY_POLL = 1.0
SYNC_INTERVAL = 10.0  # check that Redis holds as many entries as the schedule, even when nothing signalled a change
FULL_SYNC_INTERVAL = 60.0  # compare every entry with Redis (repairs hand edits) at least this often
OVERRIDES_WAIT = 0.5  # how long a sync waits for fresh overrides when it needs them now (first sync, CLI)


class SlotScheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's storage and Celery's beat loop, with sp-scheduler's tick."""

    max_interval = MAX_SLEEP

    def __init__(self, app: Any, **kwargs: Any) -> None:
        self.resources = BeatResources(settings_of(app))
        self.watch = BeatCatalog(self.resources.watch)  # reloads on its own thread, never on the tick
        self.leadership = Leadership(new_beat_id())
        self.beat_id = self.leadership.beat_id
        self._synced_at = 0.0
        self._checked_at = 0.0
        self._synced_loads = -1
        self._synced_overrides = -1
        self.sent = SentSlots()
        self.ledger = beat_ledger(self.resources, SYNC_INTERVAL)
        self.firing = Firing(self._publisher, self.sent, self.ledger.record_missed, extend_lock=self.leadership.keep)
        self.startup = StartupRuns(self.ledger, self.watch.catalog, self._send_run)
        self.metrics: BeatMetrics | None = None
        self.live: Mapping[str, ScheduledJob] = {}  # the synced schedule, for the ledger timestamps
        self._desired: Mapping[str, EntrySpec] = {}
        self.publisher: BatchPublisher | None = None
        self._outage_gap: set[str] = set()  # jobs marked in sent.broker_gap when Redis went away while leading
        super().__init__(app, **kwargs)
        self.lock_key = None  # leadership is ours (in tick); RedBeat's blocking beat_init lock stays out

    @property
    def leader(self) -> bool:
        return self.leadership.leader

    @property
    def startup_done(self) -> bool:
        return self.startup.done

    # -- Celery hooks ---------------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Nothing at construction: entries are synced when this beat takes the lead."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return self._tick()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            if self.leader:  # the slots it cannot send now are recorded missed for that reason, once back
                self._outage_gap = set(self._desired) - self.sent.broker_gap
                self.sent.broker_gap.update(self._outage_gap)
            self._step_down("Redis unreachable", exc)
            return STANDBY_POLL
        except redis.exceptions.LockError as exc:  # our lock expired or vanished (e.g. Redis restarted)
            self._step_down("lost the leader lock", exc)
            return 0.0
        except Exception as exc:  # beat must outlive any single bad tick; the next one retries
            log.exception("beat tick failed", extra={"error": repr(exc)})
            return STANDBY_POLL

    def close(self) -> None:
        self.leadership.release()
        self.watch.stop()
        self.ledger.stop()  # after the lock: a standby need not wait while pending ledger work is written
        self.resources.close()
        super().close()

    @property
    def info(self) -> str:
        return f"       . sp-scheduler slots, leader lock {keys.LEADER_LOCK} ({LOCK_TTL:g}s), id {self.beat_id}"

    # -- the tick ------------------------------------------------------------------------------------------

    def _tick(self) -> float:
        self._serve_metrics()
        self.ledger.start()
        if self.metrics is not None:
            self.metrics.leader.set(1 if self.leader else 0)
        client = get_redis(self.app)
        if not self.leader:
            if not self.leadership.take(client):
                self.leadership.standby(client)
                return STANDBY_POLL
            if not self.leadership.resumed:  # another beat may have led meanwhile: not an outage of ours
                self.sent.broker_gap -= self._outage_gap
            self._outage_gap = set()
            self._synced_loads = -1  # force a full sync now
        elif not self.leadership.keep():
            self._step_down("lost the leader lock", None)
            return STANDBY_POLL
        self.ledger.leading = True  # the ledger thread reaps lost runs while this beat leads
        self.firing.fire_due(client)  # first: due slots must not wait behind housekeeping
        self._maybe_sync(client, time.time())
        self.startup.step()
        self.leadership.heartbeat(client)
        return self.firing.next_sleep(client)

    def _step_down(self, why: str, exc: BaseException | None) -> None:
        self.leadership.step_down(why, exc)
        self.ledger.leading = False

    def _serve_metrics(self) -> None:
        # On the first tick, not in __init__: Celery also builds a throwaway scheduler for its banner.
        port = self.resources.settings.metrics_port
        if port and self.metrics is None:
            # prometheus_client only with metrics on.
            from sp_scheduler.metrics import BeatMetrics, LedgerTimestamps  # noqa: PLC0415

            self.metrics = BeatMetrics()
            self.metrics.registry.register(
                LedgerTimestamps(self.resources.last_runs, lambda: self.live, lambda: self.leader)
            )
            self.metrics.serve(port)
            self.firing.metrics = self.metrics

    def _publisher(self) -> BatchPublisher:
        if self.publisher is None:
            self.publisher = BatchPublisher(self.resources.settings.redis_url)
        return self.publisher

    def _send_run(self, request: RunRequest, queue: str, timeout: float | None) -> None:
        send_run(self.app, request, queue=queue, timeout=timeout, producer=self.producer)

    # -- sync: Redis entries == effective config -----------------------------------------------------------

    def request_sync(self) -> None:
        """Make the next tick re-sync (SIGHUP)."""
        self._synced_at = 0.0
        self._checked_at = 0.0

    def _maybe_sync(self, client: Any, now: float) -> None:
        """Sync when config or overrides changed, when Redis lost entries, and fully every FULL_SYNC_INTERVAL.

        Between full syncs the periodic check is a ZCARD: reading and comparing 10,000 entries every
        SYNC_INTERVAL was most of an idle leader's CPU.
        """
        catalog = self.watch.catalog()
        flagged = client.getdel(keys.SYNC_REQUESTED) is not None  # the CLI changed an override
        if flagged or self._synced_overrides < 0:  # ...or this is the first sync: wait briefly for them
            self.ledger.refresh_overrides(OVERRIDES_WAIT)
        changed = self.watch.reloaded != self._synced_loads or self.ledger.overrides()[0] != self._synced_overrides
        due = changed or flagged or now - self._synced_at >= FULL_SYNC_INTERVAL
        if not due and now - self._checked_at >= SYNC_INTERVAL:
            self._checked_at = now
            due = client.zcard(keys.schedule_key()) != len(self._desired)  # Redis lost (or gained) entries
        if due:
            self.sync_entries(client, catalog)
            self._synced_loads = self.watch.reloaded
            self._synced_at = self._checked_at = now

    def sync_entries(self, client: Any, catalog: Catalog) -> None:
        """Add new jobs, update changed ones, remove deleted or disabled ones (overrides as last read)."""
        self._synced_overrides, overrides = self.ledger.overrides()
        desired = desired_entries(catalog, overrides)
        # New entries count from a moment far enough ahead that their first burst can be prepared on
        # time (all of them due at once, at worst), so a beat that just started fires its first on time.
        sync_entries(client, desired, self.sent, datetime.now(UTC), lead=self.firing.lead(len(desired)))
        if desired != self._desired:
            self._desired = desired
            self.live = {name: ScheduledJob(spec.parsed(), spec.timeout) for name, spec in desired.items()}
        if self.metrics is not None:
            self.metrics.entries.set(len(desired))
