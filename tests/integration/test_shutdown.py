"""Graceful shutdown: SIGTERM to a worker or a beat loses nothing and leaves nothing `running`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration


def sleepy(**options: object) -> dict[str, object]:
    return {"name": "sleepy", "extension": "testing", "job": "sleepy", "schedule": "", "enabled": True, **options}


def run_id_of(system: System, *args: str) -> str:
    queued = system.cli("jobs", "run", "sleepy", *args, "--json")
    assert queued.exit_code == 0, queued.output
    return str(system.cli_json("jobs", "history", "--job", "sleepy")[0]["id"])


def test_sigterm_lets_a_running_job_finish_then_the_worker_exits(system: System, tmp_path: Path) -> None:
    system.configure([sleepy()])
    worker = system.worker()
    marker = tmp_path / "started"
    run_id = run_id_of(system, "-p", "seconds=5", "-p", f"marker={marker}")
    wait_until(marker.exists, timeout=30, message="the run did not start")
    os.kill(worker.pid, signal.SIGTERM)  # the main process only, as `docker stop` does
    wait_until(lambda: worker.popen.poll() is not None, timeout=30, message="the worker did not exit")
    (row,) = [r for r in system.history("sleepy") if r["id"] == run_id]
    assert row["status"] == "succeeded" and row["message"] == "rested"


def test_past_the_grace_period_a_run_is_recorded_interrupted(system: System, tmp_path: Path) -> None:
    system.configure([sleepy()])
    worker = system.worker(SP_SHUTDOWN_GRACE="1")
    marker = tmp_path / "started"
    run_id = run_id_of(system, "-p", "seconds=120", "-p", f"marker={marker}")
    wait_until(marker.exists, timeout=30, message="the run did not start")
    stopped_at = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)
    wait_until(lambda: worker.popen.poll() is not None, timeout=30, message="the worker did not exit")
    assert time.monotonic() - stopped_at < 20
    (row,) = [r for r in system.history("sleepy") if r["id"] == run_id]
    assert row["status"] == "failed" and row["error"] == "interrupted"
    assert "grace period" in row["message"]
    assert all(r["status"] != "running" for r in system.history())


def test_sigterm_to_the_leading_beat_hands_over_at_once(system: System) -> None:
    system.configure(
        [
            {
                "name": "tick",
                "extension": "testing",
                "job": "noop",
                "schedule": "* * * * * *",
                "enabled": True,
                "overlap": "allow",
            }
        ]
    )
    leader = system.beat("beat_a")
    standby = system.beat("beat_b", lead=False)
    os.kill(leader.pid, signal.SIGTERM)
    stopped_at = time.monotonic()
    wait_until(lambda: "beat took the lead" in standby.output(), timeout=10, message="standby did not take over")
    assert time.monotonic() - stopped_at < 5  # not the 10 s lock TTL: the leader released the lock
    wait_until(lambda: leader.popen.poll() is not None, timeout=15)
    assert "beat released leadership" in leader.output()
