"""A retention pass on a large ledger while workers claim: what it removes, and what it costs claims.

    python bench/retention_bench.py [--rows 2000000] [--weeks 10] [--claimers 2] [--baseline 5] [--pause 0.25]

Fills a scratch database with finished runs of 40 jobs spread evenly over the last `--weeks` weeks,
each week in its own partition (as the ledger_retention job would have created them), then measures
the latency of slot claims made by `--claimers` threads (one connection each, claiming one new slot
after another as fast as they can) for `--baseline` seconds alone, then during one retention pass
with the default rules (30 days, 10 runs per job). With the defaults the pass removes about 1.2 million
runs: the weeks wholly past the cutoff, less the runs the per-job minimum keeps.

Prints the runs removed, each DDL transaction of the pass and how long it took (an attach or a detach
holds the table's lock until it commits, its lock wait included), the claims' median, p99 and slowest
latency in each phase (the slowest claim during the pass bounds how long any lock of the pass held
claims up), and a MET / NOT MET line for each target: the p99 of claims moves by under 5 ms, and no
lock is held (no claim waits) for a second. Needs Postgres 15+: SP_BENCH_POSTGRES_URL, or the local
default.
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
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import claim_run, connect, slot_run_id  # noqa: E402
from sp_scheduler.store.partitions import PERIOD, database_now, ensure_partitions, period_start  # noqa: E402
from sp_scheduler.store.retention import PAUSE, Rules, apply_retention  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

P99_SHIFT_TARGET_MS = 5.0
LOCK_TARGET_MS = 1000.0

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
        self.ready = threading.Event()

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
                self.ready.set()


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def describe(latencies: list[float]) -> str:
    if not latencies:
        return "no claims"
    return (
        f"{len(latencies):6d} claims  median {statistics.median(latencies) * 1000:6.2f} ms"
        f"  p99 {p99(latencies) * 1000:6.2f} ms  max {max(latencies) * 1000:7.2f} ms"
    )


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def count_runs(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM sp_job_runs").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--claimers", type=int, default=2)
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of claims before the pass")
    parser.add_argument("--pause", type=float, default=PAUSE, help="the pass's rest after each drop and batch (s)")
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
        for claimer in claimers:
            claimer.ready.wait()
        time.sleep(options.baseline)  # the phase's length, not a wait for anything
        before_pass = count_runs(conn)
        for claimer in claimers:
            claimer.phase = "during"
        began = time.perf_counter()
        report = apply_retention(conn, Rules(), pause=options.pause)
        took = time.perf_counter() - began
        for claimer in claimers:
            claimer.stop.set()
            claimer.join()
        claimed = sum(len(c.latencies["during"]) for c in claimers)
        removed = before_pass + claimed - count_runs(conn)
        print(f"retention pass: {took:.2f} s (pause {options.pause:g} s), {removed:,} runs removed; {report.summary()}")
        for step in report.steps:
            print(f"  {step.action:6} {step.partition:32} {step.seconds * 1000:8.1f} ms")
        holding = [s for s in report.steps if s.action in ("attach", "detach")]
        longest_hold = max((s.seconds for s in holding), default=0.0) * 1000

        phases = {phase: [x for c in claimers for x in c.latencies[phase]] for phase in ("before", "during")}
        for phase, latencies in phases.items():
            print(f"claims {phase:6}: {describe(latencies)}")
        shift = (p99(phases["during"]) - p99(phases["before"])) * 1000
        slowest = max(phases["during"]) * 1000
        print(
            f"claim p99 moved by {shift:+.2f} ms (target: under {P99_SHIFT_TARGET_MS:g} ms): "
            f"{verdict(shift < P99_SHIFT_TARGET_MS)}"
        )
        print(
            f"longest lock held by a DDL transaction {longest_hold:.1f} ms, slowest claim during the pass"
            f" {slowest:.1f} ms (target: under {LOCK_TARGET_MS:g} ms): "
            f"{verdict(max(longest_hold, slowest) < LOCK_TARGET_MS)}"
        )
        if removed < 1_000_000:
            print(f"note: the pass removed {removed:,} runs, fewer than the million the targets are stated for")


if __name__ == "__main__":
    main()
