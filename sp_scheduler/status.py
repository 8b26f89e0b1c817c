"""What `jobs status` reports: beat leadership, workers, queues and per-job health, computed purely.

The CLI gathers the facts (Redis keys, ledger rows) and this module turns them into a report, so
the rules (when is beat stale, when is a job late) are tested with plain data and a given `now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sp_scheduler.catalog import Catalog

BEAT_STALE_SECONDS = 15.0  # a leader that has not ticked for this long is treated as gone
WORKER_SEEN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class JobHealth:
    name: str
    enabled: bool
    next_run: datetime | None
    last_success: datetime | None
    last_failure: datetime | None
    period_seconds: float | None
    late: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_failure": self.last_failure.isoformat() if self.last_failure else None,
            "period_seconds": self.period_seconds,
            "late": self.late,
        }


def job_health(
    catalog: Catalog,
    overrides: Mapping[str, bool],
    last_success: Mapping[str, datetime],
    last_failure: Mapping[str, datetime],
    now: datetime,
) -> list[JobHealth]:
    """Per scheduled job: next run, last success/failure, and `late`.

    A job is late when it is enabled and scheduled and its last success is older than twice its
    period; one that has failed but never succeeded is late too. A job that never ran is not (yet).
    """
    report = []
    for definition in catalog:
        enabled = catalog.scheduler_enabled and definition.enabled(overrides.get(definition.name))
        cron = definition.cron
        period = cron.period_seconds() if cron is not None else None
        success = last_success.get(definition.name)
        failure = last_failure.get(definition.name)
        late = False
        if enabled and period is not None:
            late = (now - success).total_seconds() > 2 * period if success is not None else failure is not None
        report.append(
            JobHealth(
                name=definition.name,
                enabled=enabled,
                next_run=cron.next_after(now) if enabled and cron is not None else None,
                last_success=success,
                last_failure=failure,
                period_seconds=period,
                late=late,
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
