"""The runner in-process against a real Postgres: what a worker process does with one delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sp_scheduler import store
from sp_scheduler.ledger import LedgerRefused
from sp_scheduler.runner import RunRequest, WorkerRuntime, execute_run
from sp_scheduler.settings import Settings
from sp_scheduler.store import Claim, connect, get_run, query_logs, slot_run_id
from tests.support.processes import write_config

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def test_a_claim_whose_reply_was_lost_still_runs_the_job(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim commits, then the connection breaks before its reply arrives. The runner retries once
    # on a fresh connection; the retry meets the committed claim and must run the job, not treat its
    # own claim as a duplicate (which left the slot unrun and its run to be reaped as lost).
    config = write_config(
        tmp_path / "config.yaml",
        [
            {
                "name": "noop",
                "extension": "testing",
                "job": "noop",
                "schedule": "",
                "enabled": True,
                "overlap": "skip",
                "misfire_grace": 10**9,
            }
        ],  # a grace that lets this fixed past SLOT run
    )
    real_claim = store.claim_run
    retrying: list[bool] = []

    def commit_then_break(conn: psycopg.Connection[Any], **kwargs: Any) -> Claim:
        retrying.append(kwargs["retrying"])
        claim = real_claim(conn, **kwargs)
        if len(retrying) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return claim

    monkeypatch.setattr(store, "claim_run", commit_then_break)
    runtime = WorkerRuntime(Settings(database_url=database_url, config_path=config))
    try:
        recorded = execute_run(runtime, RunRequest("noop", "schedule", SLOT))
        assert recorded is not None, "the retried claim was taken for a duplicate"
        record = recorded.result(timeout=10)
    finally:
        runtime.close()
    assert retrying == [False, True]
    assert record.id == slot_run_id("noop", SLOT)
    assert (record.status, record.message, record.items_processed) == ("succeeded", "nothing to do", 1)
    with connect(database_url, autocommit=True) as conn:
        assert get_run(conn, record.id) == record


def runtime_for(database_url: str, tmp_path: Path, *names: str) -> WorkerRuntime:
    entries = [{"name": n, "extension": "testing", "job": n, "schedule": "", "enabled": True} for n in names]
    return WorkerRuntime(Settings(database_url=database_url, config_path=write_config(tmp_path / "c.yaml", entries)))


def test_nul_characters_from_a_job_are_stored_replaced(database_url: str, tmp_path: Path) -> None:
    # Postgres text cannot hold NUL: left in, the outcome and its log line would be refused, and with
    # them the next claim that carries them, whichever job it is for.
    runtime = runtime_for(database_url, tmp_path, "nul_bytes", "noop")
    try:
        bad = execute_run(runtime, RunRequest("nul_bytes", "manual", run_id=str(uuid.uuid4())))
        good = execute_run(runtime, RunRequest("noop", "manual", run_id=str(uuid.uuid4())))
        assert bad is not None and good is not None
        record, other = bad.result(timeout=10), good.result(timeout=10)
    finally:
        runtime.close()
    assert (record.status, record.message) == ("succeeded", "kept a\ufffdb")
    assert other.status == "succeeded"
    with connect(database_url, autocommit=True) as conn:
        lines = [row for _, row in query_logs(conn, run_id=record.id)]
    line = next(row for row in lines if row.message.startswith("read"))
    assert (line.message, line.fields["raw"]) == ("read a\ufffdb", "c\ufffdd")


def test_an_outcome_postgres_refuses_does_not_cost_the_next_run_its_claim(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # items_processed beyond a bigint: the statement carrying that outcome fails as a whole. The next
    # run claims alone; the refused outcome is left to the keeper (and the run to the reaper).
    runtime = runtime_for(database_url, tmp_path, "huge_count", "noop")
    try:
        huge = execute_run(runtime, RunRequest("huge_count", "manual", run_id=str(uuid.uuid4())))
        good = execute_run(runtime, RunRequest("noop", "manual", run_id=str(uuid.uuid4())))
        assert huge is not None and good is not None
        assert good.result(timeout=10).status == "succeeded"
        with pytest.raises(LedgerRefused, match="out of range for type bigint"):  # psycopg's DataError
            huge.result(timeout=10)
    finally:
        runtime.close()
    assert "claim could not carry earlier outcomes; claiming alone" in caplog.messages
