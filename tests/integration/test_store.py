"""The Postgres store against a real server: schema, slot claims, leases, history, overrides and logs."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from sp_scheduler.errors import DatabaseUnavailable, SchemaOutOfDate, UnknownRun, UsageError
from sp_scheduler.jobs import Trigger
from sp_scheduler.runner import WorkerRuntime
from sp_scheduler.settings import Settings
from sp_scheduler.store import (
    CODE_SCHEMA_VERSION,
    FAILED_STATUSES,
    Claim,
    LogRecordRow,
    Overlap,
    RunOutcome,
    RunRecord,
    connect,
    describe_url,
    enqueue_run,
    finish_run,
    finish_runs,
    get_override,
    get_overrides,
    get_run,
    heartbeat,
    history,
    last_runs,
    last_with_status,
    migrate,
    open_pool,
    query_logs,
    reap_lost,
    record_slot,
    record_slots,
    require_current_schema,
    schema_version,
    set_enabled,
    slot_run_id,
    write_logs,
)
from sp_scheduler.store.connection import TCP_DEFAULTS
from sp_scheduler.store.latest import rebuild_latest
from tests.support import free_port, servers, wait_until
from tests.support.ledger import LEDGER_READS, SLOT, claim, fill_ledger, ledger_reads

pytestmark = pytest.mark.integration

_T = TypeVar("_T")


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(database_url) as connection:
        yield connection


def in_threads(count: int, work: Callable[[int], _T]) -> list[_T]:
    """Run `work(i)` in `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def start(i: int) -> _T:
        barrier.wait(timeout=10)
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(start, range(count)))


def finish(conn: psycopg.Connection[Any], run_id: str, **overrides: Any) -> RunRecord:
    outcome: dict[str, Any] = {
        "status": "succeeded",
        "message": "Deleted 42",
        "items_processed": 42,
        "items_failed": 1,
        "duration_ms": 1500,
    }
    outcome.update(overrides)
    return finish_run(conn, run_id, **outcome)


# -- connections and schema -----------------------------------------------------------------------------


def test_connect_to_a_closed_port_names_the_server_and_hides_the_password() -> None:
    port = free_port()
    with pytest.raises(DatabaseUnavailable) as raised:
        connect(f"postgresql://sp:secret@127.0.0.1:{port}/ledger")
    message = str(raised.value)
    assert message.startswith(f"cannot reach Postgres at 127.0.0.1:{port}/ledger: ")
    assert "secret" not in message
    assert "\n" not in message


def test_a_malformed_url_is_a_usage_error_without_the_password() -> None:
    with pytest.raises(UsageError, match="invalid database URL") as raised:
        connect("postgresql://sp:secret@[::1/ledger")
    assert "secret" not in str(raised.value)


def test_open_pool_on_a_closed_port_is_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable, match=r"cannot reach Postgres at 127\.0\.0\.1"):
        open_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")


def test_describe_url_covers_urls_sockets_and_conninfo_strings() -> None:
    assert describe_url("postgresql://u:pw@db.example:6543/app") == "db.example:6543/app"
    assert describe_url("postgresql://postgres:@/postgres?host=/tmp/pg") == "/tmp/pg:5432/postgres"
    assert describe_url("host=localhost dbname=app password=pw") == "localhost:5432/app"


def test_every_connection_asks_for_keepalives_and_a_tcp_user_timeout(database_url: str, tmp_path: Path) -> None:
    # What lets a process notice a server that vanished without closing its connections (failover,
    # partition) within a minute. Only the settings can be checked here: a local server's kernel
    # answers keepalive probes however silent the server process is.
    expected = {key: str(value) for key, value in TCP_DEFAULTS.items()}

    def tcp_settings(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> dict[str, str]:
        parameters = conn.info.get_parameters()
        return {key: parameters.get(key, "") for key in expected}

    with connect(database_url) as conn:
        assert tcp_settings(conn) == expected
    pool = open_pool(database_url, min_size=1, max_size=1)
    try:
        with pool.connection() as conn:
            assert tcp_settings(conn) == expected
    finally:
        pool.close()
    runtime = WorkerRuntime(Settings(database_url=database_url, config_path=tmp_path / "unused.yaml"))
    try:
        job_pool = runtime.job_pool()  # the jobs' own pool (ctx.db_pool)

        async def job_pool_settings() -> dict[str, str]:
            async with job_pool.connection() as conn:
                return tcp_settings(conn)

        assert runtime.loop().run_until_complete(job_pool_settings()) == expected
    finally:
        runtime.close()
    with connect(make_conninfo(database_url, keepalives_idle=5)) as conn:  # the URL's own choice wins
        assert tcp_settings(conn)["keepalives_idle"] == "5"


def test_pool_connections_commit_each_store_call(database_url: str) -> None:
    pool = open_pool(database_url, min_size=1, max_size=2)
    try:
        with pool.connection() as pooled:
            assert pooled.autocommit is False
            set_enabled(pooled, "cleanup", enabled=False, actor="ops", reason="maintenance")
            # Visible to another session at once: the store call committed its own transaction.
            with connect(database_url) as other:
                override = get_override(other, "cleanup")
            assert override is not None and override.enabled is False
    finally:
        pool.close()


def test_migrate_is_idempotent(empty_database_url: str) -> None:
    with connect(empty_database_url) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn) == list(range(1, CODE_SCHEMA_VERSION + 1))
        assert migrate(conn) == []
        assert schema_version(conn) == CODE_SCHEMA_VERSION
        require_current_schema(conn)


def test_concurrent_migrations_apply_each_version_once(empty_database_url: str) -> None:
    def run(_: int) -> list[int]:
        with connect(empty_database_url) as conn:
            return migrate(conn)

    results = in_threads(2, run)
    assert sorted(results, key=len) == [[], list(range(1, CODE_SCHEMA_VERSION + 1))]
    with connect(empty_database_url) as conn:
        rows = conn.execute("SELECT version, count(*) FROM sp_schema_migrations GROUP BY version").fetchall()
    assert sorted(rows) == [(v, 1) for v in range(1, CODE_SCHEMA_VERSION + 1)]


def test_require_current_schema_refuses_an_unmigrated_database(empty_database_url: str) -> None:
    with connect(empty_database_url) as conn, pytest.raises(SchemaOutOfDate) as raised:
        require_current_schema(conn)
    assert str(raised.value) == (
        f"database schema is at version 0 but this code needs {CODE_SCHEMA_VERSION}: run `sp-scheduler db migrate`"
    )


def test_a_newer_schema_is_accepted(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO sp_schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    assert schema_version(conn) == 9999
    require_current_schema(conn)


# -- slot ids and claims --------------------------------------------------------------------------------


def test_slot_run_id_is_deterministic_per_job_and_instant() -> None:
    berlin = timezone(timedelta(hours=1))
    same_instant = datetime(2025, 1, 1, 4, 0, tzinfo=berlin)
    assert slot_run_id("cleanup", SLOT) == slot_run_id("cleanup", same_instant)
    assert slot_run_id("cleanup", SLOT) != slot_run_id("cleanup", SLOT + timedelta(seconds=1))
    assert slot_run_id("cleanup", SLOT) != slot_run_id("report", SLOT)
    assert uuid.UUID(slot_run_id("cleanup", SLOT)).version == 5
    with pytest.raises(ValueError, match="timezone-aware"):
        slot_run_id("cleanup", datetime(2025, 1, 1))


def test_a_slot_claimed_twice_runs_once(conn: psycopg.Connection[Any]) -> None:
    first = claim(conn)
    second = claim(conn, worker="host-b:2")
    assert first.outcome == "run"
    assert first.record is not None
    assert first.record.status == "running"
    assert first.record.worker == "host-a:1"
    assert first.record.started_at is not None and first.record.lease_expires_at is not None
    assert first.record.lease_expires_at > first.record.started_at
    assert first.record.params == {"days": 30}
    assert second.outcome == "duplicate"
    assert second.record == first.record
    assert second.reason == f"already claimed as run {first.record.id} (running)"


def test_a_retried_claim_finds_its_own_committed_claim_and_runs(conn: psycopg.Connection[Any]) -> None:
    # The first attempt committed, then its connection broke before the reply: the retry must run it.
    first = claim(conn)
    assert first.record is not None
    retried = claim(conn, retrying=True)
    assert retried.outcome == "run"
    assert retried.reason is None
    assert retried.record == first.record
    # Only the claiming process's own running row counts, and only when retrying.
    assert claim(conn, retrying=True, worker="host-b:2").outcome == "duplicate"
    assert claim(conn).outcome == "duplicate"
    finish(conn, first.record.id)
    assert claim(conn, retrying=True).outcome == "duplicate"


def test_a_retried_claim_that_had_recorded_a_skip_stays_a_duplicate(conn: psycopg.Connection[Any]) -> None:
    skipped = claim(conn, enabled=False)
    assert skipped.outcome == "skipped"
    assert claim(conn, enabled=False, retrying=True).outcome == "duplicate"


@pytest.mark.parametrize("overlap", ["skip", "allow"])  # only 'skip' takes the job lock (sp_claim_run)
@pytest.mark.parametrize("trigger", ["schedule", "manual"])
def test_twenty_concurrent_claims_of_one_run_yield_one_run(
    database_url: str, overlap: Overlap, trigger: Trigger
) -> None:
    run_id = slot_run_id("cleanup", SLOT) if trigger == "schedule" else str(uuid.uuid4())

    def run(i: int) -> Claim:
        with connect(database_url) as conn:
            slot = SLOT if trigger == "schedule" else None
            return claim(conn, slot=slot, trigger=trigger, run_id=run_id, overlap=overlap, worker=f"host:{i}")

    claims = in_threads(20, run)
    assert sorted(c.outcome for c in claims) == ["duplicate"] * 19 + ["run"]
    assert {c.record.id for c in claims if c.record is not None} == {run_id}
    with connect(database_url) as conn:
        assert len(history(conn, job="cleanup")) == 1


def test_the_ledger_table_columns_are_in_run_record_order(conn: psycopg.Connection[Any]) -> None:
    # The claim and outcome paths read `(c.run).*` positionally (RunRecord.from_values).
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'sp_job_runs' ORDER BY ordinal_position"
    ).fetchall()
    assert [name for (name,) in rows][: len(fields(RunRecord))] == [f.name for f in fields(RunRecord)]


def test_a_claim_records_the_outcomes_it_carries_in_the_same_statement(conn: psycopg.Connection[Any]) -> None:
    earlier = [claim(conn, slot=SLOT + timedelta(minutes=i), overlap="allow").record for i in range(2)]
    assert earlier[0] is not None and earlier[1] is not None
    done = finish(conn, earlier[1].id)  # already finished: returned as it stands
    line = LogRecordRow(datetime.now(UTC), "INFO", "sp.job", "job succeeded", "cleanup", earlier[0].id, {"n": 1})
    outcomes = [
        RunOutcome(earlier[0].id, "succeeded", "ok", items_processed=7, elapsed_seconds=0.01),
        RunOutcome(earlier[1].id, "failed", "late"),
        RunOutcome(str(uuid.uuid4()), "failed", "nobody"),  # unknown: left out
    ]
    next_slot = SLOT + timedelta(minutes=5)
    result = claim(conn, slot=next_slot, finishing=outcomes, logs=[line])
    assert result.outcome == "run" and result.record is not None
    assert result.record.scheduled_for == next_slot and result.record.status == "running"
    assert [(r.id, r.status, r.message) for r in result.finished] == [
        (earlier[0].id, "succeeded", "ok"),
        (earlier[1].id, "succeeded", "Deleted 42"),
    ]
    assert result.finished[1] == done
    assert get_run(conn, earlier[0].id).items_processed == 7
    assert [row.message for _, row in query_logs(conn, run_id=earlier[0].id)] == ["job succeeded"]


def test_log_lines_carried_without_outcomes_are_recorded_with_the_claim(conn: psycopg.Connection[Any]) -> None:
    earlier = claim(conn, overlap="allow").record
    assert earlier is not None
    line = LogRecordRow(datetime.now(UTC), "INFO", "sp.job", "still going", "cleanup", earlier.id, {})
    result = claim(conn, slot=SLOT + timedelta(minutes=1), overlap="allow", logs=[line])
    assert result.outcome == "run" and result.finished == []
    assert [row.message for _, row in query_logs(conn, run_id=earlier.id)] == ["still going"]


def test_outcomes_carried_by_a_duplicate_claim_are_still_recorded(conn: psycopg.Connection[Any]) -> None:
    first = claim(conn, overlap="allow").record
    earlier = claim(conn, slot=SLOT + timedelta(minutes=1), overlap="allow").record
    assert first is not None and earlier is not None
    result = claim(conn, overlap="allow", finishing=[RunOutcome(earlier.id, "timeout", "too slow")])
    assert result.outcome == "duplicate" and result.record == first
    assert [(r.id, r.status) for r in result.finished] == [(earlier.id, "timeout")]


def test_overlap_skip_records_the_slot_as_skipped(conn: psycopg.Connection[Any]) -> None:
    first = claim(conn)
    assert first.record is not None
    skipped = claim(conn, slot=SLOT + timedelta(minutes=1), worker="host-b:2")
    assert skipped.outcome == "skipped"
    assert skipped.reason == f"overlap: run {first.record.id} still running"
    assert skipped.record is not None
    assert skipped.record.status == "skipped"
    assert skipped.record.message == skipped.reason
    assert skipped.record.finished_at is not None and skipped.record.started_at is None
    assert skipped.record.lease_expires_at is None


def test_overlap_allow_runs_alongside(conn: psycopg.Connection[Any]) -> None:
    claim(conn)
    assert claim(conn, slot=SLOT + timedelta(minutes=1), overlap="allow", worker="host-b:2").outcome == "run"


def test_overlap_counts_a_run_whose_lease_expired_until_it_is_reaped(conn: psycopg.Connection[Any]) -> None:
    # An expired lease may only mean its keeper could not reach Postgres (sp_claim_run): the run
    # counts as running until a reaper marks it lost, and the reason says its lease expired.
    first = claim(conn, lease_seconds=0.2).record
    assert first is not None
    wait_until(
        lambda: conn.execute("SELECT lease_expires_at < clock_timestamp() FROM sp_job_runs").fetchone() == (True,),
        timeout=5,
        message="the first run's lease to expire",
    )
    held = claim(conn, slot=SLOT + timedelta(minutes=1), worker="host-b:2")
    assert held.outcome == "skipped"
    assert held.reason is not None and held.reason.startswith(f"overlap: run {first.id} still marked running")
    assert "lease expired at" in held.reason
    assert [r.id for r in reap_lost(conn)] == [first.id]
    assert claim(conn, slot=SLOT + timedelta(minutes=2), worker="host-b:2").outcome == "run"


def test_overlap_ignores_the_claiming_processs_own_earlier_run(conn: psycopg.Connection[Any]) -> None:
    # A process runs one run at a time: its own row still marked running is a run whose outcome is
    # on its way (keeper.py), so its next slot runs. Another process's running row still counts.
    earlier = claim(conn, slot=SLOT, worker="host-a:1")
    assert earlier.outcome == "run"
    assert claim(conn, slot=SLOT + timedelta(minutes=1), worker="host-a:1").outcome == "run"
    other = claim(conn, slot=SLOT + timedelta(minutes=2), worker="host-b:7")
    assert other.outcome == "skipped"
    assert other.reason == f"overlap: run {earlier.record.id if earlier.record else ''} still running"


def test_a_disabled_job_records_the_slot_as_skipped(conn: psycopg.Connection[Any]) -> None:
    result = claim(conn, enabled=False)
    assert result.outcome == "skipped"
    assert result.reason == "job is disabled"
    assert result.record is not None
    assert (result.record.status, result.record.message) == ("skipped", "job is disabled")
    assert result.record.finished_at is not None
    # The slot is taken: a redelivery does not run it either.
    assert claim(conn).outcome == "duplicate"


def test_manual_run_is_enqueued_then_claimed_once(conn: psycopg.Connection[Any]) -> None:
    run_id = str(uuid.uuid4())
    queued = enqueue_run(
        conn, run_id=run_id, job_name="report", trigger="manual", scheduled_for=None, params={"full": True}
    )
    assert (queued.status, queued.trigger, queued.scheduled_for) == ("queued", "manual", None)
    assert queued.enqueued_at is not None and queued.started_at is None

    claimed = claim(conn, "report", None, trigger="manual", run_id=run_id)
    assert claimed.outcome == "run"
    assert claimed.record is not None
    assert claimed.record.id == run_id
    assert claimed.record.enqueued_at == queued.enqueued_at
    assert claimed.record.params == {"full": True}
    assert claim(conn, "report", None, trigger="manual", run_id=run_id).outcome == "duplicate"
    assert len(history(conn)) == 1


def test_startup_run_without_a_queued_row_is_inserted(conn: psycopg.Connection[Any]) -> None:
    result = claim(conn, "warmup", None, trigger="startup")
    assert result.outcome == "run"
    assert result.record is not None and result.record.trigger == "startup"


def test_manual_runs_skip_while_a_scheduled_run_of_the_job_is_running(conn: psycopg.Connection[Any]) -> None:
    running = claim(conn)
    assert running.record is not None
    manual = claim(conn, slot=None, trigger="manual", worker="host-b:2")
    assert manual.outcome == "skipped"
    assert manual.reason == f"overlap: run {running.record.id} still running"


# -- finishing, heartbeats and the reaper ---------------------------------------------------------------


def test_finish_run_records_the_outcome(conn: psycopg.Connection[Any]) -> None:
    started = claim(conn).record
    assert started is not None
    done = finish(conn, started.id, status="failed", message="boom", error="ValueError: x", traceback="Traceback...")
    assert done.status == "failed"
    assert (done.message, done.items_processed, done.items_failed, done.duration_ms) == ("boom", 42, 1, 1500)
    assert (done.error, done.traceback) == ("ValueError: x", "Traceback...")
    assert done.finished_at is not None and done.started_at is not None
    assert done.finished_at >= done.started_at
    assert done.lease_expires_at is None
    assert get_run(conn, started.id) == done


def test_finishing_twice_keeps_the_first_outcome(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    started = claim(conn).record
    assert started is not None
    first = finish(conn, started.id)
    assert finish(conn, started.id, status="failed", message="late") == first
    assert "run already finished; outcome not recorded" in caplog.messages


def test_writing_the_same_outcome_again_is_no_warning(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    # A write retried after its connection broke between commit and reply finds its own outcome there.
    caplog.set_level(logging.INFO, logger="sp_scheduler.store.claims")
    started = claim(conn).record
    assert started is not None
    first = finish(conn, started.id)
    assert finish(conn, started.id) == first
    assert "outcome already recorded" in caplog.messages
    assert "run already finished; outcome not recorded" not in caplog.messages


def test_finish_of_an_unknown_run_raises(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(UnknownRun, match="unknown run"):
        finish(conn, str(uuid.uuid4()))
    with pytest.raises(UnknownRun, match="not a run id"):
        finish(conn, "not-a-uuid")


def test_finish_runs_records_a_batch_in_one_statement(conn: psycopg.Connection[Any]) -> None:
    runs = [claim(conn, slot=SLOT + timedelta(minutes=i), overlap="allow").record for i in range(3)]
    assert all(run is not None for run in runs)
    a, b, c = (run.id for run in runs if run is not None)
    done = finish(conn, c)  # already finished: returned as it stands, not overwritten
    lines = [LogRecordRow(datetime.now(UTC), "INFO", "sp.job", f"line {i}", "cleanup", a, {"i": i}) for i in range(2)]
    outcomes = [
        RunOutcome(a, "succeeded", "ok", items_processed=5, duration_ms=10, elapsed_seconds=0.25),
        RunOutcome(b, "timeout", "too slow", duration_ms=20),
        RunOutcome(c, "failed", "late"),
        RunOutcome(str(uuid.uuid4()), "failed", "nobody"),  # unknown: left out
    ]
    records = finish_runs(conn, outcomes, logs=lines)
    assert [(r.id, r.status, r.message) for r in records] == [
        (a, "succeeded", "ok"),
        (b, "timeout", "too slow"),
        (c, "succeeded", "Deleted 42"),
    ]
    assert records[2] == done
    first = records[0]
    assert first.started_at is not None and first.finished_at is not None
    # Dated by the worker's measure from the claim, but never later than the write itself.
    assert first.started_at <= first.finished_at <= first.started_at + timedelta(seconds=0.25)
    assert [row.message for _, row in query_logs(conn, run_id=a)] == ["line 1", "line 0"]


def test_finish_runs_dates_a_late_write_by_the_run_not_the_write(conn: psycopg.Connection[Any]) -> None:
    started = claim(conn).record
    assert started is not None and started.started_at is not None
    conn.execute("SELECT pg_sleep(0.3)")
    (record,) = finish_runs(conn, [RunOutcome(started.id, "succeeded", None, elapsed_seconds=0.05)])
    assert record.finished_at == started.started_at + timedelta(seconds=0.05)


def test_get_run_of_an_unknown_id_raises(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(UnknownRun):
        get_run(conn, str(uuid.uuid4()))
    with pytest.raises(UnknownRun):
        get_run(conn, "42")


def test_heartbeat_extends_running_leases_only(conn: psycopg.Connection[Any]) -> None:
    running = claim(conn, lease_seconds=0.5).record
    done = claim(conn, "other").record
    assert running is not None and done is not None and running.lease_expires_at is not None
    finish(conn, done.id)
    assert heartbeat(conn, [running.id, done.id, str(uuid.uuid4())], 60) == 1
    assert heartbeat(conn, [], 60) == 0
    extended = get_run(conn, running.id)
    assert extended.lease_expires_at is not None
    assert extended.lease_expires_at > running.lease_expires_at + timedelta(seconds=30)


def test_a_run_whose_lease_expires_is_reaped_as_lost(conn: psycopg.Connection[Any]) -> None:
    started = claim(conn, lease_seconds=0.2).record
    healthy = claim(conn, "other", lease_seconds=60).record
    assert started is not None and healthy is not None

    lost = wait_until(lambda: reap_lost(conn), timeout=5, message="the expired run to be reaped")
    assert [r.id for r in lost] == [started.id]
    assert lost[0].status == "lost"
    assert lost[0].finished_at is not None
    assert lost[0].message is not None
    assert lost[0].message.startswith("worker stopped heartbeating; lease expired at ")
    assert lost[0].message.endswith("Z")
    assert reap_lost(conn) == []
    assert get_run(conn, healthy.id).status == "running"
    assert heartbeat(conn, [started.id], 60) == 0


def test_concurrent_reapers_report_each_lost_run_once(database_url: str) -> None:
    with connect(database_url) as conn:
        ids = {claim(conn, f"job{i}", lease_seconds=0.1).record.id for i in range(10)}  # type: ignore[union-attr]
        wait_until(
            lambda: (
                conn.execute("SELECT bool_and(lease_expires_at < clock_timestamp()) FROM sp_job_runs").fetchone()
                == (True,)
            ),
            timeout=5,
            message="every lease to expire",
        )

    def reap(_: int) -> list[str]:
        with connect(database_url) as conn:
            return [r.id for r in reap_lost(conn)]

    reaped = [run_id for batch in in_threads(4, reap) for run_id in batch]
    assert sorted(reaped) == sorted(ids)


def test_a_lost_run_that_finishes_records_its_true_outcome(conn: psycopg.Connection[Any]) -> None:
    started = claim(conn, lease_seconds=0.2).record
    assert started is not None
    wait_until(lambda: reap_lost(conn), timeout=5, message="the run to be reaped")
    done = finish(conn, started.id)
    assert done.status == "succeeded"
    assert done.message is not None  # the true outcome, and what had happened before it (sp_finish_runs)
    assert done.message.startswith("Deleted 42 [succeeded after it had been marked lost: worker stopped heartbeating")


def test_record_slot_keeps_the_first_row_for_a_slot(conn: psycopg.Connection[Any]) -> None:
    assert record_slot(conn, job_name="cleanup", scheduled_for=SLOT, status="missed", message="beat was down")
    assert not record_slot(conn, job_name="cleanup", scheduled_for=SLOT, status="skipped", message="again")
    missed = get_run(conn, slot_run_id("cleanup", SLOT))
    assert (missed.status, missed.message, missed.trigger) == ("missed", "beat was down", "schedule")
    assert missed.finished_at is not None
    assert claim(conn).outcome == "duplicate"


def test_a_claim_racing_a_recorded_slot_becomes_a_duplicate(database_url: str) -> None:
    """Beat's record_slot does not take the job lock: the claim's insert must still yield to it."""

    def worker_claim() -> Claim:
        with connect(database_url) as worker:
            return claim(worker)

    with (
        connect(database_url) as beat,
        connect(database_url, autocommit=True) as observer,
        ThreadPoolExecutor(1) as pool,
    ):
        with beat.transaction():
            # Inside an outer transaction, the slot row stays uncommitted until the block ends.
            record_slot(beat, job_name="cleanup", scheduled_for=SLOT, status="missed", message="beat was down")
            future = pool.submit(worker_claim)
            wait_until(
                lambda: (
                    observer.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).fetchone()
                    == (1,)
                ),
                timeout=10,
                message="the claim to wait on the uncommitted slot row",
            )
        result = future.result(timeout=10)
    assert result.outcome == "duplicate"
    assert result.record is not None and result.record.status == "missed"


def test_an_override_wins_over_the_yaml_when_asked(conn: psycopg.Connection[Any]) -> None:
    set_enabled(conn, "cleanup", enabled=False, actor="ops")
    ignored = claim(conn, "cleanup", None, trigger="manual", overlap="allow")
    assert ignored.outcome == "run"  # manual runs pass use_override=False: the caller decided
    disabled = claim(conn, overlap="allow", use_override=True)
    assert (disabled.outcome, disabled.reason) == ("skipped", "job is disabled")
    set_enabled(conn, "cleanup", enabled=True, actor="ops")
    enabled = claim(conn, slot=SLOT + timedelta(minutes=1), overlap="allow", enabled=False, use_override=True)
    assert enabled.outcome == "run"


def test_record_slots_inserts_a_batch_once(conn: psycopg.Connection[Any]) -> None:
    slots = [SLOT + timedelta(minutes=i) for i in range(5)]
    assert record_slots(conn, job_name="cleanup", slots=slots, status="missed", message="beat was down") == 5
    assert (
        record_slots(
            conn, job_name="cleanup", slots=[*slots[3:], SLOT + timedelta(hours=1)], status="missed", message="again"
        )
        == 1
    )
    assert record_slots(conn, job_name="cleanup", slots=[], status="missed", message="none") == 0
    assert [r.status for r in history(conn)] == ["missed"] * 6
    assert claim(conn, slot=slots[0]).outcome == "duplicate"


def test_finish_run_writes_the_runs_last_log_lines(conn: psycopg.Connection[Any]) -> None:
    started = claim(conn).record
    assert started is not None
    line = LogRecordRow(datetime.now(UTC), "INFO", "sp.job", "done", "cleanup", started.id, {"n": 42})
    assert finish(conn, started.id, logs=[line]).status == "succeeded"
    assert [row for _, row in query_logs(conn, run_id=started.id)] == [line]


def test_a_queued_run_can_be_closed_as_failed(conn: psycopg.Connection[Any]) -> None:
    run_id = str(uuid.uuid4())
    enqueue_run(conn, run_id=run_id, job_name="report", trigger="manual", scheduled_for=None, params={})
    closed = finish(conn, run_id, status="failed", message="could not publish")
    assert (closed.status, closed.message) == ("failed", "could not publish")


def test_the_store_works_on_an_autocommit_pool(database_url: str) -> None:
    pool = open_pool(database_url, autocommit=True, check_on_checkout=False, synchronous_commit=False)
    try:
        with pool.connection() as pooled:
            assert pooled.autocommit is True
            assert pooled.execute("SHOW synchronous_commit").fetchone() == ("off",)
            started = claim(pooled).record
            assert started is not None
            assert claim(pooled).outcome == "duplicate"
            assert heartbeat(pooled, [started.id], 60) == 1
            finish(pooled, started.id)
        with connect(database_url) as other:
            assert get_run(other, started.id).status == "succeeded"
    finally:
        pool.close()


# -- reading history ------------------------------------------------------------------------------------


def seed_history(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """cleanup: succeeded, failed, running; report: succeeded, missed. Returns ids by label."""
    ids: dict[str, str] = {}
    for i, (job, label) in enumerate(
        [("cleanup", "c_ok"), ("report", "r_ok"), ("cleanup", "c_fail"), ("cleanup", "c_run")]
    ):
        record = claim(conn, job, SLOT + timedelta(minutes=i), overlap="allow").record
        assert record is not None
        ids[label] = record.id
    finish(conn, ids["c_ok"])
    finish(conn, ids["r_ok"])
    finish(conn, ids["c_fail"], status="failed", message="boom")
    record_slot(conn, job_name="report", scheduled_for=SLOT + timedelta(hours=1), status="missed", message="down")
    ids["r_missed"] = slot_run_id("report", SLOT + timedelta(hours=1))
    return ids


def test_history_is_newest_first_with_filters_and_limit(conn: psycopg.Connection[Any]) -> None:
    ids = seed_history(conn)
    assert [r.id for r in history(conn)] == [ids["r_missed"], ids["c_run"], ids["c_fail"], ids["r_ok"], ids["c_ok"]]
    assert [r.id for r in history(conn, job="cleanup")] == [ids["c_run"], ids["c_fail"], ids["c_ok"]]
    assert [r.id for r in history(conn, status="succeeded")] == [ids["r_ok"], ids["c_ok"]]
    assert [r.id for r in history(conn, job="cleanup", status="failed")] == [ids["c_fail"]]
    assert [r.id for r in history(conn, limit=2)] == [ids["r_missed"], ids["c_run"]]
    assert history(conn, job="nope") == []
    with pytest.raises(ValueError, match="limit"):
        history(conn, limit=0)


def test_last_runs_and_last_with_status(conn: psycopg.Connection[Any]) -> None:
    ids = seed_history(conn)
    latest = last_runs(conn)
    assert {job: r.id for job, r in latest.items()} == {"cleanup": ids["c_run"], "report": ids["r_missed"]}
    assert {job: r.id for job, r in last_runs(conn, ["report", "unknown"]).items()} == {"report": ids["r_missed"]}
    assert last_runs(conn, []) == {}

    succeeded = last_with_status(conn, ["succeeded"])
    assert {job: r.id for job, r in succeeded.items()} == {"cleanup": ids["c_ok"], "report": ids["r_ok"]}
    failures = last_with_status(conn, FAILED_STATUSES)
    assert {job: r.id for job, r in failures.items()} == {"cleanup": ids["c_fail"]}
    assert last_with_status(conn, ["succeeded"], ["report"]).keys() == {"report"}


MAX_BLOCKS_PER_READ = 1_000  # heap and index blocks; the large ledger's heap alone is over five times that


@pytest.fixture(scope="module")
def large_ledger_url(postgres_url: str) -> Iterator[str]:
    """One database of 250,000 finished runs for the read-cost tests (which only read it)."""
    with servers.scratch_database(postgres_url, migrated=True) as url:
        with connect(url, autocommit=True) as conn:
            fill_ledger(conn, 250_000, summary=False)
            rebuild_latest(conn)
            pages = conn.execute(  # summed over the partitions (migration 0009)
                "SELECT sum(c.relpages)::bigint FROM pg_partition_tree('sp_job_runs') p"
                " JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf"
            ).fetchone()
            assert pages is not None and pages[0] > 5 * MAX_BLOCKS_PER_READ
        yield url


@pytest.mark.parametrize("read", LEDGER_READS.values(), ids=LEDGER_READS.keys())
def test_history_reads_touch_a_few_pages_of_a_large_ledger(
    large_ledger_url: str, read: Callable[[psycopg.Connection[Any]], Sized]
) -> None:
    # Every read the CLI makes goes through an index and touches a number of pages that depends on the
    # limit and the number of jobs, never on the ledger's size (bench/history_bench.py times them at
    # millions of runs). The newest runs of each job come from the job summary (store/latest.py): a
    # probe of it per job, then one primary-key probe in one partition per job.
    with connect(large_ledger_url, autocommit=True) as conn:
        first = read(conn)  # plans and catalog caches are warm, as in a CLI call after its first query
        scans_before, blocks_before = ledger_reads(conn)
        assert read(conn) == first
        scans_after, blocks_after = ledger_reads(conn)
    assert scans_after == scans_before, "a sequential scan of sp_job_runs"
    assert blocks_after - blocks_before < MAX_BLOCKS_PER_READ


def test_run_record_serialises_to_json(conn: psycopg.Connection[Any]) -> None:
    record = claim(conn).record
    assert record is not None
    data = json.loads(json.dumps(record.to_dict()))
    assert data["id"] == record.id
    assert data["scheduled_for"] == "2025-01-01T03:00:00+00:00"
    assert data["params"] == {"days": 30}
    assert record.lateness_ms is not None and record.lateness_ms > 0
    assert (
        enqueue_run(
            conn, run_id=str(uuid.uuid4()), job_name="x", trigger="manual", scheduled_for=None, params={}
        ).lateness_ms
        is None
    )


# -- overrides and logs ---------------------------------------------------------------------------------


def test_set_enabled_upserts_the_override(conn: psycopg.Connection[Any]) -> None:
    assert get_override(conn, "cleanup") is None
    first = set_enabled(conn, "cleanup", enabled=False, actor="alice", reason="noisy")
    second = set_enabled(conn, "cleanup", enabled=True, actor="bob")
    assert (first.enabled, first.actor, first.reason) == (False, "alice", "noisy")
    assert (second.enabled, second.actor, second.reason) == (True, "bob", None)
    assert second.updated_at > first.updated_at
    set_enabled(conn, "report", enabled=False, actor="carol")
    overrides = get_overrides(conn)
    assert overrides.keys() == {"cleanup", "report"}
    assert overrides["cleanup"] == second == get_override(conn, "cleanup")


def test_logs_are_written_in_a_batch_and_queried_by_filter(conn: psycopg.Connection[Any]) -> None:
    base = datetime.now(UTC) - timedelta(hours=2)
    run_id = str(uuid.uuid4())
    rows = [
        LogRecordRow(base, "DEBUG", "sp.worker", "warming up"),
        LogRecordRow(base + timedelta(minutes=10), "INFO", "sp.job", "started", "cleanup", run_id, {"n": 1}),
        LogRecordRow(base + timedelta(minutes=20), "WARNING", "sp.job", "slow", "cleanup", run_id),
        LogRecordRow(base + timedelta(minutes=90), "ERROR", "sp.job", "failed", "report", None, {"code": 7}),
        LogRecordRow(base + timedelta(minutes=100), "CRITICAL", "sp.beat", "lost leadership"),
    ]
    assert write_logs(conn, rows) == 5
    assert write_logs(conn, []) == 0

    everything = query_logs(conn)
    assert [row for _, row in everything] == list(reversed(rows))
    assert everything[-1][1].fields == {}
    assert [r.message for _, r in query_logs(conn, min_level="warning")] == ["lost leadership", "failed", "slow"]
    assert [r.message for _, r in query_logs(conn, min_level="ERROR", limit=1)] == ["lost leadership"]
    assert [r.message for _, r in query_logs(conn, since=base + timedelta(hours=1))] == ["lost leadership", "failed"]
    assert [r.message for _, r in query_logs(conn, job="cleanup")] == ["slow", "started"]
    assert [r.message for _, r in query_logs(conn, run_id=run_id, min_level="INFO")] == ["slow", "started"]
    assert query_logs(conn, job="report")[0][1].fields == {"code": 7}

    # --follow: lines after an id, oldest first.
    first_id = min(log_id for log_id, _ in everything)
    follow = query_logs(conn, after_id=first_id, limit=2)
    assert [r.message for _, r in follow] == ["started", "slow"]
    assert query_logs(conn, after_id=max(log_id for log_id, _ in everything)) == []

    with pytest.raises(UsageError, match="unknown log level"):
        query_logs(conn, min_level="LOUD")


def test_custom_level_names_rank_as_info(conn: psycopg.Connection[Any]) -> None:
    now = datetime.now(UTC)
    write_logs(conn, [LogRecordRow(now, "SUCCESS", "x", "custom"), LogRecordRow(now, "DEBUG", "x", "debug")])
    assert [r.message for _, r in query_logs(conn, min_level="INFO")] == ["custom"]
