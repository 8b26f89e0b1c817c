"""CI's install stage: the wheel, installed the way users install it, runs the scheduler end to end.

Builds the wheel, installs it **without extras** into a fresh virtualenv that shares nothing with the
test environment (no site packages, no PYTHONPATH, a working directory outside the repository), and
against real Postgres and Redis runs `db migrate`, starts a worker and a beat, runs a bundled job
through the broker to `succeeded` (`jobs run ... --wait`) and waits for a scheduled slot to be
recorded. A dependency that only the test extras bring in fails here.

Run by `.ci/run` with the test virtualenv's Python, which only finds (or starts) the servers:

    .venv/bin/python scripts/check_install.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import servers, wait_until  # noqa: E402  (the repository root is put on the path above)

BASE_PYTHON = os.environ.get("PYTHON", "python3")
MANUAL_JOB = "cleanup_empty_contexts"
SCHEDULED_JOB = "heartbeat"  # every second under the dev profile
SOURCE_LEFT_OUT = (".git", ".venv", "build", "dist", "*.egg-info", ".sp-scheduler", "__pycache__", ".*_cache")


def step(message: str) -> None:
    print(f"check-install: {message}", flush=True)


def run(
    args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the stage with its output when it fails."""
    result = subprocess.run(list(args), capture_output=True, text=True, check=False, env=env, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(
            f"check-install: `{' '.join(args)}` exited {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result


def plain_env(database_url: str, redis_url: str, project: Path) -> dict[str, str]:
    """The environment an operator's shell would have: no SP_/PYTHON variables from the test run."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update(
        {
            "SP_DATABASE_URL": database_url,
            "SP_REDIS_URL": redis_url,
            "SP_CONFIG": str(project / "services/scheduler/config.yaml"),
            "SP_PROFILE": str(project / "services/scheduler/profiles/dev.yaml"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def build_plain_venv(work: Path) -> Path:
    """Build the wheel and install it, with no extras, into a new virtualenv; return its sp-scheduler."""
    dist = work / "dist"
    # Built from a copy: setuptools builds in the source tree, and a stale build/ there can carry
    # modules that no longer exist into the wheel.
    source = work / "source"
    left_out = shutil.ignore_patterns(*SOURCE_LEFT_OUT)

    def ignore(directory: str, names: list[str]) -> set[str]:
        # The site the jobs write (web/ at the top) is output, not source.
        top = {"web"} if Path(directory) == ROOT else set()
        return set(left_out(directory, names)) | (top & set(names))

    shutil.copytree(ROOT, source, ignore=ignore)
    step("building the wheel")
    run([BASE_PYTHON, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)])
    wheels = sorted(dist.glob("sp_scheduler-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"check-install: expected one wheel in {dist}, found {[w.name for w in wheels]}")
    venv = work / "venv"
    step(f"installing {wheels[0].name} without extras into a fresh virtualenv")
    run([BASE_PYTHON, "-m", "venv", str(venv)])
    run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", str(wheels[0])])
    return venv / "bin/sp-scheduler"


@contextmanager
def process(name: str, args: Sequence[str], env: dict[str, str], cwd: Path, log_dir: Path) -> Iterator[Path]:
    """A long-running sp-scheduler process in its own session; SIGTERM then SIGKILL on the way out."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            list(args), cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log_path
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)
        if popen.returncode not in (0, -signal.SIGTERM):
            print(log_path.read_text(errors="replace"), file=sys.stderr)


def wait_for_line(log_path: Path, marker: str, timeout: float, what: str) -> None:
    def seen() -> bool:
        return marker in log_path.read_text(errors="replace")

    try:
        wait_until(seen, timeout=timeout, interval=0.2, message=what)
    except AssertionError as exc:
        raise SystemExit(f"check-install: {exc}\n{log_path.read_text(errors='replace')}") from None


def check(cli: Path, env: dict[str, str], project: Path, log_dir: Path) -> None:
    step("sp-scheduler db migrate")
    run([str(cli), "db", "migrate"], env=env, cwd=project)
    with ExitStack() as stack:
        worker_log = stack.enter_context(process("worker", [str(cli), "worker", "-c", "1"], env, project, log_dir))
        wait_for_line(worker_log, " ready.", 60, "the worker did not become ready")
        beat_log = stack.enter_context(process("beat", [str(cli), "beat"], env, project, log_dir))
        wait_for_line(beat_log, "beat took the lead", 60, "beat did not take the lead")
        step(f"sp-scheduler jobs run {MANUAL_JOB} --wait")
        result = run(
            [str(cli), "jobs", "run", MANUAL_JOB, "--wait", "--timeout", "120", "--json"], env=env, cwd=project
        )
        records = json.loads(result.stdout)
        if [record["status"] for record in records] != ["succeeded"]:
            raise SystemExit(f"check-install: manual run did not succeed: {result.stdout}")
        step(f"waiting for a scheduled {SCHEDULED_JOB} slot in the ledger")

        def scheduled_slot() -> bool:
            history = run(
                [str(cli), "jobs", "history", "--job", SCHEDULED_JOB, "--status", "succeeded", "--json"],
                env=env,
                cwd=project,
            )
            return any(row["trigger"] == "schedule" for row in json.loads(history.stdout))

        try:
            wait_until(scheduled_slot, timeout=60, interval=0.5, message="no scheduled slot was recorded")
        except AssertionError as exc:
            raise SystemExit(f"check-install: {exc}\n{beat_log.read_text(errors='replace')}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory (printed) for inspection")
    options = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sp-check-install-"))
    try:
        cli = build_plain_venv(work)
        project = work / "project"  # an operator's directory: the services/ tree, nothing importable
        shutil.copytree(ROOT / "services", project / "services")
        log_dir = work / "logs"
        log_dir.mkdir()
        with ExitStack() as stack:
            postgres = stack.enter_context(servers.postgres_server(work / "postgres"))
            database_url = stack.enter_context(servers.scratch_database(postgres, migrated=False))
            redis_url = stack.enter_context(
                servers.leased_redis_db(stack.enter_context(servers.redis_server(work / "redis")))
            )
            servers.flush_redis_db(redis_url)
            check(cli, plain_env(database_url, redis_url, project), project, log_dir)
        step(f"passed in {time.monotonic() - started:.0f} s")
    finally:
        if options.keep:
            step(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
