"""`jobs status`'s late rule on what a ledger holds: runs recorded through the in-memory ledger, read
the way the status command reads them (last success, last failure among failed/timeout/lost,
overrides), then judged by `status.job_health`. No server needed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.config import JobConfig
from sp_scheduler.cron import CronExpression
from sp_scheduler.ledger import Ledger
from sp_scheduler.ledger.memory import InMemoryLedger
from sp_scheduler.status import LATENESS_TRIGGERS, JobHealth, job_health
from sp_scheduler.store import FinishStatus, RunOutcome
from tests.support import wait_until
from tests.support.jobs import Noop
from tests.support.manual_runs import claim_manual

EVERY_SECOND = "* * * * * *"


def definition(name: str) -> JobDefinition:
    entry = JobConfig(name=name, extension="testing", job="noop", schedule=EVERY_SECOND, enabled=True)
    return JobDefinition(name, "testing", Noop(), entry, CronExpression.parse(EVERY_SECOND))


def finished(ledger: Ledger, job: str, status: FinishStatus, lease_seconds: float = 60) -> str:
    run_id = str(uuid.uuid4())
    claim_manual(ledger, job, lease_seconds=lease_seconds, run_id=run_id)
    ledger.finish([RunOutcome(run_id, status, None)])
    return run_id


def health(ledger: Ledger, catalog: Catalog, now: datetime) -> dict[str, JobHealth]:
    """What `jobs status` computes from the ledger (sp_scheduler/cli/status_cmd.py)."""
    names = catalog.names()
    overrides = {name: o.enabled for name, o in ledger.overrides().items()}
    successes = ledger.last_with_status(["succeeded"], names, triggers=LATENESS_TRIGGERS)
    failures = ledger.last_with_status(["failed", "timeout", "lost"], names, triggers=LATENESS_TRIGGERS)
    report = job_health(
        catalog,
        overrides,
        {name: r.finished_at or r.created_at for name, r in successes.items()},
        {name: r.finished_at or r.created_at for name, r in failures.items()},
        now,
    )
    return {h.name: h for h in report}


def test_late_jobs_judged_from_recorded_runs() -> None:
    ledger = InMemoryLedger()
    names = ("fresh", "timed_out", "lost", "silenced", "new")
    catalog = Catalog(True, tuple(definition(n) for n in names))
    finished(ledger, "fresh", "succeeded")
    finished(ledger, "silenced", "failed")
    finished(ledger, "timed_out", "timeout")  # failed, never succeeded: late at once
    claim_manual(ledger, "lost", worker="gone:1", lease_seconds=0.001)
    wait_until(ledger.reap_lost, timeout=5)  # a lost run is a failure too
    ledger.set_enabled("silenced", enabled=False, actor="ops")  # a disabled job is never late
    now = health(ledger, catalog, datetime.now(UTC))
    assert {name for name, h in now.items() if h.late} == {"timed_out", "lost"}
    assert now["fresh"].last_success is not None and now["new"].last_success is None
    assert not now["silenced"].enabled and now["silenced"].last_failure is not None
    later = health(ledger, catalog, datetime.now(UTC) + timedelta(minutes=5))  # past the one-minute grace
    assert {name for name, h in later.items() if h.late} == {"fresh", "timed_out", "lost"}


def backfilled(ledger: Ledger, job: str, status: FinishStatus, days_ago: int) -> None:
    """A backfill run of an old slot, run now and ended with `status`."""
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    (queued,) = ledger.enqueue_backfill(job_name=job, slots=[slot], params={})
    ledger.claim(
        run_id=queued.id,
        job_name=job,
        trigger="backfill",
        scheduled_for=slot,
        params={},
        worker="host-a:1",
        lease_seconds=60,
        overlap="allow",
        enabled=True,
    )
    ledger.finish([RunOutcome(queued.id, status, None)])


def test_backfill_runs_neither_hide_nor_cause_lateness() -> None:
    ledger = InMemoryLedger()
    names = ("failing", "only_backfilled", "backfill_failed")
    catalog = Catalog(True, tuple(definition(n) for n in names))
    finished(ledger, "failing", "failed")
    backfilled(ledger, "failing", "succeeded", days_ago=3)  # newer than the failure, but for an old slot
    backfilled(ledger, "only_backfilled", "succeeded", days_ago=3)
    backfilled(ledger, "backfill_failed", "failed", days_ago=3)
    now = health(ledger, catalog, datetime.now(UTC))
    assert {name for name, h in now.items() if h.late} == {"failing"}
    assert all(h.last_success is None for h in now.values())
    assert now["backfill_failed"].last_failure is None and now["failing"].last_failure is not None
