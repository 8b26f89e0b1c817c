"""The dashboard's server time with 1,000 jobs and a large ledger: the jobs page and a job's history page.

    python bench/dashboard_bench.py [--rows 1000000] [--jobs 1000] [--requests 20]
    python bench/dashboard_bench.py --rows 10000000        # the full figure

Fills a scratch database with finished runs by Postgres itself (tests/support/ledger.py, as
bench/history_bench.py: `--jobs` jobs in turn, one run a second, 1 in 47 failed), configures the
same jobs (every five minutes), then requests each page `--requests` times through the ASGI app in
this process (Starlette's TestClient: no network, no browser) after one warm-up, and prints the
median and slowest time next to the target (200 ms each): MET or NOT MET. Needs Postgres 15+
(SP_BENCH_POSTGRES_URL, or the local default); Redis is not contacted by these pages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.testclient import TestClient  # noqa: E402

from sp_scheduler.dashboard.app import create_app  # noqa: E402
from sp_scheduler.settings import Settings  # noqa: E402
from sp_scheduler.store import connect  # noqa: E402
from sp_scheduler.store.latest import rebuild_latest  # noqa: E402
from tests.support.ledger import fill_ledger  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

FILL_CHUNK = 500_000
TARGET_MS = 200.0


def write_config(path: Path, jobs: int) -> None:
    entries = [
        {"name": f"job-{n}", "extension": "testing", "job": "noop", "schedule": "0 */5 * * * *", "enabled": True}
        for n in range(jobs)
    ]
    document = {"scheduler": {"enabled": True, "extensions": ["tests.support.jobs:extension"], "jobs": entries}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def timed(client: TestClient, path: str, requests: int) -> list[float]:
    """Milliseconds per request after one warm-up; every answer must be a 200."""
    assert client.get(path).status_code == 200, path
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, path
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with (
        scratch_database(server, migrated=True) as url,
        connect(url, autocommit=True) as conn,
        tempfile.TemporaryDirectory() as scratch,
    ):
        started = time.perf_counter()
        for done in range(0, options.rows, FILL_CHUNK):
            fill_ledger(conn, min(FILL_CHUNK, options.rows - done), first=done + 1, jobs=options.jobs, summary=False)
        rebuild_latest(conn)  # the job summary, filled once as `db migrate` fills it (not row by row)
        print(f"rows={options.rows:,} jobs={options.jobs} filled in {time.perf_counter() - started:.0f} s;"
              f" requests={options.requests}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        config = Path(scratch) / "config.yaml"
        write_config(config, options.jobs)
        env = {"SP_DATABASE_URL": url, "SP_REDIS_URL": "redis://127.0.0.1:6379/0", "SP_CONFIG": str(config)}
        with TestClient(create_app(Settings.from_env(env))) as client:
            print(f"{'page':32} {'median ms':>9} {'max ms':>7}  target < {TARGET_MS:.0f} ms")
            for label, path in (("jobs page /", "/"), ("job history page /jobs/job-5", "/jobs/job-5")):
                times = timed(client, path, options.requests)
                median, slowest = statistics.median(times), max(times)
                verdict = "MET" if median < TARGET_MS and slowest < TARGET_MS else "NOT MET"
                print(f"{label:32} {median:9.1f} {slowest:7.1f}  {verdict}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
