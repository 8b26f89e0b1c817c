"""The Procfile runs under honcho (foreman's Python clone): release migrates, beat and worker fire a
per-second job, the health check sees both, and SIGTERM to honcho stops everything with nothing left
`running`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import _Root
from sp_scheduler.cli.health_cmd import health_cmd
from sp_scheduler.cli.process_cmd import CELERY_TASK_LOGGERS
from sp_scheduler.cli.state import CliState
from sp_scheduler.errors import ExitCode
from sp_scheduler.settings import Settings
from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

PROCFILE = ROOT / "Procfile"
STARTED = re.compile(r"(\w+)\.1 started \(pid=(\d+)\)")


def honcho(*args: str, env_file: Path) -> list[str]:
    # -e: an env file of the test's own, so a developer's .env in the repo never leaks into the run.
    return [sys.executable, "-m", "honcho", "-f", str(PROCFILE), "-d", str(ROOT), "-e", str(env_file), *args]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's: cannot be ours, but it is alive
        return True
    return True


def health(system: System, *args: str) -> tuple[int, str]:
    # A bare root group maps errors to exit codes, whether or not `health` is registered in the CLI yet.
    root = _Root("sp-scheduler", commands=[health_cmd])
    state = CliState(Settings.from_env(system.env()))
    result = CliRunner().invoke(root, ["health", *args], obj=state)
    return result.exit_code, result.output


def test_the_procfile_runs_under_honcho_and_stops_cleanly_on_sigterm(system: System, tmp_path: Path) -> None:
    assert importlib.util.find_spec("honcho"), "honcho is not installed: it belongs in the test extra"
    system.configure(
        [{"name": "tick", "extension": "testing", "job": "noop", "schedule": "* * * * * *", "enabled": True}]
    )
    # The settings go through honcho's env file, the way an operator would configure a Procfile app;
    # JSON logs, to see them from real processes.
    env_file = tmp_path / "honcho.env"
    settings = {k: v for k, v in system.env(SP_LOG_FORMAT="json").items() if k.startswith("SP_")}
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    env = {k: v for k, v in system.env().items() if not k.startswith("SP_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # `sp-scheduler`

    # `release` exits when done, and honcho stops every process when one exits: it runs on its own
    # first, as Heroku's release phase does.
    release = PROCFILE.read_text().split("release:", 1)[1].splitlines()[0].split()
    assert release[:2] == ["exec", "sp-scheduler"]
    migrated = subprocess.run(
        honcho("run", *release[1:], env_file=env_file), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "up to date" in migrated.stdout

    log_path = system.log_dir / "honcho.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            honcho("start", "beat", "worker", env_file=env_file),
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        wait_until(
            lambda: len(STARTED.findall(output())) == 2, timeout=30, message=f"honcho did not start:\n{output()}"
        )
        pids = {name: int(pid) for name, pid in STARTED.findall(output())}

        def ticked() -> bool:
            if popen.poll() is not None:
                raise AssertionError(f"honcho exited with {popen.returncode}:\n{output()}")
            return sum(r["status"] == "succeeded" for r in system.history("tick")) >= 3

        wait_until(ticked, timeout=60, message=f"the per-second job did not run:\n{output()}")
        assert {r["trigger"] for r in system.history("tick")} == {"schedule"}

        # Both processes answer the container health check while they run (same host name here).
        for role in ("beat", "worker"):
            code, text = health(system, "--role", role)
            assert code == 0, text
            assert text.startswith("ok: postgres ") and f"{role} " in text
        code, text = health(system, "--role", "worker", "--host", "elsewhere")
        assert code == ExitCode.FAILURE and "no worker on host 'elsewhere'" in text

        popen.send_signal(signal.SIGTERM)
        wait_until(lambda: popen.poll() is not None, timeout=30, message=f"honcho did not exit:\n{output()}")
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)

    log = output()
    assert "SIGTERM received" in log
    assert "SIGKILL" not in log, f"a process needed SIGKILL (honcho waits 5 s):\n{log}"
    # `exec` in the Procfile: honcho tracks (and reports the exit of) the real process, not a shell.
    assert "beat.1 stopped (rc=0)" in log and "worker.1 stopped (rc=0)" in log, log
    # Honcho starts each process in a session of its own: nothing of it (pool children included) survives.
    wait_until(
        lambda: not any(group_alive(pid) for pid in pids.values()),
        timeout=10,
        message=f"processes outlived honcho: {pids}",
    )
    # Runs in flight either finished or were recorded interrupted; none is left `running` (or `queued`).
    wait_until(
        lambda: not [r for r in system.history("tick") if r["status"] in {"running", "queued"}],
        timeout=10,
        message=f"runs left running: {[r for r in system.history('tick') if r['status'] == 'running']}",
    )
    # SP_LOG_FORMAT=json: every log record is one JSON object (Celery's banners are plain prints).
    records = [json.loads(line.split(" | ", 1)[1]) for line in log.splitlines() if " | {" in line]
    started = [r for r in records if r["logger"] == "sp_scheduler.jobs.tick" and r["message"] == "job started"]
    assert started and started[0]["trigger"] == "schedule"
    assert datetime.fromisoformat(started[0]["scheduled_for"]).microsecond == 0
    assert any(r["logger"].startswith("celery.worker") for r in records)  # Celery's own records are JSON too
    # ... except its per-task lines, which name neither job nor run: shown only at --loglevel DEBUG.
    assert not [r for r in records if r["logger"] in CELERY_TASK_LOGGERS], records
    assert any(r["message"] == "beat released leadership" and r["beat"] for r in records)
