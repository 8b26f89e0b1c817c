"""The CLI's ledger reads on a ledger of millions of runs: time per read and pages touched.

    python bench/history_bench.py [--rows 2000000] [--calls 20]

Fills a scratch database with finished runs (40 jobs, one run a second, 1 in 47 failed, 1 in 4,999
lost, two jobs that never fail), then times each read `jobs history`, `jobs list`, `jobs show` and
`jobs status` make (tests/support/ledger.py, LEDGER_READS) through the store functions the CLI calls:
median and slowest of `--calls` calls after one warm-up, and the heap and index blocks one call
touches (pg_statio), next to the table's size. Needs Postgres 15+: SP_BENCH_POSTGRES_URL, or the
local default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import connect  # noqa: E402
from tests.support.ledger import LEDGER_READS, fill_ledger, ledger_reads  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

FILL_CHUNK = 500_000  # rows per INSERT, so progress shows and no single statement holds the table long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--calls", type=int, default=20)
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with scratch_database(server, migrated=True) as url, connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        for done in range(0, options.rows, FILL_CHUNK):
            fill_ledger(conn, min(FILL_CHUNK, options.rows - done), first=done + 1)
        size = conn.execute(  # summed over the partitions: the partitioned table itself stores nothing
            "SELECT pg_size_pretty(sum(pg_total_relation_size(p.relid))), sum(c.relpages)::bigint"
            " FROM pg_partition_tree('sp_job_runs') p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf"
        ).fetchone()
        assert size is not None
        print(
            f"rows={options.rows:,} filled in {time.perf_counter() - started:.0f} s;"
            f" sp_job_runs {size[0]} with indexes, {size[1]:,} heap pages; calls={options.calls}"
        )
        print(f"{'read':46} {'rows':>5} {'median ms':>9} {'max ms':>7} {'blocks':>7} {'seq scans':>9}")
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


if __name__ == "__main__":
    main()
