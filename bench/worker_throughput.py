"""Worker throughput at several concurrencies: bare Celery, the ledger floor and sp-scheduler, back to back.

    python bench/worker_throughput.py [--concurrency 1,2,4] [--runs 1000] [--rounds 3]

For each `-c` in --concurrency, bench/worker_overhead.py's three sides run in turn, --rounds times
(medians reported), all in this one invocation and on one scratch ledger, so the ratios compare
like with like. Besides runs/s and the ratios it prints where the CPU went per run: the worker's
process group and the Postgres backends serving the scratch database (utime + stime from /proc), the
whole machine's busy CPU, and the mean number of those backends inside a statement at a time
(pg_stat_activity sampled every 0.1 s). Postgres is the limit where adding worker processes no
longer adds runs/s while the backends' share of the CPU grows and more of them are active at once
(workers waiting on Postgres rather than running Python). Postgres server processes other than the
backends (WAL writer, checkpointer) are not counted: they are shared with whatever else uses the
server. Needs the same services as worker_overhead.py (its `services()`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_overhead import Measure, measure_sides, services


def median(measures: list[Measure], field: str) -> float:
    return statistics.median(getattr(measure, field) for measure in measures)


def row(label: str, concurrency: int, runs: int, measures: list[Measure]) -> str:
    wall = median(measures, "wall")
    per_run = {field: median(measures, field) / runs * 1000 for field in ("cpu", "worker_cpu", "postgres_cpu")}
    postgres_cores = median(measures, "postgres_cpu") / wall
    return (
        f"{concurrency:>3} {label:<6} {runs / wall:8.0f} {wall / runs * 1000:8.2f}"
        f" {per_run['cpu']:9.2f} {per_run['worker_cpu']:9.2f} {per_run['postgres_cpu']:9.2f}"
        f" {postgres_cores:8.2f} {median(measures, 'postgres_active'):8.2f}"
    )


def waits(measures: list[Measure]) -> str:
    """The three commonest wait events of the active backends over all rounds, as shares of the samples."""
    total: Counter[str] = Counter()
    for measure in measures:
        total.update(measure.postgres_waits)
    seen = sum(total.values())
    return ", ".join(f"{event} {count / seen:.0%}" for event, count in total.most_common(3)) if seen else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,2,4", help="worker -c values, comma-separated")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per -c; medians are reported")
    options = parser.parse_args()
    levels = [int(level) for level in options.concurrency.split(",")]
    print(
        f"runs={options.runs} rounds={options.rounds} concurrency={options.concurrency} cores={os.cpu_count()}"
        f" ledger synchronous_commit={os.environ.get('SP_LEDGER_SYNC_COMMIT', 'on')}"
        f" started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC load={os.getloadavg()[0]:.2f}"
    )
    results: dict[int, tuple[list[Measure], list[Measure], list[Measure]]] = {}
    with services() as (db_url, redis_url, tmp):
        for index, level in enumerate(levels):
            first_day = index * options.rounds  # every round's slots on a day of their own
            results[level] = measure_sides(db_url, redis_url, tmp, options.runs, level, options.rounds, first_day)
            print(f"  -c {level} done, load={os.getloadavg()[0]:.2f}", flush=True)
    report(options.runs, results)


def report(runs: int, results: dict[int, tuple[list[Measure], list[Measure], list[Measure]]]) -> None:
    print()
    print("CPU columns are ms per run; 'pg cores' is the backends' CPU over the wall time; 'active' their mean")
    print(
        f"{'-c':>3} {'side':<6} {'runs/s':>8} {'ms/run':>8} {'machine':>9} {'worker':>9} {'postgres':>9}"
        f" {'pg cores':>8} {'active':>8}"
    )
    for level, (bares, floors, ourses) in results.items():
        for label, measures in (("bare", bares), ("floor", floors), ("ours", ourses)):
            print(row(label, level, runs, measures))
    print()
    print()
    print("what the active backends waited on (share of samples), floor | ours:")
    for level, (_, floors, ourses) in results.items():
        print(f"{level:>3} {waits(floors)} | {waits(ourses)}")
    print()
    print(f"{'-c':>3} {'ours/bare':>10} {'floor/bare':>11} {'ours/floor':>11} {'ours runs per pg CPU s':>22}")
    for level, (bares, floors, ourses) in results.items():
        bare, floor, ours = (median(measures, "wall") for measures in (bares, floors, ourses))
        postgres = median(ourses, "postgres_cpu")
        per_core = f"{runs / postgres:22.0f}" if postgres else f"{'n/a':>22}"
        print(f"{level:>3} {ours / bare:10.2f} {floor / bare:11.2f} {ours / floor:11.2f} {per_core}")
    levels = list(results)
    for before, after in itertools.pairwise(levels):
        gain = median(results[before][2], "wall") / median(results[after][2], "wall")
        print(f"ours from -c {before} to -c {after}: {gain:.2f}x the runs/s")


if __name__ == "__main__":
    main()
