"""The CLI's ledger reads on a ledger of millions of runs: time per read, pages touched, bytes stored.

    python bench/history_bench.py [--rows 2000000] [--weeks 5] [--calls 20] [--log-lines 1000000]

Fills a scratch database with finished runs (40 jobs, spread evenly over `--weeks` weeks, 1 in 47
failed, 1 in 4,999 lost, two jobs that never fail; each week in its own partition, as on a live
ledger: the default 30-day retention keeps five), then times each read `jobs history`,
`jobs list`, `jobs show` and `jobs status` make (tests/support/ledger.py, LEDGER_READS) through the
store functions the CLI calls: median and slowest of `--calls` calls after one warm-up, and the heap
and index blocks one call touches (pg_statio). Prints a MET / NOT MET line for the target: every read
under 50 ms. Then the ledger's size per million runs and, with `--log-lines`, per million log lines
(filled the same way, one line in three with a few structured fields). Needs Postgres 15+:
SP_BENCH_POSTGRES_URL, or the local default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import connect  # noqa: E402
from sp_scheduler.store.latest import rebuild_latest  # noqa: E402
from tests.support.ledger import LEDGER_READS, fill_ledger, ledger_reads  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

FILL_CHUNK = 500_000  # rows per INSERT, so progress shows and no single statement holds the table long
TARGET_MS = 50.0

_FILL_LOGS = """
INSERT INTO sp_logs (created_at, level, logger, message, job_name, run_id, fields)
SELECT now() - i * interval '100 ms', CASE WHEN i %% 50 = 0 THEN 'WARNING' ELSE 'INFO' END, 'myapp.jobs',
       'processed batch ' || i || ' of the nightly export (' || (i %% 997) || ' records)',
       'job-' || (i %% 40), md5(i::text)::uuid,
       CASE WHEN i %% 3 = 0 THEN jsonb_build_object('records', i %% 997, 'table', 'orders') ELSE '{}' END
  FROM generate_series(1, %(rows)s) AS i
"""


def table_bytes(conn: psycopg.Connection[Any], table: str) -> tuple[int, int]:
    """(bytes with indexes and TOAST, heap pages), summed over the table's partitions."""
    row = conn.execute(
        "SELECT sum(pg_total_relation_size(p.relid))::bigint, sum(c.relpages)::bigint"
        " FROM pg_partition_tree(%s::regclass) p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf",
        (table,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def per_million(total: int, rows: int) -> str:
    return f"{total / rows:.0f} bytes each, {total / rows:.0f} MB per million"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--weeks", type=float, default=5, help="weeks the runs span (one partition each)")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--log-lines", type=int, default=0, help="also fill and size this many log lines")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with scratch_database(server, migrated=True) as url, connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        every = timedelta(weeks=options.weeks) / options.rows
        for done in range(0, options.rows, FILL_CHUNK):
            fill_ledger(conn, min(FILL_CHUNK, options.rows - done), first=done + 1, every=every, summary=False)
        rebuild_latest(conn)  # the job summary, filled once as `db migrate` fills it (not row by row)
        conn.execute("VACUUM (ANALYZE) sp_job_runs")  # as autovacuum leaves a table that is only inserted into
        size, pages = table_bytes(conn, "sp_job_runs")
        row = conn.execute("SELECT count(*) FROM pg_partition_tree('sp_job_runs') WHERE isleaf").fetchone()
        leaves = int(row[0]) if row else 0
        filled = time.perf_counter() - started
        print(
            f"rows={options.rows:,} over {options.weeks:g} weeks, filled in {filled:.0f} s; sp_job_runs"
            f" {size / 1e6:,.0f} MB with indexes, {pages:,} heap pages, {leaves} partitions; calls={options.calls}"
        )
        print(f"{'read':46} {'rows':>5} {'median ms':>9} {'max ms':>7} {'blocks':>7} {'seq scans':>9}")
        slowest = ("", 0.0)
        for label, read in LEDGER_READS.items():
            found = read(conn)
            scans, blocks = ledger_reads(conn)
            read(conn)
            scans_after, blocks_after = ledger_reads(conn)
            times = []
            for _ in range(options.calls):
                start = time.perf_counter()
                read(conn)
                times.append(time.perf_counter() - start)
            print(
                f"{label:46} {len(found):5d} {statistics.median(times) * 1000:9.2f} {max(times) * 1000:7.2f}"
                f" {blocks_after - blocks:7d} {scans_after - scans:9d}"
            )
            if max(times) * 1000 > slowest[1]:
                slowest = (label, max(times) * 1000)
        met = "MET" if slowest[1] < TARGET_MS else "NOT MET"
        print(f"slowest read {slowest[1]:.2f} ms ({slowest[0]}; target: every read under {TARGET_MS:g} ms): {met}")
        print(f"sp_job_runs: {per_million(size, options.rows)}")
        if options.log_lines:
            conn.execute(_FILL_LOGS, {"rows": options.log_lines})
            conn.execute("VACUUM (ANALYZE) sp_logs")
            print(f"sp_logs: {per_million(table_bytes(conn, 'sp_logs')[0], options.log_lines)}")


if __name__ == "__main__":
    main()
