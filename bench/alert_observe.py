"""What the alert state machine adds to each recorded outcome, on the server.

    python bench/alert_observe.py [--calls 20000] [--jobs 1000]

Every outcome goes through `sp_alert_observe` in the transaction that records it. This prices one
call for the common cases against selecting the row alone: a success of a job that is `ok` (one
primary-key read, no write), per row of one statement; and a failure of a job that is already
failing (the state row updated, no event), one statement and commit per outcome as workers record
them, against the same statement writing the run row alone (many updates of one row inside one
transaction would price a chain of row versions no worker builds, and a statement that writes
nothing would leave out the commit every outcome pays anyway). `--jobs` sets how many state rows exist.
Needs Postgres: SP_BENCH_POSTGRES_URL, or the local default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import FinishStatus, finish_run  # noqa: E402
from tests.support.ledger import SLOT, claim  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

PER_ROW = "SELECT count(*) FROM (SELECT {call} FROM sp_job_runs r, generate_series(1, %s) g WHERE r.id = %s) x"


def best_per_row(conn: psycopg.Connection[tuple[int]], call: str, run_id: str, calls: int) -> float:
    """Microseconds per row, best of five statements of `calls` rows each."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        conn.execute(PER_ROW.format(call=call), (calls, run_id)).fetchone()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def per_statement(conn: psycopg.Connection[tuple[int]], calls: Sequence[str], run_id: str, n: int) -> list[float]:
    """Microseconds per autocommit statement that writes the run row (round trip and commit included),
    for each of `calls`; the calls alternate statement by statement, so load and bloat hit them alike,
    and the median is reported."""
    queries = [
        "WITH r AS (UPDATE sp_job_runs SET message = coalesce(message, '') WHERE id = %s RETURNING *)"
        f" SELECT {call} FROM r"
        for call in calls
    ]
    times: list[list[float]] = [[] for _ in queries]
    for _ in range(n):
        for query, spent in zip(queries, times, strict=True):
            started = time.perf_counter()
            conn.execute(query, (run_id,)).fetchone()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) * 1e6 for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="rows per statement (the success case)")
    parser.add_argument("--statements", type=int, default=2000, help="statements per round (the failure case)")
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with scratch_database(server, migrated=True) as url, psycopg.connect(url, autocommit=True) as conn:
        runs = {}
        outcomes: list[tuple[str, FinishStatus]] = [("healthy", "succeeded"), ("broken", "failed")]
        for job, status in outcomes:
            record = claim(conn, job, SLOT).record
            assert record is not None
            finish_run(conn, record.id, status=status, message="", items_processed=0, items_failed=0, duration_ms=1)
            runs[job] = record.id
        conn.execute(
            "INSERT INTO sp_alert_state (job_name, state) SELECT 'job' || g, 'ok' FROM generate_series(1, %s) g",
            (args.jobs,),
        )
        baseline = best_per_row(conn, "r.id", runs["healthy"], args.calls)
        success = best_per_row(conn, "sp_alert_observe(r)", runs["healthy"], args.calls)
        plain, failing = per_statement(
            conn, ["r.id", "sp_alert_observe(r::sp_job_runs)"], runs["broken"], args.statements
        )
        events = conn.execute("SELECT count(*) FROM sp_alert_outbox").fetchone()
    print(f"state rows={args.jobs + 2}; microseconds per outcome")
    print(f"{'the row alone, per row':<48}{baseline:8.2f}")
    print(f"{'+ observe: success of an ok job, per row':<48}{success - baseline:8.2f}")
    print(f"{'the run row written, per statement (median)':<48}{plain:8.2f}")
    print(f"{'+ observe: failure of a failing job (median)':<48}{failing - plain:8.2f}")
    print(f"events queued by the repeated failures: {(events or (0,))[0] - 1} (expected 0)")


if __name__ == "__main__":
    main()
