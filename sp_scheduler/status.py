"""What `jobs status` reports: beat leadership, workers, queues and per-job health, computed purely.

The CLI gathers the facts (Redis keys, ledger rows) and this module turns them into a report, so
the rules (when is beat stale, when is a job late) are tested with plain data and a given `now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from sp_scheduler.catalog import Catalog, effective_enabled
from sp_scheduler.cron import CronExpression
from sp_scheduler.jobs import TRIGGERS, Trigger
from sp_scheduler.schedule_facts import schedule_facts

# The runs whose success or failure says whether a job keeps up with its schedule. A backfill run
# did the job's work, but for an old slot: its success must not hide that today's slots fail or do not
# run, and its failure is about the past (docs/decisions.md, "Backfill").
LATENESS_TRIGGERS: tuple[Trigger, ...] = tuple(t for t in TRIGGERS if t != "backfill")

BEAT_STALE_SECONDS = 15.0  # a leader that has not ticked for this long is treated as gone
WORKER_SEEN_SECONDS = 60.0


class CheckCode(IntEnum):
    """Exit codes of `jobs status --check`, most severe first; the first that applies is returned."""

    OK = 0
    NO_BEAT = 10  # no beat leads, or the leader has stopped ticking
    NO_WORKER = 11  # no worker has reported in within WORKER_SEEN_SECONDS
    LATE = 12  # at least one enabled job is late


@dataclass(frozen=True, slots=True)
class JobHealth:
    name: str
    enabled: bool
    next_run: datetime | None
    last_success: datetime | None
    last_failure: datetime | None
    period_seconds: float | None
    late: bool
    expected_slot: datetime | None = None  # the newest slot that should have succeeded by now
    late_grace_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_failure": self.last_failure.isoformat() if self.last_failure else None,
            "period_seconds": self.period_seconds,
            "expected_slot": self.expected_slot.isoformat() if self.expected_slot else None,
            "late_grace_seconds": self.late_grace_seconds,
            "late": self.late,
        }


def expected_slot(cron: CronExpression, timeout: float | None, now: datetime) -> tuple[datetime, float, float]:
    """(the newest slot whose success is due by `now`, the period around now, the grace applied);
    schedule_facts.py says how they are worked out, and caches them."""
    facts = schedule_facts(cron, timeout, now)
    return facts.slot, facts.period, facts.grace


def job_health(
    catalog: Catalog,
    overrides: Mapping[str, bool],
    last_success: Mapping[str, datetime],
    last_failure: Mapping[str, datetime],
    now: datetime,
) -> list[JobHealth]:
    """Per scheduled job: next run, last success/failure, and `late`.

    A job is late when it is enabled and scheduled and its last success is older than the newest slot
    that should have succeeded by now (see `expected_slot`); one that has failed but never succeeded
    is late too. A job that never ran is not (yet).
    """
    report = []
    for definition in catalog:
        enabled = effective_enabled(catalog, definition, overrides.get(definition.name)).value
        cron = definition.cron
        success = last_success.get(definition.name)
        failure = last_failure.get(definition.name)
        late = False
        slot: datetime | None = None
        period: float | None = None
        grace: float | None = None
        next_run: datetime | None = None
        if cron is not None:
            facts = schedule_facts(cron, definition.timeout, now)
            slot, period, grace = facts.slot, facts.period, facts.grace
            next_run = facts.next_run if enabled else None
            if enabled:
                late = success < slot if success is not None else failure is not None
        report.append(
            JobHealth(
                name=definition.name,
                enabled=enabled,
                next_run=next_run,
                last_success=success,
                last_failure=failure,
                period_seconds=period,
                late=late,
                expected_slot=slot if enabled else None,
                late_grace_seconds=grace,
            )
        )
    return report


@dataclass(frozen=True, slots=True)
class BeatState:
    leader: str | None
    last_tick: datetime | None
    lag_seconds: float | None
    instances: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return self.leader is not None and self.lag_seconds is not None and self.lag_seconds < BEAT_STALE_SECONDS


def beat_state(leader: Mapping[str, str], instances: Sequence[tuple[str, float]], now: datetime) -> BeatState:
    """From the leader hash and the instances set that beat maintains in Redis."""
    tick = leader.get("last_tick")
    last_tick = datetime.fromtimestamp(float(tick), now.tzinfo) if tick else None
    lag = (now - last_tick).total_seconds() if last_tick else None
    alive = tuple(name for name, seen in instances if now.timestamp() - seen < BEAT_STALE_SECONDS)
    return BeatState(leader.get("id"), last_tick, lag, alive)


def recent_workers(seen: Sequence[tuple[str, float]], now: datetime) -> list[str]:
    return sorted(name for name, when in seen if now.timestamp() - when < WORKER_SEEN_SECONDS)


def check_code(beat: BeatState, workers: Sequence[str], jobs: Sequence[JobHealth]) -> CheckCode:
    """What `jobs status --check` exits with: the most severe problem, or OK."""
    if not beat.healthy:
        return CheckCode.NO_BEAT
    if not workers:
        return CheckCode.NO_WORKER
    if any(job.late for job in jobs):
        return CheckCode.LATE
    return CheckCode.OK
