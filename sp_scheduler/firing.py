"""Firing due slots: each tick, one message per due entry, sent on the dot; missed slots reported.

Reading, decoding and planning a thousand entries takes longer than the 100 ms a slot may be late, so
that work is done LOOKAHEAD before the slot; at the slot only one pipeline is written. The clock and
the sleep are injected, so the loop is tested against a fake clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sp_scheduler import keys
from sp_scheduler.beat_ledger import MissedSlots
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.entries import SentSlots, encode_meta
from sp_scheduler.messages import RunRequest
from sp_scheduler.publish import Outgoing
from sp_scheduler.schedule import CronSchedule, ScheduleDecoder, UndecodableSchedule
from sp_scheduler.slots import plan_due

if TYPE_CHECKING:
    from sp_scheduler.metrics import BeatMetrics

log = logging.getLogger(__name__)

MAX_SLEEP = 1.0  # ticks at least this often: lock, heartbeat and sync stay fresh
UNDECODABLE_RETRY = 60.0
LOOKAHEAD = 0.3  # seconds before a slot that beat reads and prepares its messages
LARGE_BATCH = 100  # ticks sending at least this many slots log how long it took
LOCK_EXTEND_EVERY = 500  # entries fired between lock extensions within one tick


class Publisher(Protocol):
    """publish.BatchPublisher's two steps: build messages ahead, write them at the instant."""

    def prepare(self, messages: Sequence[Outgoing]) -> list[tuple[str, str]]: ...

    def send(self, prepared: Sequence[tuple[str, str]]) -> None: ...


class Firing:
    """Sends the due slots of Redis's entries and moves each entry to its next due time."""

    def __init__(
        self,
        publisher: Callable[[], Publisher],
        sent: SentSlots,
        record_missed: Callable[[MissedSlots], None],
        *,
        extend_lock: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.publisher = publisher  # called at the first send: built lazily
        self.sent = sent
        self.record_missed = record_missed
        self.extend_lock = extend_lock
        self.clock = clock
        self.sleep = sleep
        self.metrics: BeatMetrics | None = None

    def fire_due(self, client: Any) -> None:
        """Send every slot due now or within LOOKAHEAD, each group at its due instant."""
        schedule_key = keys.schedule_key()
        now_ts = self.clock()
        due = client.zrangebyscore(schedule_key, "-inf", now_ts + LOOKAHEAD, withscores=True)
        if not due:
            return
        with client.pipeline() as pipe:
            for key, _ in due:
                pipe.hmget(key, ["definition", "meta"])
            stored = pipe.execute()
        updates: list[tuple[str, datetime, float]] = []
        fired: list[tuple[str, str, datetime]] = []
        batches: dict[float, list[Outgoing]] = {}
        for index, ((key, score), (definition, meta)) in enumerate(zip(due, stored, strict=True)):
            if index and index % LOCK_EXTEND_EVERY == 0:  # a huge batch must not outlive the lock
                self.extend_lock()
            if definition is None:
                client.zrem(schedule_key, key)
                continue
            at = max(now_ts, float(score))  # overdue entries go now; the rest at their due instant
            update = self.plan_entry(key, definition, meta, datetime.fromtimestamp(at, UTC), batches.setdefault(at, []))
            updates.append(update)
            fired.append((key, definition, update[1]))
        # Send first, then remember the slots: a crash in between re-sends, and the ledger drops repeats.
        publisher = self.publisher()
        prepared = {at: publisher.prepare(batch) for at, batch in batches.items()}
        for at in sorted(prepared):
            wait = at - self.clock()
            if wait > 0:
                self.sleep(wait)
            publisher.send(prepared[at])
            if len(prepared[at]) >= LARGE_BATCH:
                late_ms = round((self.clock() - at) * 1000, 1)
                log.info("slots sent", extra={"count": len(prepared[at]), "late_ms": late_ms})
        for key, definition, last_slot in fired:
            self.sent.last[key] = (definition, last_slot)
        with client.pipeline() as pipe:
            for key, last_slot, next_ts in updates:
                pipe.hset(key, "meta", encode_meta(last_slot))
                pipe.zadd(schedule_key, {key: next_ts})
            pipe.execute()

    def plan_entry(
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
            self._report_missed(job_name, plan.missed, plan.missed_total, caught_up=plan.run is not None)
        self.sent.broker_gap.discard(job_name)
        return key, plan.last_slot, plan.next_due.timestamp()

    def _report_missed(self, job_name: str, slots: tuple[datetime, ...], total: int, *, caught_up: bool) -> None:
        message = "missed: no beat was running (or it fell behind) at this slot"
        if job_name in self.sent.broker_gap:
            message = "missed: beat could not publish it while the broker (Redis) was unreachable"
        message += "; the newest slot ran as the catch-up" if caught_up else "; past misfire_grace, not run"
        log.warning("slots missed", extra={"job": job_name, "missed": total, "caught_up": caught_up})
        self.record_missed(MissedSlots(job_name, slots, message))

    def next_sleep(self, client: Any) -> float:
        """How long the tick may sleep: until LOOKAHEAD before the next due entry, at most MAX_SLEEP."""
        head = client.zrange(keys.schedule_key(), 0, 0, withscores=True)
        if not head:
            return MAX_SLEEP
        # Wake LOOKAHEAD early: fire_due prepares the slot's messages, then sends them on the dot.
        return float(min(max(head[0][1] - LOOKAHEAD - self.clock(), 0.0), MAX_SLEEP))
