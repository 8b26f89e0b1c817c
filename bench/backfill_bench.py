"""What `jobs backfill` costs for a range of N slots, end to end and by phase.

    python bench/backfill_bench.py [--slots 1000] [--repeat 5]

On a scratch database and a leased Redis database (its own queue, deleted afterwards), for a job
with a per-minute schedule in Europe/Berlin: the `sp-scheduler jobs backfill` command as a process
(interpreter start included) queueing N slots, then a `--dry-run` of the same range once every slot
is held; and, in this process, each phase: enumerating the slots, the one INSERT that queues them,
publishing the N messages, and reading the holders of N held slots. Medians of --repeat runs, each on
a fresh range. Needs Postgres and Redis: SP_BENCH_POSTGRES_URL / SP_REDIS_URL, or the local defaults.
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
from typing import Any

import psycopg
import redis
from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.backfill import range_slots  # noqa: E402
from sp_scheduler.celery_app import configured_app  # noqa: E402
from sp_scheduler.cron import CronExpression  # noqa: E402
from sp_scheduler.messages import RunRequest, send_run  # noqa: E402
from sp_scheduler.settings import Settings  # noqa: E402
from sp_scheduler.store import connect, enqueue_backfill, slot_holders  # noqa: E402
from tests.support.processes import service_env, write_config  # noqa: E402
from tests.support.servers import leased_redis_db, scratch_database  # noqa: E402

ZONE = "Europe/Berlin"
SCHEDULE = "0 * * * * *"


class Stopwatch:
    """Per-phase wall times over the rounds."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self._label = ""
        self._started = 0.0

    def start(self, label: str) -> None:
        self._label, self._started = label, time.perf_counter()

    def stop(self) -> None:
        self.times.setdefault(self._label, []).append(time.perf_counter() - self._started)


def one_round(
    watch: Stopwatch,
    conn: psycopg.Connection[Any],
    app: Celery,
    env: dict[str, str],
    queue: str,
    start: datetime,
    n: int,
) -> None:
    """The command on one fresh range, then each phase in this process on another."""
    end = start + timedelta(minutes=n - 1)
    command = [sys.executable, "-m", "sp_scheduler", "jobs", "backfill", "noop", "--json"]
    command += ["--from", start.isoformat(), "--to", end.isoformat()]
    watch.start("command, queueing N slots")
    subprocess.run(command, env=env, check=True, capture_output=True)
    watch.stop()
    watch.start("command --dry-run, N held")
    subprocess.run([*command, "--dry-run"], env=env, check=True, capture_output=True)
    watch.stop()

    start, end = start + timedelta(days=1), end + timedelta(days=1)
    watch.start("enumerate N slots (Europe/Berlin)")
    slots = range_slots(CronExpression.parse(SCHEDULE, ZONE), start, end, n)
    watch.stop()
    watch.start("enqueue_backfill (one INSERT)")
    queued = enqueue_backfill(conn, job_name="noop", slots=slots, params={})
    watch.stop()
    assert len(queued) == n
    watch.start("publish N messages")
    with app.producer_or_acquire() as producer:
        for row in queued:
            send_run(app, RunRequest("noop", "backfill", row.scheduled_for, row.id), queue=queue, producer=producer)
    watch.stop()
    watch.start("slot_holders of N held slots")
    slot_holders(conn, job_name="noop", slots=slots)
    watch.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_server = os.environ.get("SP_REDIS_URL", "redis://127.0.0.1:6379/0")
    queue = f"bench-backfill-{uuid.uuid4().hex[:8]}"
    watch = Stopwatch()
    with (
        scratch_database(server, migrated=True) as url,
        leased_redis_db(redis_server) as redis_url,
        tempfile.TemporaryDirectory() as tmp,
        connect(url, autocommit=True) as conn,
    ):
        entry = {"name": "noop", "extension": "testing", "job": "noop", "schedule": SCHEDULE, "enabled": True}
        config = write_config(Path(tmp) / "config.yaml", [{**entry, "timezone": ZONE, "queue": queue}])
        env = service_env(url, redis_url, config)
        app = configured_app(Settings(database_url=url, redis_url=redis_url, config_path=config))
        try:
            for round_ in range(options.repeat):
                one_round(
                    watch,
                    conn,
                    app,
                    env,
                    queue,
                    datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=2 * round_),
                    options.slots,
                )
        finally:
            redis.Redis.from_url(redis_url).delete(queue)
    load = os.getloadavg()
    print(f"slots={options.slots:,} repeat={options.repeat} load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'phase':34} {'median ms':>9} {'max ms':>8} {'per slot us':>11}")
    for label, times in watch.times.items():
        median = statistics.median(times)
        print(f"{label:34} {median * 1000:9.1f} {max(times) * 1000:8.1f} {median / options.slots * 1e6:11.1f}")


if __name__ == "__main__":
    main()
