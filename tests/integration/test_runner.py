"""The runner in-process against a real Postgres: what a worker process does with one delivery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sp_scheduler import store
from sp_scheduler.runner import RunRequest, WorkerRuntime, execute_run
from sp_scheduler.settings import Settings
from sp_scheduler.store import Claim, connect, get_run, slot_run_id
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
        [{"name": "noop", "extension": "testing", "job": "noop", "schedule": "", "enabled": True, "overlap": "skip"}],
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
