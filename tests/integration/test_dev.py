"""`sp-scheduler dev`: embedded servers, beat, a worker, the notifier and the dashboard from one command, and
nothing left behind after Ctrl-C.

The dev process runs with SP_DATABASE_URL / SP_REDIS_URL unset, so it starts its own embedded servers
even where local ones answer, with its data directory (SP_DEV_DIR) under the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sp_scheduler.errors import ExitCode
from tests.support import free_port, wait_until
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

START_TIMEOUT = 60.0
HEARTBEAT_TIMEOUT = 15.0
EXIT_TIMEOUT = 30.0


def dev_env(dev_dir: Path, **extra: str) -> dict[str, str]:
    """This environment without any SP_* setting, the project importable, dev's data under `dev_dir`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SP_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["SP_DEV_DIR"] = str(dev_dir)
    env.update(extra)
    return env


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_mentioning(text: str) -> list[str]:
    """`pgrep -fa` lines whose command line contains `text` (the embedded Postgres names its data dir)."""
    pgrep = shutil.which("pgrep")
    assert pgrep, "pgrep (procps) is needed to check that dev leaves no process behind"
    found = subprocess.run([pgrep, "-fa", text], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if line.split(maxsplit=1)[0] != str(os.getpid())]


@dataclass
class DevRun:
    """One `python -m sp_scheduler dev` with its combined output in a file."""

    popen: subprocess.Popen[bytes]
    dev_dir: Path
    log_path: Path

    @property
    def env_file(self) -> Path:
        return self.dev_dir.with_name(self.dev_dir.name + ".env")

    @property
    def processes_file(self) -> Path:
        return self.dev_dir / "processes.json"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"dev exited with {self.popen.returncode}:\n{self.output()}")

    def pids(self) -> dict[str, int | None]:
        data: dict[str, int | None] = json.loads(self.processes_file.read_text())
        return data

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI in a fresh shell that sources dev.env first, as a second terminal would."""
        script = 'source "$1" && shift && exec "$0" -m sp_scheduler "$@"'
        return subprocess.run(
            ["bash", "-c", script, sys.executable, str(self.env_file), *args],
            cwd=ROOT,
            env=dev_env(self.dev_dir),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevRun]:
    log_path = tmp_path / "dev.log"
    dev_dir = tmp_path / "dev"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            [sys.executable, "-m", "sp_scheduler", "dev"],
            cwd=ROOT,
            env=dev_env(dev_dir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = DevRun(popen, dev_dir, log_path)
    recorded: dict[str, int | None] = {}
    try:
        wait_until(
            lambda: run.check_running() or (run.env_file.exists() and run.processes_file.exists()),
            timeout=START_TIMEOUT,
            message="dev to start its servers, write dev.env and start beat and worker",
        )
        recorded = run.pids()
        yield run
    finally:
        _clean_up(run, recorded)


def _clean_up(run: DevRun, recorded: dict[str, int | None]) -> None:
    """After a failed test: stop dev the polite way, then make sure none of its processes outlive the test."""
    if run.popen.poll() is None:
        os.kill(run.popen.pid, signal.SIGINT)
        try:
            run.popen.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(run.popen.pid, signal.SIGKILL)
            run.popen.wait(timeout=10)
    for name, pid in recorded.items():
        if pid and name in {"beat", "worker", "notifier", "web"}:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        elif pid and alive(pid):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def succeeded_heartbeats(run: DevRun) -> list[dict[str, Any]]:
    run.check_running()
    result = run.cli("jobs", "history", "--job", "heartbeat", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return [row for row in rows if row["status"] == "succeeded"]


def test_dev_runs_the_heartbeat_and_leaves_nothing_behind_on_ctrl_c(dev: DevRun, tmp_path: Path) -> None:
    env_text = dev.env_file.read_text()
    for name in ("SP_DATABASE_URL", "SP_REDIS_URL", "SP_CONFIG", "SP_PROFILE"):
        assert f"export {name}=" in env_text
    assert "profiles/dev.yaml" in env_text

    runs = wait_until(
        lambda: succeeded_heartbeats(dev),
        timeout=HEARTBEAT_TIMEOUT,
        interval=0.5,
        message="a succeeded heartbeat run in `jobs history`",
    )
    assert runs[0]["trigger"] == "schedule"
    assert "scheduled for" in runs[0]["message"]

    pids = dev.pids()
    assert pids["dev"] == dev.popen.pid
    children = {name: pid for name, pid in pids.items() if name != "dev" and pid}
    assert set(children) == {"beat", "worker", "notifier", "web", "postgres", "redis"}, pids  # embedded, not local
    assert all(alive(pid) for pid in children.values())
    output = dev.output()
    assert "beat     | " in output and "worker   | " in output
    # The notifier's own start line, relayed with its prefix, and its alerts link to the dev dashboard.
    wait_until(
        lambda: "notifier | " in dev.output() and "notifier started" in dev.output(),
        timeout=START_TIMEOUT,
        message="the notifier's start line in dev's output",
    )
    notifier_command = Path(f"/proc/{children['notifier']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    # The banner names the dashboard's address, and the dashboard there shows the heartbeat's runs.
    address = re.search(r"dashboard (http://127\.0\.0\.1:\d+/)", output)
    assert address is not None, output

    def dashboard_shows_a_success() -> bool:
        try:
            runs = httpx.get(address.group(1) + "api/v1/runs?job=heartbeat", timeout=5).json()["runs"]
        except httpx.TransportError:
            return False  # still starting
        return any(run["status"] == "succeeded" for run in runs)

    wait_until(dashboard_shows_a_success, timeout=30, interval=0.5, message="the dev dashboard to answer")
    assert notifier_command[-2:] == [b"--web-url", address.group(1).rstrip("/").encode()], notifier_command

    os.kill(dev.popen.pid, signal.SIGINT)
    assert dev.popen.wait(timeout=EXIT_TIMEOUT) == 0, dev.output()

    def nothing_left() -> bool:
        return (
            not any(alive(pid) for pid in children.values())
            and not group_alive(children["beat"])
            and not group_alive(children["worker"])  # the Celery pool processes too
            and not group_alive(children["notifier"])
            and not group_alive(children["web"])
            and not processes_mentioning(str(tmp_path))
        )

    wait_until(nothing_left, timeout=5, message=f"every process of the dev run to be gone: {children}")
    assert not dev.processes_file.exists()
    assert "dev      | stopped" in dev.output()


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("SP_DATABASE_URL", id="postgres"),
        pytest.param("SP_REDIS_URL", id="redis"),
    ],
)
def test_a_configured_url_that_does_not_answer_is_a_one_line_error(variable: str, tmp_path: Path) -> None:
    port = free_port()
    url = (
        f"postgresql://postgres@127.0.0.1:{port}/sp_scheduler"
        if "DATABASE" in variable
        else f"redis://127.0.0.1:{port}/0"
    )
    dev_dir = tmp_path / "dev"
    result = subprocess.run(
        [sys.executable, "-m", "sp_scheduler", "dev"],
        cwd=ROOT,
        env=dev_env(dev_dir, **{variable: url}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.UNAVAILABLE, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert variable in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert not (dev_dir / "pgdata").exists()  # nothing was started
    assert not dev_dir.with_name("dev.env").exists()
