"""Beat's ledger thread against a real Postgres: work handed over is done, kept through an outage, and
never makes the caller wait."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sp_scheduler.beat_ledger import BeatLedger, MissedSlots, StartupRun
from sp_scheduler.ledger.postgres import PostgresLedger
from sp_scheduler.store import get_run, history, open_pool, set_enabled, slot_run_id
from tests.support import wait_until
from tests.support.proxy import CuttableProxy, through

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@contextmanager
def running_ledger(url: str, reap_interval: float = 60.0) -> Iterator[BeatLedger]:
    """A started BeatLedger on its own pool (as beat has), stopped and closed afterwards."""
    pool = open_pool(url, min_size=1, max_size=2, timeout=1.0, autocommit=True, check_on_checkout=False)
    ledger = BeatLedger(PostgresLedger(pool.connection), reap_interval=reap_interval, refresh_interval=60.0)
    ledger.start()
    try:
        yield ledger
    finally:
        ledger.stop(timeout=5)
        pool.close()


def collect_queued(ledger: BeatLedger, into: list[StartupRun]) -> list[StartupRun]:
    """Add the startup runs the ledger hands back since the last call to `into`; return `into`."""
    into.extend(ledger.take_queued())
    return into


def test_missed_slots_and_startup_runs_handed_over_are_recorded(database_url: str, conn: Any) -> None:
    with running_ledger(database_url) as ledger:
        ledger.record_missed(MissedSlots("tick", (SLOT, SLOT + timedelta(seconds=1)), "missed: beat was down"))
        run = StartupRun("warmup", "0b6c5ba4-6f43-4d4b-a3a1-1c6f7f7d7d01", {"days": 3})
        ledger.queue_startup([run])
        wait_until(lambda: len(history(conn, job="tick")) == 2, timeout=10)
        taken: list[StartupRun] = []
        wait_until(lambda: collect_queued(ledger, taken) == [run], timeout=10)
    missed = history(conn, job="tick")
    assert {(r.id, r.status, r.message) for r in missed} == {
        (slot_run_id("tick", SLOT), "missed", "missed: beat was down"),
        (slot_run_id("tick", SLOT + timedelta(seconds=1)), "missed", "missed: beat was down"),
    }
    queued = get_run(conn, run.run_id)
    assert (queued.status, queued.trigger, queued.params) == ("queued", "startup", {"days": 3})


def test_overrides_are_read_on_request_and_their_version_moves_only_on_change(database_url: str, conn: Any) -> None:
    with running_ledger(database_url) as ledger:
        ledger.refresh_overrides(wait=5)
        first, overrides = ledger.overrides()
        assert first > 0 and overrides == {}
        ledger.refresh_overrides(wait=5)
        assert ledger.overrides() == (first, {})
        set_enabled(conn, "report", enabled=False, reason="maintenance", actor="test")
        ledger.refresh_overrides(wait=5)
        assert ledger.overrides() == (first + 1, {"report": False})


def test_work_waits_out_a_postgres_outage_without_holding_up_the_caller(
    database_url: str, conn: Any, proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with running_ledger(through(database_url, proxy)) as ledger:
        ledger.refresh_overrides(wait=5)
        version = ledger.overrides()[0]
        proxy.cut()
        started = time.monotonic()
        ledger.record_missed(MissedSlots("tick", (SLOT,), "missed"))
        ledger.queue_startup([StartupRun("warmup", "5f0c8a1e-2d3b-4c5d-8e9f-0a1b2c3d4e5f")])
        ledger.refresh_overrides(wait=0.2)  # Postgres is away: gives up after its wait, keeps what it knew
        assert ledger.overrides()[0] == version
        assert time.monotonic() - started < 1.0
        assert ledger.take_queued() == []
        wait_until(lambda: "beat's ledger work failed; retrying" in caplog.messages, timeout=10)
        proxy.restore()
        wait_until(lambda: len(history(conn, job="tick")) == 1, timeout=30)
        taken: list[StartupRun] = []
        wait_until(lambda: [r.job_name for r in collect_queued(ledger, taken)] == ["warmup"], timeout=30)
    assert history(conn, job="tick")[0].status == "missed"


def test_stop_writes_what_postgres_could_not_take_before(
    database_url: str, conn: Any, proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with running_ledger(through(database_url, proxy)) as ledger:
        ledger.refresh_overrides(wait=5)
        proxy.cut()
        ledger.record_missed(MissedSlots("tick", (SLOT,), "missed"))
        wait_until(lambda: "beat's ledger work failed; retrying" in caplog.messages, timeout=10)
        proxy.restore()
        ledger.stop(timeout=10)  # beat is shutting down: the pending record is written first
        assert [r.status for r in history(conn, job="tick")] == ["missed"]


def test_work_postgres_refuses_is_logged_and_does_not_block_the_rest(
    database_url: str, conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with running_ledger(database_url) as ledger:
        ledger.record_missed(MissedSlots("bad\x00name", (SLOT,), "missed"))  # text cannot hold NUL
        ledger.record_missed(MissedSlots("tick", (SLOT,), "missed"))
        wait_until(lambda: len(history(conn, job="tick")) == 1, timeout=10)
    assert "Postgres refused beat's ledger write; skipped" in caplog.messages
