"""Real `sp-scheduler` processes for integration tests: workers (and later beats) with their own logs.

Each process runs in its own session so a test can SIGKILL the whole process tree (the Celery main
process and its pool children) the way a crashed container would die.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
TESTING_EXTENSION = "tests.support.jobs:extension"


def write_config(path: Path, jobs: Sequence[Mapping[str, object]] = (), *, enabled: bool = True) -> Path:
    """A config.yaml that loads the `testing` extension plus the given job entries."""
    document = {"scheduler": {"enabled": enabled, "extensions": [TESTING_EXTENSION], "jobs": list(jobs)}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def service_env(database_url: str, redis_url: str, config: Path, **extra: str) -> dict[str, str]:
    """Environment for a child process: the project importable, these services, this config."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SP_")}
    env.update(
        {
            "SP_DATABASE_URL": database_url,
            "SP_REDIS_URL": redis_url,
            "SP_CONFIG": str(config),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class ManagedProcess:
    """A child process with its combined output in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill_tree(self) -> None:
        """SIGKILL the whole process group: no cleanup runs, like a container killed by the OOM killer."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.stopped = True

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL if it does not exit in time."""
        if self.stopped:
            return
        self.stopped = True
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def start_process(name: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path) -> ManagedProcess:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            [sys.executable, "-m", "sp_scheduler", *args],
            cwd=ROOT,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ManagedProcess(name, popen, log_path)


def start_worker(
    name: str, env: Mapping[str, str], log_dir: Path, *, concurrency: int = 1, ready_timeout: float = 30.0
) -> ManagedProcess:
    """Start `sp-scheduler worker` and wait until Celery reports it ready to consume."""
    process = start_process(
        name,
        ["worker", "-c", str(concurrency), "-n", f"{name}@%h"],
        env,
        log_dir,
    )

    def ready() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"worker {name} exited with {process.popen.returncode}:\n{process.output()}")
        return " ready." in process.output()

    wait_until(ready, timeout=ready_timeout, message=f"worker {name} did not become ready")
    return process


def start_beat(name: str, env: Mapping[str, str], log_dir: Path, *, lead: bool = True) -> ManagedProcess:
    """Start `sp-scheduler beat`; with `lead`, wait until it has taken the lead."""
    process = start_process(name, ["beat"], env, log_dir)
    marker = "beat took the lead" if lead else "beat: Starting..."

    def started() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"beat {name} exited with {process.popen.returncode}:\n{process.output()}")
        return marker in process.output()

    wait_until(started, timeout=30, message=f"beat {name} did not start")
    return process


def start_web(args: Sequence[str], env: Mapping[str, str], log_dir: Path) -> tuple[ManagedProcess, str]:
    """`sp-scheduler web` on a free port, once it answers `/api/v1/jobs`; the process and its address."""
    port = free_port()
    process = start_process("web", ["web", "--port", str(port), *args], env, log_dir)
    base = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"sp-scheduler web exited with {process.popen.returncode}:\n{process.output()}")
        try:
            return httpx.get(f"{base}/api/v1/jobs", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(serving, timeout=30, message="sp-scheduler web did not serve")
    return process, base
