"""Firing due slots: each tick, one message per due entry, sent on the dot; missed slots reported.

Reading, decoding, planning and serialising due entries takes far longer than the 100 ms a slot may be
late when thousands are due at once, so that work is done ahead of the slot (lookahead.py sizes how
far ahead from the number due and the measured cost per entry); at the slot only one pipeline is
written. Decoded definitions are memoised and identical plans computed once a tick, so a burst of
10,000 entries costs little more than its serialisation. The clock and the sleep are injected, so
the loop is tested against a fake clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sp_scheduler import keys
from sp_scheduler.beat_ledger import MissedSlots
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.cron import CronExpression
from sp_scheduler.entries import SentSlots, encode_meta
from sp_scheduler.lookahead import CEILING, FLOOR, Lookahead
from sp_scheduler.messages import RunRequest
from sp_scheduler.publish import Outgoing
from sp_scheduler.schedule import CronSchedule, ScheduleDecoder, UndecodableSchedule
from sp_scheduler.slots import DuePlan, plan_due

if TYPE_CHECKING:
    from sp_scheduler.metrics import BeatMetrics

log = logging.getLogger(__name__)

MAX_SLEEP = 1.0  # ticks at least this often: lock, heartbeat and sync stay fresh
UNDECODABLE_RETRY = 60.0
LOOKAHEAD = FLOOR  # the least time before a slot that beat reads and prepares its messages
LARGE_BATCH = 100  # ticks sending at least this many slots log how long it took
LOCK_EXTEND_EVERY = 500  # entries fired between lock extensions within one tick
READ_BATCH = 1000  # entries read per pipeline
DECODED_CACHE = 65_536  # decoded definitions kept; past this the cache starts afresh


@dataclass(frozen=True, slots=True)
class DueEntry:
    """What firing needs of an entry's definition, decoded once per distinct definition."""

    job_name: str
    cron: CronExpression
    queue: str
    timeout: float | None
    grace: float | None


