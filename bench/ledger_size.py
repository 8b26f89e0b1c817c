"""Ledger size per run: what sp_job_runs and sp_logs hold on disk for N runs, extrapolated to a million.

    python bench/ledger_size.py [--runs 100000] [--sample 2000]

A real worker (`python -m sp_scheduler worker -c 2`, worker_overhead.py's `bench_ours`) runs --sample
scheduled no-op runs into a scratch ledger; the bench then copies those rows server-side (new ids and
slots, same contents, their log lines with them) until the ledger holds --runs runs, VACUUM ANALYZEs,
and sums pg_total_relation_size over the partitions of each table (heap and TOAST, and indexes,
apart). The runs are the `testing` extension's `noop`: a short message, no traceback, no job log
lines of its own, so a job that logs more or fails with tracebacks costs more per run. Copied rows
are packed tighter than rows that went through claim and finish (no dead tuples), so this is a
floor for a vacuumed ledger. Needs the same services as worker_overhead.py (its `services()`).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_overhead import bench_ours, services

SAMPLE_BASE = datetime(2020, 1, 1, tzinfo=UTC)  # the real runs' first slot; copies follow a sample apart

RUN_COLUMNS = (
    "job_name, trigger, enqueued_at, started_at, finished_at, status, message, items_processed, items_failed,"
    " duration_ms, error, traceback, worker, attempt, lease_expires_at, params, created_at"
)
SHIFTED = {"enqueued_at", "started_at", "finished_at", "lease_expires_at", "created_at"}
COPY_RUNS = f"""
INSERT INTO sp_job_runs (id, scheduled_for, partition_at, {RUN_COLUMNS})
SELECT md5(r.id::text || k)::uuid, r.scheduled_for + k * %(span)s, r.partition_at + k * %(span)s,
       {", ".join(f"r.{c} + k * %(span)s" if c in SHIFTED else f"r.{c}" for c in RUN_COLUMNS.split(", "))}
  FROM sp_job_runs r CROSS JOIN generate_series(1, %(copies)s) AS k
 WHERE r.scheduled_for >= %(base)s AND r.scheduled_for < %(base)s + %(span)s
"""
COPY_LOGS = """
INSERT INTO sp_logs (created_at, level, logger, message, job_name, run_id, fields)
SELECT l.created_at + k * %(span)s, l.level, l.logger, l.message, l.job_name, md5(l.run_id::text || k)::uuid, l.fields
  FROM sp_logs l CROSS JOIN generate_series(1, %(copies)s) AS k
 WHERE l.run_id IS NOT NULL
"""
SIZES = """
SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint,
       coalesce(sum(pg_indexes_size(p.relid)), 0)::bigint
  FROM pg_partition_tree(%s) p WHERE p.isleaf
"""


def count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the ledger when it is measured")
    parser.add_argument("--sample", type=int, default=2_000, help="runs a real worker makes; the rest are copies")
    options = parser.parse_args()
    if options.runs % options.sample:
        raise SystemExit(f"--runs ({options.runs}) must be a multiple of --sample ({options.sample})")
    print(
        f"runs={options.runs:,} from a sample of {options.sample:,} real no-op runs; cores={os.cpu_count()}"
        f" started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC load={os.getloadavg()[0]:.2f}"
    )
    with services() as (db_url, redis_url, tmp), psycopg.connect(db_url, autocommit=True) as conn:
        bench_ours(db_url, redis_url, options.sample, 2, tmp, SAMPLE_BASE)
        lines = count(conn, "SELECT count(*) FROM sp_logs WHERE run_id IS NOT NULL")
        values = {"span": timedelta(seconds=options.sample), "copies": options.runs // options.sample - 1}
        conn.execute(COPY_RUNS, {**values, "base": SAMPLE_BASE})
        conn.execute(COPY_LOGS, values)
        conn.execute("VACUUM ANALYZE sp_job_runs")
        conn.execute("VACUUM ANALYZE sp_logs")
        runs = count(conn, "SELECT count(*) FROM sp_job_runs WHERE trigger = 'schedule'")
        print(f"ledger: {runs:,} runs, {lines / options.sample:.2f} log lines per run in the sample")
        print(f"{'table':<12} {'total MB':>9} {'indexes MB':>11} {'bytes/run':>10} {'MB per 1M runs':>15}")
        totals = 0
        for table in ("sp_job_runs", "sp_logs"):
            row = conn.execute(SIZES, (table,)).fetchone()
            assert row is not None  # an aggregate always returns a row
            total, indexes = int(row[0]), int(row[1])
            totals += total
            print(
                f"{table:<12} {total / 2**20:9.1f} {indexes / 2**20:11.1f} {total / runs:10.0f}"
                f" {total / runs * 1e6 / 2**20:15.0f}"
            )
        print(f"{'both':<12} {totals / 2**20:9.1f} {'':>11} {totals / runs:10.0f} {totals / runs * 1e6 / 2**20:15.0f}")


if __name__ == "__main__":
    main()
