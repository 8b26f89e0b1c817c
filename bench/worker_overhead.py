"""Per-run overhead of sp-scheduler's run_job against a bare Celery no-op task, same broker and workers.

    python bench/worker_overhead.py [--runs 500] [--concurrency 2]

Starts real worker processes for each side in turn, publishes N messages, and measures the wall time
from the first publish until the last run is done (ours: every run recorded in Postgres; bare: a
Redis counter the task increments). Prints throughput and per-run overhead, and the ratio.
Needs Postgres and Redis: SP_DATABASE_URL / SP_REDIS_URL, or the local defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.runner import RunRequest  # noqa: E402
from sp_scheduler.settings import Settings  # noqa: E402
from sp_scheduler.store import connect, migrate  # noqa: E402
from sp_scheduler.worker import create_app, send_run  # noqa: E402
from tests.support.processes import service_env, write_config  # noqa: E402

BARE_APP = """
import os, redis
from celery import Celery
app = Celery("bare", broker=os.environ["SP_REDIS_URL"], set_as_current=False)
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True, task_acks_late=True,
                worker_prefetch_multiplier=1, task_default_queue="bare", worker_hijack_root_logger=False)
counter = redis.Redis.from_url(os.environ["SP_REDIS_URL"])

@app.task(name="bare.noop", ignore_result=True)
def noop(key):
    counter.incr(key)
"""


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while " ready." not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log.read_text()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def wait_for(done: object, runs: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while done() < runs:  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("runs did not finish in time")
        time.sleep(0.02)  # both sides poll alike; a busier poll would tax the side it watches


def bench_ours(db_url: str, redis_url: str, runs: int, concurrency: int, tmp: Path, base: datetime) -> float:
    config = write_config(
        tmp / "config.yaml",
        [{"name": "noop", "extension": "testing", "job": "noop", "schedule": "", "enabled": True, "overlap": "allow"}],
    )
    env = service_env(db_url, redis_url, config)
    if "SP_LEDGER_SYNC_COMMIT" in os.environ:  # service_env drops SP_*; let the caller choose
        env["SP_LEDGER_SYNC_COMMIT"] = os.environ["SP_LEDGER_SYNC_COMMIT"]
    log = tmp / "ours.log"
    worker = start(
        [
            sys.executable,
            "-m",
            "sp_scheduler",
            "worker",
            "-c",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        log,
    )
    try:
        wait_ready(log)
        app = create_app(Settings(database_url=db_url, redis_url=redis_url, config_path=config))
        with connect(db_url, autocommit=True) as conn:
            started = time.perf_counter()
            for i in range(runs):
                send_run(app, RunRequest("noop", "schedule", base + timedelta(seconds=i)))

            def done() -> int:
                row = conn.execute(
                    "SELECT count(*) FROM sp_job_runs WHERE status = 'succeeded' AND scheduled_for >= %s", (base,)
                ).fetchone()
                return int(row[0]) if row else 0

            wait_for(done, runs)
            return time.perf_counter() - started
    finally:
        stop(worker)


def bench_bare(redis_url: str, runs: int, concurrency: int, tmp: Path) -> float:
    (tmp / "bare_app.py").write_text(BARE_APP)
    env = {**os.environ, "SP_REDIS_URL": redis_url, "PYTHONPATH": str(tmp)}
    log = tmp / "bare.log"
    worker = start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bare_app",
            "worker",
            "-c",
            str(concurrency),
            "-Q",
            "bare",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        log,
    )
    try:
        wait_ready(log)
        app = Celery("bare", broker=redis_url, set_as_current=False)
        app.conf.update(task_serializer="json")
        client = redis.Redis.from_url(redis_url)
        key = f"bench:{uuid.uuid4().hex}"
        started = time.perf_counter()
        for _ in range(runs):
            app.send_task("bare.noop", args=[key], queue="bare")
        wait_for(lambda: int(client.get(key) or 0), runs)
        return time.perf_counter() - started
    finally:
        stop(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("SP_REDIS_URL", "redis://127.0.0.1:6379/15")
    name = f"sp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        with connect(db_url, autocommit=True) as conn:
            migrate(conn)
        redis.Redis.from_url(redis_url).flushdb()
        with tempfile.TemporaryDirectory() as directory:
            tmp = Path(directory)
            bares, ourses = [], []
            for round_number in range(options.rounds):
                bares.append(bench_bare(redis_url, options.runs, options.concurrency, tmp))
                base = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=round_number)
                ourses.append(bench_ours(db_url, redis_url, options.runs, options.concurrency, tmp, base))
            bare, ours = statistics.median(bares), statistics.median(ourses)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    runs = options.runs
    print(
        f"runs={runs} concurrency={options.concurrency} rounds={options.rounds} (one worker process, prefork;"
        f" ledger synchronous_commit={os.environ.get('SP_LEDGER_SYNC_COMMIT', 'on')})"
    )
    print(
        "per round, ms/run: bare "
        + " ".join(f"{b / runs * 1000:.2f}" for b in bares)
        + " | ours "
        + " ".join(f"{o / runs * 1000:.2f}" for o in ourses)
    )
    print(f"bare celery no-op : {runs / bare:8.0f} runs/s  {bare / runs * 1000:6.2f} ms/run")
    print(
        f"sp-scheduler noop : {runs / ours:8.0f} runs/s  {ours / runs * 1000:6.2f} ms/run"
        "  (claim + lease + outcome + log lines in Postgres)"
    )
    ratio = ours / bare
    print(f"overhead ratio    : {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
