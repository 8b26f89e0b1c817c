"""A run whose process is alive is never reaped or run twice, even across a Postgres outage longer
than its lease; and an outcome that arrives after a reaping says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sp_scheduler.keeper import RunKeeper
from sp_scheduler.ledger.postgres import PostgresLedger
from sp_scheduler.runlog import RunLogBuffer
from sp_scheduler.store import FINISHED_STATUSES, connect, finish_run, reap_lost
from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.ledger import SLOT, claim
from tests.support.proxy import postgres_proxy, through

pytestmark = pytest.mark.integration


def lease_expired(conn: psycopg.Connection[Any], run_id: str, *, by: float = 0.0) -> bool:
    row = conn.execute(
        "SELECT lease_expires_at + make_interval(secs => %s) < clock_timestamp() FROM sp_job_runs WHERE id = %s",
        (by, run_id),
    ).fetchone()
    return bool(row and row[0])


@contextmanager
def pool_in_backoff() -> Iterator[psycopg.Connection[Any]]:
    """A ledger pool still waiting out its reconnect backoff after Postgres came back."""
    raise psycopg.OperationalError("couldn't get a connection after 5.00 sec")
    yield  # pragma: no cover


def run_log(conn: psycopg.Connection[Any], run_id: str) -> list[str]:
    return [m for (m,) in conn.execute("SELECT message FROM sp_logs WHERE run_id = %s", (run_id,)).fetchall()]


def test_the_keeper_renews_leases_on_a_fresh_connection_when_its_pool_cannot_give_one(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    run = claim(conn, lease_seconds=0.5).record
    assert run is not None
    keeper = RunKeeper(
        PostgresLedger(pool_in_backoff), 0.6, fallback=PostgresLedger(lambda: connect(database_url, autocommit=True))
    )
    try:
        keeper.track(run.id, RunLogBuffer("cleanup", run.id))
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT lease_expires_at > %s::timestamptz + interval '1 second' FROM sp_job_runs WHERE id = %s",
                    (run.lease_expires_at, run.id),
                ).fetchone()
                == (True,)
            ),
            timeout=10,
            message="the lease to be renewed through the fallback connection",
        )
    finally:
        keeper.stop(timeout=1)


def test_a_keeper_whose_live_run_was_reaped_says_so_in_the_run_log(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    run = claim(conn, lease_seconds=60).record
    assert run is not None
    keeper = RunKeeper(PostgresLedger(lambda: connect(database_url, autocommit=True)), 0.6)
    try:
        keeper.track(run.id, RunLogBuffer("cleanup", run.id))
        conn.execute("UPDATE sp_job_runs SET status = 'lost', lease_expires_at = NULL WHERE id = %s", (run.id,))
        wait_until(lambda: run_log(conn, run.id), timeout=10, message="the keeper's note in the run log")
    finally:
        keeper.stop(timeout=1)
    assert run_log(conn, run.id) == [
        "run no longer marked running in the ledger (a reaper marked it lost) while it still runs here;"
        " its outcome will say so"
    ]


def test_the_reaper_spares_the_runs_of_processes_it_knows_are_alive(conn: psycopg.Connection[Any]) -> None:
    mine = claim(conn, "mine", lease_seconds=0.1, worker="host-a:10").record
    dead = claim(conn, "dead", lease_seconds=0.1, worker="host-b:20").record
    assert mine is not None and dead is not None
    wait_until(lambda: lease_expired(conn, mine.id) and lease_expired(conn, dead.id), timeout=5)
    assert [r.id for r in reap_lost(conn, sparing=["host-a:10"])] == [dead.id]
    assert [r.id for r in reap_lost(conn)] == [mine.id]


def test_an_outcome_after_a_reaping_is_recorded_and_says_it_had_been_marked_lost(
    conn: psycopg.Connection[Any],
) -> None:
    run = claim(conn, lease_seconds=0.1).record
    assert run is not None
    wait_until(lambda: reap_lost(conn), timeout=5, message="the run to be reaped")
    done = finish_run(
        conn, run.id, status="succeeded", message="rested", items_processed=1, items_failed=0, duration_ms=10
    )
    assert done.status == "succeeded"
    assert done.message is not None
    assert done.message.startswith("rested [succeeded after it had been marked lost: worker stopped heartbeating")
    # A run that was never reaped keeps its message as it is.
    other = claim(conn, slot=SLOT + timedelta(minutes=1), overlap="allow").record
    assert other is not None
    kept = finish_run(conn, other.id, status="failed", message="boom", items_processed=0, items_failed=0, duration_ms=1)
    assert kept.message == "boom"


def test_a_postgres_outage_longer_than_the_lease_never_runs_an_overlap_skip_job_twice(
    system: System, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    proxy = postgres_proxy(system.database_url)
    system.configure(
        [{"name": "long", "extension": "testing", "job": "sleepy", "schedule": "", "enabled": True, "overlap": "skip"}]
    )
    lease = 2.0
    # Two pool processes: one runs the long job, the other takes the manual run sent after the outage.
    worker = system.worker(concurrency=2, SP_DATABASE_URL=through(system.database_url, proxy), SP_RUN_LEASE=str(lease))
    first_marker, second_marker = tmp_path / "first", tmp_path / "second"
    queued = system.cli("jobs", "run", "long", "-p", "seconds=12", "-p", f"marker={first_marker}", "--json")
    assert queued.exit_code == 0, queued.output
    first_id = json.loads(queued.stdout)[0]["run_id"]
    wait_until(first_marker.exists, timeout=30, message="the long run did not start")
    proxy.cut()
    try:
        # Away for longer than the lease: the ledger shows the live run's lease expired two seconds ago.
        wait_until(lambda: lease_expired(conn, first_id, by=2.0), timeout=20)
        wait_until(lambda: "lease heartbeat failed" in worker.output(), timeout=20)
    finally:
        proxy.restore()
    second = system.cli("jobs", "run", "long", "-p", "seconds=0.1", "-p", f"marker={second_marker}", "--json")
    assert second.exit_code == 0, second.output
    second_id = json.loads(second.stdout)[0]["run_id"]

    def rows() -> dict[str, dict[str, Any]] | None:
        found = {r["id"]: r for r in system.history("long")}
        done = all(found.get(run_id, {}).get("status") in FINISHED_STATUSES for run_id in (first_id, second_id))
        return found if done else None

    finished = wait_until(rows, timeout=60, message="the runs did not finish")
    first, skipped = finished[first_id], finished[second_id]
    assert not second_marker.exists(), "a second copy ran alongside the first"
    assert skipped["status"] == "skipped"
    assert skipped["message"].startswith(f"overlap: run {first_id} still")
    assert first["status"] == "succeeded" and "marked lost" not in (first["message"] or "")
    assert "run lost" not in worker.output()
    log_lines = run_log(conn, first_id)
    assert "lease renewed after the ledger was unreachable for longer than the lease" in log_lines, log_lines
