"""A retention pass on a large ledger while workers claim: how long it takes, and what it costs claims.

    python bench/retention_bench.py [--rows 2000000] [--weeks 10] [--claimers 2]

Fills a scratch database with finished runs of 40 jobs spread evenly over the last `--weeks` weeks,
each week in its own partition (as the ledger_retention job would have created them), then measures
the latency of slot claims made by `--claimers` threads (one connection each) for a few seconds
before, and during, a retention pass with the default rules (30 days, 10 runs per job): the pass drops
the weeks past the retention and copies out the few runs the per-job minimum keeps. Prints the pass's
duration and report, and the claims' median, p99 and slowest latency in each phase; the slowest claim
during the pass bounds how long any lock it took held claims up. Needs Postgres 15+:
SP_BENCH_POSTGRES_URL, or the local default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import claim_run, connect, slot_run_id  # noqa: E402
from sp_scheduler.store.partitions import PERIOD, database_now, ensure_partitions, period_start  # noqa: E402
from sp_scheduler.store.retention import Rules, apply_retention  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

_FILL = """
INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, started_at, finished_at, status, message,
                         worker, created_at, partition_at)
SELECT gen_random_uuid(), 'job-' || (i %% 40), 'schedule', at, at, at + interval '20 ms', 'succeeded', 'done',
       'filler:1', at, at
  FROM generate_series(0, %(rows)s - 1) AS i,
       LATERAL (SELECT %(start)s::timestamptz + i * %(step)s::interval AS at) t
"""


class Claimer(threading.Thread):
    """Claims one new slot after another and records each claim's latency, by phase."""

    def __init__(self, url: str, index: int) -> None:
        super().__init__(daemon=True)
        self.url, self.index = url, index
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": []}
        self.stop = threading.Event()

    def run(self) -> None:
        with connect(self.url, autocommit=True) as conn:
            base = database_now(conn)
            n = 0
            while not self.stop.is_set():
                n += 1
                slot = base + timedelta(milliseconds=n)
                job = f"probe-{self.index}"
                started = time.perf_counter()
                claim_run(
                    conn,
                    run_id=slot_run_id(job, slot),
                    job_name=job,
                    trigger="schedule",
                    scheduled_for=slot,
                    params={},
                    worker=f"bench:{self.index}",
                    lease_seconds=30,
                    overlap="skip",
                    enabled=True,
                )
                self.latencies[self.phase].append(time.perf_counter() - started)


def describe(latencies: list[float]) -> str:
    if not latencies:
        return "no claims"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(ordered):6d} claims  median {statistics.median(ordered) * 1000:6.2f} ms"
        f"  p99 {p99 * 1000:6.2f} ms  max {ordered[-1] * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--claimers", type=int, default=2)
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of claims before the pass")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with scratch_database(server, migrated=True) as url, connect(url, autocommit=True) as conn:
        now = database_now(conn)
        first: datetime = period_start(now) - options.weeks * PERIOD
        started = time.perf_counter()
        per_week = options.rows // options.weeks
        for week in range(options.weeks):
            start = first + week * PERIOD
            ensure_partitions(conn, start, ahead=0)
            conn.execute(_FILL, {"rows": per_week, "start": start, "step": PERIOD / per_week})
        conn.execute("ANALYZE sp_job_runs")
        filled = time.perf_counter() - started
        print(f"rows={per_week * options.weeks:,} over {options.weeks} weeks, filled in {filled:.0f} s")

        claimers = [Claimer(url, i) for i in range(options.claimers)]
        for claimer in claimers:
            claimer.start()
        time.sleep(options.baseline)
        for claimer in claimers:
            claimer.phase = "during"
        began = time.perf_counter()
        report = apply_retention(conn, Rules())
        took = time.perf_counter() - began
        for claimer in claimers:
            claimer.stop.set()
            claimer.join()
        left = conn.execute("SELECT count(*) FROM sp_job_runs").fetchone()
        print(f"retention pass: {took:.2f} s; {report.summary()}; {left[0] if left else '?':,} runs left")
        for phase in ("before", "during"):
            merged = [x for claimer in claimers for x in claimer.latencies[phase]]
            print(f"claims {phase:6}: {describe(merged)}")


if __name__ == "__main__":
    main()
