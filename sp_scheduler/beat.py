"""Beat on RedBeat: one leader fires every enabled job at its six-field cron slots, exactly once per slot.

Started as `celery beat -S sp_scheduler.beat:SlotScheduler` (what `sp-scheduler beat` runs). Entries
live in Redis in RedBeat's format (a hash per job, a sorted set scored by due time). Each tick the
leader sends one message per due slot carrying `scheduled_for`; slots it could not send in time are
recorded `missed` in Postgres, and after downtime a job runs once (coalesced), never as a burst.

Unlike stock RedBeat, leadership is taken and kept inside the tick (a standby polls instead of
blocking in `beat_init`), and a Redis outage makes beat wait and retry instead of exiting. Postgres
is never touched on the tick: beat_ledger.py does that work on its own thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from redbeat.schedulers import RedBeatScheduler, get_redis

from sp_scheduler import keys
from sp_scheduler.beat_ledger import BeatLedger, MissedSlots, StartupRun
from sp_scheduler.catalog import Catalog, CatalogWatch, JobDefinition
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.cron import CronExpression
from sp_scheduler.ledger_metrics import FAILED_STATUSES, LastRuns, ScheduledJob
from sp_scheduler.publish import BatchPublisher, Outgoing
from sp_scheduler.runner import RunRequest, WorkerRuntime
from sp_scheduler.schedule import CronSchedule, ScheduleDecoder, ScheduleEncoder, UndecodableSchedule
from sp_scheduler.slots import plan_due
from sp_scheduler.worker import TASK_NAME, send_run

if TYPE_CHECKING:
    from sp_scheduler.metrics import BeatMetrics

log = logging.getLogger(__name__)

LOCK_TTL = 10.0  # a standby takes over at most this long (plus one poll) after the leader dies
STANDBY_POLL = 1.0
MAX_SLEEP = 1.0  # ticks at least this often: lock, heartbeat and sync stay fresh
SYNC_INTERVAL = 10.0  # full re-sync with config and overrides even when nothing signalled a change
UNDECODABLE_RETRY = 60.0
LOOKAHEAD = 0.3  # seconds before a slot that beat reads and prepares its messages
LARGE_BATCH = 100  # ticks sending at least this many slots log how long it took
LOCK_EXTEND_EVERY = 500  # entries fired between lock extensions within one tick
OVERRIDES_WAIT = 0.5  # how long a sync waits for fresh overrides when it needs them now (first sync, CLI)


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """The desired RedBeat entry of one scheduled job."""

    job_name: str
    expression: str
    timezone: str
    queue: str
    timeout: float | None
    misfire_grace: float | None  # None: follow the period

    def definition(self) -> str:
        """The entry's `definition` field, deterministic so changes are detected by comparison."""
        body = {
            "name": self.job_name,
            "task": TASK_NAME,
            "args": [],
            "kwargs": {"job_name": self.job_name, "timeout": self.timeout, "misfire_grace": self.misfire_grace},
            "options": {"queue": self.queue},
            "schedule": CronSchedule(self.expression, self.timezone),
            "enabled": True,
        }
        return json.dumps(body, cls=ScheduleEncoder, sort_keys=True)


def desired_entries(catalog: Catalog, overrides: Mapping[str, bool]) -> dict[str, EntrySpec]:
    """Every job that should be on the live schedule: has a cron, is enabled (override wins)."""
    if not catalog.scheduler_enabled:
        return {}
    return {
        d.name: EntrySpec(d.name, d.schedule, d.timezone, d.queue, d.timeout, d.misfire_grace)
        for d in catalog
        if d.cron is not None and d.enabled(overrides.get(d.name))
    }


def _encode_meta(last_slot: datetime) -> str:
    return json.dumps({"last_run_at": last_slot}, cls=ScheduleEncoder)


class SlotScheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's storage and Celery's beat loop, with sp-scheduler's tick."""

    max_interval = MAX_SLEEP

    def __init__(self, app: Any, **kwargs: Any) -> None:
        runtime: WorkerRuntime = app.sp_runtime
        self.runtime = runtime
        self.watch = CatalogWatch(runtime.settings)
        self.beat_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.leader = False
        self.startup_done = False
        self._startup_waiting: dict[str, JobDefinition] | None = None  # decided once overrides are known
        self._startup_ready: deque[StartupRun] = deque()
        self._lock: Any = None
        self._synced_at = 0.0
        self._synced_loads = -1
        self._synced_overrides = -1
        # Per entry key, the definition and last slot this beat published: a Redis that comes back
        # empty (restarted without persistence) loses both, and the outage's slots would leave no row.
        self._published: dict[str, tuple[str, datetime]] = {}
        self._broker_gap: set[str] = set()  # jobs whose next missed slots fell in a broker outage
        # Every Postgres call of beat goes through this thread, never through the tick (beat_ledger.py).
        self.ledger = BeatLedger(
            runtime.run_ledger(),
            reap_interval=max(runtime.settings.lease_seconds / 3, 1.0),
            lease_seconds=runtime.settings.lease_seconds,
            refresh_interval=SYNC_INTERVAL,
            queued_deadline=runtime.settings.queued_deadline,
        )
        self.metrics: BeatMetrics | None = None
        self.live: Mapping[str, ScheduledJob] = {}  # the synced schedule, for the ledger timestamps
        self.publisher: BatchPublisher | None = None
        super().__init__(app, **kwargs)
        self.lock_key = None  # leadership is ours (in tick); RedBeat's blocking beat_init lock stays out

    # -- Celery hooks ---------------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Nothing at construction: entries are synced when this beat takes the lead."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return self._tick()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self._step_down("Redis unreachable", exc)
            return STANDBY_POLL
        except redis.exceptions.LockError as exc:  # our lock expired or vanished (e.g. Redis restarted)
            self._step_down("lost the leader lock", exc)
            return 0.0
        except Exception as exc:  # beat must outlive any single bad tick; the next one retries
            log.exception("beat tick failed", extra={"error": repr(exc)})
            return STANDBY_POLL

    def close(self) -> None:
        if self._lock is not None and self.leader:
            try:
                self._lock.release()
                log.info("beat released leadership", extra={"beat": self.beat_id})
            except redis.exceptions.RedisError:
                pass
        self.leader = False
        self.ledger.stop()  # after the lock: a standby need not wait while pending ledger work is written
        super().close()

    @property
    def info(self) -> str:
        return f"       . sp-scheduler slots, leader lock {keys.LEADER_LOCK} ({LOCK_TTL:g}s), id {self.beat_id}"

    # -- the tick ------------------------------------------------------------------------------------------

    def _serve_metrics(self) -> None:
        # On the first tick, not in __init__: Celery also builds a throwaway scheduler for its banner.
        port = self.runtime.settings.metrics_port
        if port and self.metrics is None:
            from sp_scheduler.metrics import BeatMetrics, LedgerTimestamps

            self.metrics = BeatMetrics()
            self.metrics.registry.register(LedgerTimestamps(self._last_runs, lambda: self.live, lambda: self.leader))
            self.metrics.serve(port)

    def _last_runs(self, names: Sequence[str]) -> LastRuns:
        """Newest success and failure per job, from the ledger (the metrics server thread calls this)."""
        from sp_scheduler.store import last_with_status

        def read(conn: Any) -> LastRuns:
            successes = last_with_status(conn, ["succeeded"], names)
            failures = last_with_status(conn, FAILED_STATUSES, names)
            return (
                {name: r.finished_at or r.created_at for name, r in successes.items()},
                {name: r.finished_at or r.created_at for name, r in failures.items()},
            )

        return self.runtime.ledger_call(read)

    def _tick(self) -> float:
        self._serve_metrics()
        self.ledger.start()
        if self.metrics is not None:
            self.metrics.leader.set(1 if self.leader else 0)
        client = get_redis(self.app)
        if not self.leader:
            if not self._take_lead(client):
                client.zadd(keys.BEAT_INSTANCES, {self.beat_id: time.time()})
                return STANDBY_POLL
        elif not self._lock.extend(LOCK_TTL, replace_ttl=True):
            self._step_down("lost the leader lock", None)
            return STANDBY_POLL
        self.ledger.leading = True  # the ledger thread reaps lost runs while this beat leads
        self._fire_due(client)  # first: due slots must not wait behind housekeeping
        now = time.time()
        self._maybe_sync(client, now)
        if not self.startup_done:
            self._send_startup_runs()
        self._heartbeat(client)
        return self._sleep_until_next(client)

    def _take_lead(self, client: Any) -> bool:
        self._lock = client.lock(keys.LEADER_LOCK, timeout=LOCK_TTL, blocking=False)
        if not self._lock.acquire(blocking=False):
            return False
        self.leader = True
        self._synced_loads = -1  # force a full sync now
        client.hset(keys.BEAT_LEADER, mapping={"id": self.beat_id, "since": time.time()})
        log.info("beat took the lead", extra={"beat": self.beat_id})
        return True

    def _step_down(self, why: str, exc: BaseException | None) -> None:
        if self.leader:
            log.warning("beat stepped down", extra={"beat": self.beat_id, "reason": why, "error": repr(exc)})
        else:
            log.warning("beat waiting", extra={"beat": self.beat_id, "reason": why, "error": repr(exc)})
        self.leader = False
        self.ledger.leading = False

    def _heartbeat(self, client: Any) -> None:
        now = time.time()
        with client.pipeline() as pipe:
            pipe.hset(
                keys.BEAT_LEADER,
                mapping={"id": self.beat_id, "host": socket.gethostname(), "pid": os.getpid(), "last_tick": now},
            )
            pipe.expire(keys.BEAT_LEADER, int(LOCK_TTL * 3))
            pipe.zadd(keys.BEAT_INSTANCES, {self.beat_id: now})
            pipe.execute()

    def _sleep_until_next(self, client: Any) -> float:
        head = client.zrange(keys.schedule_key(), 0, 0, withscores=True)
        if not head:
            return MAX_SLEEP
        # Wake LOOKAHEAD early: _fire_due prepares the slot's messages, then sends them on the dot.
        return float(min(max(head[0][1] - LOOKAHEAD - time.time(), 0.0), MAX_SLEEP))

    # -- sync: Redis entries == effective config -----------------------------------------------------------

    def request_sync(self) -> None:
        """Make the next tick re-sync (SIGHUP)."""
        self._synced_at = 0.0

    def _maybe_sync(self, client: Any, now: float) -> None:
        catalog = self.watch.catalog()
        flagged = client.getdel(keys.SYNC_REQUESTED) is not None  # the CLI changed an override
        if flagged or self._synced_overrides < 0:  # ...or this is the first sync: wait briefly for them
            self.ledger.refresh_overrides(OVERRIDES_WAIT)
        changed = self.watch.reloaded != self._synced_loads or self.ledger.overrides()[0] != self._synced_overrides
        if changed or flagged or now - self._synced_at >= SYNC_INTERVAL:
            self.sync_entries(client, catalog)
            self._synced_loads = self.watch.reloaded
            self._synced_at = now

    def sync_entries(self, client: Any, catalog: Catalog) -> None:
        """Add new jobs, update changed ones, remove deleted or disabled ones (overrides as last read)."""
        self._synced_overrides, overrides = self.ledger.overrides()
        desired = desired_entries(catalog, overrides)
        schedule_key = keys.schedule_key()
        existing = {key[len(keys.REDBEAT_PREFIX) :]: key for key in client.zrange(schedule_key, 0, -1)}
        with client.pipeline() as pipe:
            for key in existing.values():
                pipe.hget(key, "definition")
            current = dict(zip(existing, pipe.execute(), strict=True))
        now = datetime.now(UTC)
        with client.pipeline() as pipe:
            for name, key in existing.items():
                if name not in desired:
                    self._published.pop(key, None)  # re-enabled later, it starts afresh
                    pipe.zrem(schedule_key, key)
                    pipe.delete(key)
                    log.info("schedule entry removed", extra={"job": name})
            for name, spec in desired.items():
                definition = spec.definition()
                if current.get(name) == definition:
                    continue
                # New or changed: start counting slots from now, so a change never creates "missed" slots;
                # unless Redis lost an unchanged entry this beat was firing: count from its last slot sent.
                key = keys.entry_key(name)
                cron = CronSchedule(spec.expression, spec.timezone)
                start = now
                remembered = self._published.get(key)
                if name not in current and remembered is not None and remembered[0] == definition:
                    start = remembered[1]
                    self._broker_gap.add(name)
                    log.warning("schedule entry restored after Redis lost it", extra={"job": name, "last_slot": start})
                pipe.hset(key, mapping={"definition": definition, "meta": _encode_meta(start)})
                pipe.zadd(schedule_key, {key: cron.next_after(start).timestamp()})
                log.info(
                    "schedule entry set",
                    extra={
                        "job": name,
                        "change": "updated" if name in current else "added",
                        "schedule": spec.expression,
                        "timezone": spec.timezone,
                    },
                )
            pipe.execute()
        self.live = {
            name: ScheduledJob(CronExpression.parse(spec.expression, spec.timezone), spec.timeout)
            for name, spec in desired.items()
        }
        if self.metrics is not None:
            self.metrics.entries.set(len(desired))

    # -- firing ----------------------------------------------------------------------------------------------

    def _fire_due(self, client: Any) -> None:
        """Send every slot due now or within LOOKAHEAD, each group at its due instant.

        Reading, decoding and planning a thousand entries takes longer than the 100 ms a slot may be
        late, so that work is done just before the slot; at the slot only one pipeline is written.
        """
        schedule_key = keys.schedule_key()
        now_ts = time.time()
        due = client.zrangebyscore(schedule_key, "-inf", now_ts + LOOKAHEAD, withscores=True)
        if not due:
            return
        with client.pipeline() as pipe:
            for key, _ in due:
                pipe.hmget(key, ["definition", "meta"])
            stored = pipe.execute()
        updates: list[tuple[str, datetime, float]] = []
        sent: list[tuple[str, str, datetime]] = []
        batches: dict[float, list[Outgoing]] = {}
        for index, ((key, score), (definition, meta)) in enumerate(zip(due, stored, strict=True)):
            if index and index % LOCK_EXTEND_EVERY == 0:  # a huge batch must not outlive the lock
                self._lock.extend(LOCK_TTL, replace_ttl=True)
            if definition is None:
                client.zrem(schedule_key, key)
                continue
            at = max(now_ts, float(score))  # overdue entries go now; the rest at their due instant
            update = self._fire_entry(
                key, definition, meta, datetime.fromtimestamp(at, UTC), batches.setdefault(at, [])
            )
            updates.append(update)
            sent.append((key, definition, update[1]))
        # Send first, then remember the slots: a crash in between re-sends, and the ledger drops repeats.
        publisher = self._publisher()
        prepared = {at: publisher.prepare(batch) for at, batch in batches.items()}
        for at in sorted(prepared):
            wait = at - time.time()
            if wait > 0:
                time.sleep(wait)
            publisher.send(prepared[at])
            if len(prepared[at]) >= LARGE_BATCH:
                late_ms = round((time.time() - at) * 1000, 1)
                log.info("slots sent", extra={"count": len(prepared[at]), "late_ms": late_ms})
        for key, definition, last_slot in sent:
            self._published[key] = (definition, last_slot)
        with client.pipeline() as pipe:
            for key, last_slot, next_ts in updates:
                pipe.hset(key, "meta", _encode_meta(last_slot))
                pipe.zadd(schedule_key, {key: next_ts})
            pipe.execute()

    def _publisher(self) -> BatchPublisher:
        if self.publisher is None:
            self.publisher = BatchPublisher(self.app.conf.broker_url)
        return self.publisher

    def _fire_entry(
        self, key: str, definition: str, meta: str | None, now: datetime, outgoing: list[Outgoing]
    ) -> tuple[str, datetime, float]:
        """Plan one due entry: queue its slot message in `outgoing`, record missed slots, return its update."""
        try:
            body = json.loads(definition, cls=ScheduleDecoder)
            schedule = body["schedule"]
            kwargs = body["kwargs"]
            job_name = str(kwargs["job_name"])
        except (ValueError, KeyError, TypeError) as exc:
            log.error("schedule entry cannot be decoded; skipped", extra={"key": key, "error": repr(exc)})
            return key, now, now.timestamp() + UNDECODABLE_RETRY
        if not isinstance(schedule, CronSchedule):
            reason = schedule.reason if isinstance(schedule, UndecodableSchedule) else repr(schedule)
            log.error("schedule entry has an unusable schedule; skipped", extra={"key": key, "error": reason})
            return key, now, now.timestamp() + UNDECODABLE_RETRY
        last = json.loads(meta, cls=ScheduleDecoder).get("last_run_at") if meta else None
        grace = kwargs.get("misfire_grace")
        plan = plan_due(schedule.cron, last or now, now, None if grace is None else float(grace))
        if plan.run is not None:
            queue = body.get("options", {}).get("queue") or DEFAULT_QUEUE
            outgoing.append(Outgoing(RunRequest(job_name, "schedule", plan.run), queue, kwargs.get("timeout")))
            if self.metrics is not None:
                self.metrics.sent.labels(job_name).inc()
                self.metrics.tick_lag.set((now - plan.run).total_seconds())
        if plan.missed_total:
            if self.metrics is not None:
                self.metrics.missed.labels(job_name).inc(plan.missed_total)
            self._record_missed(job_name, plan.missed, plan.missed_total, caught_up=plan.run is not None)
        self._broker_gap.discard(job_name)
        return key, plan.last_slot, plan.next_due.timestamp()

    def _record_missed(self, job_name: str, slots: tuple[datetime, ...], total: int, *, caught_up: bool) -> None:
        message = "missed: no beat was running (or it fell behind) at this slot"
        if job_name in self._broker_gap:
            message = "missed: beat could not publish it while the broker (Redis) was unreachable"
        message += "; the newest slot ran as the catch-up" if caught_up else "; past misfire_grace, not run"
        log.warning("slots missed", extra={"job": job_name, "missed": total, "caught_up": caught_up})
        self.ledger.record_missed(MissedSlots(job_name, slots, message))

    # -- startup jobs and lost runs ------------------------------------------------------------------------

    def _send_startup_runs(self) -> None:
        """Jobs whose code says run_on_startup and whose YAML (and override) enables them, once per process.

        The ledger thread records each as queued; the tick publishes it once its row is committed, and
        a publish that fails is retried next tick under the same run id.
        """
        if self._startup_waiting is None:
            version, overrides = self.ledger.overrides()
            if version == 0:
                return  # the overrides decide which jobs start: wait for their first read
            catalog = self.watch.catalog()
            self._startup_waiting = {
                d.name: d
                for d in catalog
                if catalog.scheduler_enabled and d.run_on_startup and d.enabled(overrides.get(d.name))
            }
            self.ledger.queue_startup(
                [StartupRun(d.name, str(uuid.uuid4()), dict(d.params)) for d in self._startup_waiting.values()]
            )
        self._startup_ready.extend(self.ledger.take_queued())
        while self._startup_ready:
            run = self._startup_ready[0]
            definition = self._startup_waiting[run.job_name]
            try:
                send_run(
                    self.app,
                    RunRequest(run.job_name, "startup", None, run.run_id),
                    queue=definition.queue,
                    timeout=definition.timeout,
                    producer=self.producer,
                )
            except Exception as exc:  # the broker is away: the queued row waits, the publish is retried
                log.error("cannot send startup run; retrying", extra={"job": run.job_name, "error": str(exc)})
                return
            self._startup_ready.popleft()
            del self._startup_waiting[run.job_name]
            log.info("startup run sent", extra={"job": run.job_name, "run_id": run.run_id})
        if not self._startup_waiting:
            self.startup_done = True
