"""The runner on the in-memory ledger: what a worker does with one delivery, without any server.

The same paths run against Postgres in tests/integration (test_runner.py, test_worker.py); the
ledger's own rules are proved equal on both by tests/contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sp_scheduler.ledger.memory import InMemoryLedger
from sp_scheduler.runner import RunRequest, WorkerRuntime, execute_run
from sp_scheduler.settings import Settings
from sp_scheduler.store import RunRecord, slot_run_id
from tests.support.manual_runs import claim_manual
from tests.support.processes import write_config

NOW = datetime.now(UTC).replace(microsecond=0)


def entry(name: str, job: str | None = None, **options: Any) -> dict[str, Any]:
    """A config entry of the `testing` extension; a slot from a minute ago is within its grace."""
    return {"name": name, "extension": "testing", "job": job or name, "schedule": "", "enabled": True, **options}


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def make_runtime(ledger: InMemoryLedger, tmp_path: Path) -> Iterator[Any]:
    """Runtimes on the in-memory ledger for the given config entries; closed after the test."""
    made: list[WorkerRuntime] = []

    def make(entries: Sequence[Mapping[str, Any]], *, enabled: bool = True) -> WorkerRuntime:
        config = write_config(tmp_path / f"config{len(made)}.yaml", entries, enabled=enabled)
        runtime = WorkerRuntime(Settings(config_path=config, output_dir=tmp_path / "out"), ledger=ledger)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()


def run(runtime: WorkerRuntime, request: RunRequest) -> RunRecord:
    """Execute a delivery and wait for its recorded row."""
    recorded = execute_run(runtime, request)
    assert recorded is not None, "the delivery was taken for a duplicate"
    return recorded.result(timeout=5)


def manual(job: str, **params: Any) -> RunRequest:
    return RunRequest(job, "manual", run_id=str(uuid.uuid4()), params=params)


def test_a_succeeding_job_is_recorded_with_its_result_and_log(make_runtime: Any, ledger: InMemoryLedger) -> None:
    record = run(make_runtime([entry("noop")]), manual("noop"))
    assert (record.status, record.message, record.items_processed) == ("succeeded", "nothing to do", 1)
    assert record.finished_at is not None and record.lease_expires_at is None
    assert ledger.get_run(record.id) == record
    messages = [line.message for line in ledger.log_rows if line.run_id == record.id]
    assert messages == ["job started", "job succeeded"]


def test_a_failing_and_a_raising_job_are_recorded_failed(make_runtime: Any) -> None:
    runtime = make_runtime([entry("fail_softly"), entry("explode")])
    soft = run(runtime, manual("fail_softly"))
    assert (soft.status, soft.message, soft.error) == ("failed", "Database not available", None)
    raised = run(runtime, manual("explode"))
    assert (raised.status, raised.message) == ("failed", "RuntimeError: kaboom: the job blew up")
    assert raised.error == "RuntimeError('kaboom: the job blew up')"
    assert raised.traceback is not None and "kaboom" in raised.traceback


def test_a_job_past_its_timeout_is_cancelled_and_recorded(make_runtime: Any) -> None:
    record = run(make_runtime([entry("sleepy", timeout=0.05)]), manual("sleepy", seconds=30))
    assert (record.status, record.message) == ("timeout", "exceeded its timeout of 0.05 s and was cancelled")


def test_a_slot_delivered_twice_runs_once(make_runtime: Any, ledger: InMemoryLedger) -> None:
    runtime = make_runtime([entry("noop")])
    slot = NOW - timedelta(seconds=30)
    first = run(runtime, RunRequest("noop", "schedule", slot))
    assert (first.id, first.status) == (slot_run_id("noop", slot), "succeeded")
    assert execute_run(runtime, RunRequest("noop", "schedule", slot)) is None
    assert [r.id for r in ledger.history(job="noop")] == [first.id]


def test_a_disabled_job_and_an_override_skip_the_slot(make_runtime: Any, ledger: InMemoryLedger) -> None:
    runtime = make_runtime([entry("noop", enabled=False), entry("fail_softly")])
    slot = NOW - timedelta(seconds=30)
    disabled = run(runtime, RunRequest("noop", "schedule", slot))
    assert (disabled.status, disabled.message) == ("skipped", "job is disabled")
    ledger.set_enabled("fail_softly", enabled=False, actor="ops", reason="maintenance")
    overridden = run(runtime, RunRequest("fail_softly", "schedule", slot))
    assert (overridden.status, overridden.message) == ("skipped", "job is disabled")
    assert run(runtime, manual("fail_softly")).status == "failed"  # a manual run was checked by the CLI


def test_overlap_skip_leaves_a_slot_skipped_while_another_worker_runs_the_job(
    make_runtime: Any, ledger: InMemoryLedger
) -> None:
    other = claim_manual(ledger, "noop", worker="elsewhere:1")
    assert other.record is not None
    runtime = make_runtime([entry("noop"), entry("noop_allow", job="noop", overlap="allow")])
    skipped = run(runtime, RunRequest("noop", "schedule", NOW - timedelta(seconds=30)))
    assert (skipped.status, skipped.message) == ("skipped", f"overlap: run {other.record.id} still running")
    assert run(runtime, RunRequest("noop_allow", "schedule", NOW - timedelta(seconds=30))).status == "succeeded"


def test_bad_params_are_the_runs_failure_not_a_crash(make_runtime: Any) -> None:
    runtime = make_runtime([entry("noop")])  # cleanup_empty_contexts is registered (core), not configured
    record = run(runtime, RunRequest("cleanup_empty_contexts", "manual", None, str(uuid.uuid4()), {"dryrun": "1"}))
    assert (record.status, record.started_at is not None) == ("failed", True)
    assert record.message is not None and record.message.startswith("not run: ")
    assert "unknown parameter 'dryrun' (did you mean 'dry_run'?)" in record.message
    assert run(runtime, manual("noop")).status == "succeeded"  # the worker goes on


def test_a_stale_slot_is_recorded_missed_and_an_unknown_job_failed(make_runtime: Any, ledger: InMemoryLedger) -> None:
    runtime = make_runtime([entry("noop", misfire_grace=60)])
    stale = NOW - timedelta(hours=2)
    assert execute_run(runtime, RunRequest("noop", "schedule", stale)) is None
    row = ledger.get_run(slot_run_id("noop", stale))
    assert row.status == "missed" and row.message is not None and "past the job's misfire_grace" in row.message
    request = manual("ghost")
    assert execute_run(runtime, request) is None
    ghost = ledger.get_run(request.resolved_run_id())
    assert ghost.status == "failed" and ghost.message is not None
    assert ghost.message.startswith("worker cannot run it: ")


def backfill(ledger: InMemoryLedger, job: str, slot: datetime) -> RunRequest:
    """A queued backfill run of `slot` and its message, as `jobs backfill` writes them."""
    (queued,) = ledger.enqueue_backfill(job_name=job, slots=[slot], params={})
    return RunRequest(job, "backfill", slot, queued.id)


def test_a_backfill_slot_older_than_the_misfire_grace_runs_in_its_queued_row(
    make_runtime: Any, ledger: InMemoryLedger
) -> None:
    runtime = make_runtime([entry("noop", misfire_grace=60)])
    old = NOW - timedelta(days=3)
    record = run(runtime, backfill(ledger, "noop", old))
    assert (record.id, record.trigger, record.status, record.scheduled_for) == (
        slot_run_id("noop", old),
        "backfill",
        "succeeded",
        old,
    )
    assert execute_run(runtime, RunRequest("noop", "backfill", old, record.id)) is None  # delivered twice: once
    assert execute_run(runtime, RunRequest("noop", "schedule", old)) is None  # beat's slot: the same slot
    assert [r.id for r in ledger.history(job="noop")] == [record.id]


def test_a_backfill_slot_in_the_future_is_refused_as_failed(make_runtime: Any, ledger: InMemoryLedger) -> None:
    runtime = make_runtime([entry("noop")])
    ahead = NOW + timedelta(hours=1)
    record = run(runtime, backfill(ledger, "noop", ahead))
    assert (record.trigger, record.status) == ("backfill", "failed")
    assert record.message is not None and "ahead of the worker's clock" in record.message
