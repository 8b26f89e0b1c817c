"""Per-job last-success and last-failure timestamps for Prometheus, read from the ledger on each scrape.

Only the ledger knows every run: a worker sees only its own, so a gauge per worker would disagree with
any other worker, and a run on a worker that has since gone would be forgotten. The leading beat
serves these series (standbys serve none), so there is exactly one copy whatever the number of workers
or beats, and a manual run counts like a scheduled one. Each scrape reads the newest success and
failure of every scheduled job through the job-and-status index: one index seek per job and status.

This module is pure (no prometheus_client import): `metrics.LedgerTimestamps` turns its samples
into metric families, and beat imports this module before it knows whether metrics are served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sp_scheduler import run_status
from sp_scheduler.cron import CronExpression
from sp_scheduler.status import expected_slot

FAILED_STATUSES = run_status.FAILED_STATUSES  # the statuses beat reads the last failure by

LastRuns = tuple[Mapping[str, datetime], Mapping[str, datetime]]  # (last success, last failure) by job


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """What the timestamps need of a job on the live schedule."""

    cron: CronExpression
    timeout: float | None


@dataclass(frozen=True, slots=True)
class JobTimestamps:
    """One job's samples, in seconds since the epoch; None when there is no such run."""

    job_name: str
    last_success: float | None
    last_failure: float | None
    success_due: float  # the newest slot whose success is due by now (slot + late grace has passed)


def job_timestamps(jobs: Mapping[str, ScheduledJob], last: LastRuns, now: datetime) -> list[JobTimestamps]:
    """The samples for every job on the live schedule, sorted by name."""
    successes, failures = last
    samples = []
    for name, job in sorted(jobs.items()):
        success, failure = successes.get(name), failures.get(name)
        slot, _, _ = expected_slot(job.cron, job.timeout, now)
        samples.append(
            JobTimestamps(
                name,
                success.timestamp() if success else None,
                failure.timestamp() if failure else None,
                slot.timestamp(),
            )
        )
    return samples