def decode_definition(definition: str) -> DueEntry | tuple[str, str]:
    """The entry, or (log message, error) saying why it cannot be fired."""
    try:
        body = json.loads(definition, cls=ScheduleDecoder)
        schedule = body["schedule"]
        kwargs = body["kwargs"]
        job_name = str(kwargs["job_name"])
        if not isinstance(schedule, CronSchedule):
            reason = schedule.reason if isinstance(schedule, UndecodableSchedule) else repr(schedule)
            return "schedule entry has an unusable schedule; skipped", reason
        grace = kwargs.get("misfire_grace")
        queue = body.get("options", {}).get("queue") or DEFAULT_QUEUE
        return DueEntry(
            job_name, schedule.cron, str(queue), kwargs.get("timeout"), None if grace is None else float(grace)
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return "schedule entry cannot be decoded; skipped", repr(exc)


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
        self.lookahead = Lookahead()
        self.window = LOOKAHEAD  # how far ahead the next fire_due reads (next_sleep sizes it)
        self._decoded: dict[str, DueEntry | tuple[str, str]] = {}

    def fire_due(self, client: Any) -> None:
        """Send every slot due now or within the look-ahead, each group at its due instant."""
        schedule_key = keys.schedule_key()
        started = time.perf_counter()
        now_ts = self.clock()
        due = client.zrangebyscore(schedule_key, "-inf", now_ts + self.window, withscores=True)
        if not due:
            return
        stored = self._read(client, [key for key, _ in due])
        updates: list[tuple[str, datetime, float]] = []
        fired: list[tuple[str, str, datetime]] = []
        batches: dict[float, list[Outgoing]] = {}
        metas: dict[str | None, datetime | None] = {}
        plans: dict[tuple[CronExpression, datetime, datetime, float | None], DuePlan] = {}
        for index, ((key, score), (definition, meta)) in enumerate(zip(due, stored, strict=True)):
            if index and index % LOCK_EXTEND_EVERY == 0:  # a huge batch must not outlive the lock
                self.extend_lock()
            if definition is None:
                client.zrem(schedule_key, key)
                continue
            at = max(now_ts, float(score))  # overdue entries go now; the rest at their due instant
            if (entry := self._decode(key, definition)) is None:
                updates.append((key, datetime.fromtimestamp(at, UTC), at + UNDECODABLE_RETRY))
                continue
            if meta not in metas:
                metas[meta] = json.loads(meta, cls=ScheduleDecoder).get("last_run_at") if meta else None
            now = datetime.fromtimestamp(at, UTC)
            last = metas[meta] or now
            plan_key = (entry.cron, last, now, entry.grace)
            if (plan := plans.get(plan_key)) is None:
                plan = plans[plan_key] = plan_due(entry.cron, last, now, entry.grace)
            self._handle(entry, plan, now, batches.setdefault(at, []))
            updates.append((key, plan.last_slot, plan.next_due.timestamp()))
            fired.append((key, definition, plan.last_slot))
        # Send first, then remember the slots: a crash in between re-sends, and the ledger drops repeats.
        publisher = self.publisher()
        prepared = {at: publisher.prepare(batch) for at, batch in batches.items()}
        self.lookahead.observe(len(due), time.perf_counter() - started)
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
        self._write_updates(client, updates)

    def _read(self, client: Any, entry_keys: list[str]) -> list[tuple[str | None, str | None]]:
        """Each due entry's definition and meta, in pipelines of READ_BATCH."""
        stored: list[tuple[str | None, str | None]] = []
        for index in range(0, len(entry_keys), READ_BATCH):
            with client.pipeline(transaction=False) as pipe:
                for key in entry_keys[index : index + READ_BATCH]:
                    pipe.hmget(key, ["definition", "meta"])
                stored.extend((definition, meta) for definition, meta in pipe.execute())
        return stored

    def _decode(self, key: str, definition: str) -> DueEntry | None:
        """The decoded entry (memoised by its text), or None after logging why it cannot fire."""
        decoded = self._decoded.get(definition)
        if decoded is None:
            if len(self._decoded) >= DECODED_CACHE:
                self._decoded.clear()
            decoded = self._decoded[definition] = decode_definition(definition)
        if isinstance(decoded, DueEntry):
            return decoded
        message, error = decoded
        log.error(message, extra={"key": key, "error": error})
        return None

    def _handle(self, entry: DueEntry, plan: DuePlan, now: datetime, outgoing: list[Outgoing]) -> None:
        """Queue the plan's slot message in `outgoing` and report its missed slots."""
        if plan.run is not None:
            outgoing.append(Outgoing(RunRequest(entry.job_name, "schedule", plan.run), entry.queue, entry.timeout))
            if self.metrics is not None:
                self.metrics.sent.labels(entry.job_name).inc()
                self.metrics.tick_lag.set((now - plan.run).total_seconds())
        if plan.missed_total:
            if self.metrics is not None:
                self.metrics.missed.labels(entry.job_name).inc(plan.missed_total)
            self._report_missed(entry.job_name, plan.missed, plan.missed_total, caught_up=plan.run is not None)
        self.sent.broker_gap.discard(entry.job_name)

    def _write_updates(self, client: Any, updates: list[tuple[str, datetime, float]]) -> None:
        """Each fired entry's last slot (meta) and next due time (score), in pipelines of READ_BATCH."""
        schedule_key = keys.schedule_key()
        for index in range(0, len(updates), READ_BATCH):
            chunk = updates[index : index + READ_BATCH]
            with client.pipeline(transaction=False) as pipe:
                for key, last_slot, _ in chunk:
                    pipe.hset(key, "meta", encode_meta(last_slot))
                pipe.zadd(schedule_key, {key: next_ts for key, _, next_ts in chunk})
                pipe.execute()

    def _report_missed(self, job_name: str, slots: tuple[datetime, ...], total: int, *, caught_up: bool) -> None:
        message = "missed: no beat was running (or it fell behind) at this slot"
        if job_name in self.sent.broker_gap:
            message = "missed: beat could not publish it while the broker (Redis) was unreachable"
        message += "; the newest slot ran as the catch-up" if caught_up else "; past misfire_grace, not run"
        log.warning("slots missed", extra={"job": job_name, "missed": total, "caught_up": caught_up})
        self.record_missed(MissedSlots(job_name, slots, message))

    def next_sleep(self, client: Any) -> float:
        """How long the tick may sleep: until the look-ahead before the next due entry, at most MAX_SLEEP.

        The look-ahead grows with the number of entries due at that instant (lookahead.py), and the
        next fire_due reads that far ahead.
        """
        schedule_key = keys.schedule_key()
        head = client.zrange(schedule_key, 0, 0, withscores=True)
        self.window = LOOKAHEAD
        if not head:
            return MAX_SLEEP
        due_at = float(head[0][1])
        now = self.clock()
        if due_at - now > MAX_SLEEP + CEILING:  # far off: no need to count what is due then
            return MAX_SLEEP
        self.window = self.lookahead.seconds(client.zcount(schedule_key, "-inf", due_at + LOOKAHEAD))
        return float(min(max(due_at - self.window - now, 0.0), MAX_SLEEP))

    def lead(self, entries: int) -> float:
        """How long before their first slot `entries` new entries must be in Redis to go out on time."""
        return self.lookahead.seconds(entries) + LOOKAHEAD
