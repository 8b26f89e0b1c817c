"""What one ledger statement per run costs, on one connection, without Celery around it.

    python bench/ledger_statement.py [--calls 3000] [--rounds 3]

The worker-overhead bench compares whole runs; this one prices the statement every run needs, so a
reader can tell what Postgres costs from what sp-scheduler's Python costs. Each statement is called
in a loop on one autocommit connection, as a worker process calls its claim:

- `SELECT 1`: the round trip alone.
- one row inserted: the least a row-per-run ledger can cost (one commit, the ledger's indexes).
- the claim carrying the previous run's outcome (`sp_claim_run_after`), called with raw psycopg.
- the same claim through `store.claim_run`, sp-scheduler's Python wrapper (arguments, JSON, rows).

Prints, per call: wall time, this process's CPU and, when Postgres runs on this machine, the server
backend's CPU (from /proc). Honours SP_LEDGER_SYNC_COMMIT=off like the ledger does. Needs Postgres:
SP_BENCH_POSTGRES_URL, or the local default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import RunOutcome, claim_run  # noqa: E402
from tests.support.servers import scratch_database  # noqa: E402

CLAIM_AFTER = (
    "SELECT c.outcome, c.reason, (c.run).* FROM sp_claim_run_after(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) AS c"
)
INSERT_ROW = (
    "INSERT INTO sp_job_runs (id, job_name, trigger, status, started_at, worker, lease_expires_at, params)"
    " VALUES (%s, 'noop', 'manual', 'running', clock_timestamp(), 'bench', clock_timestamp() + interval '30 s', '{}')"
)


def backend_cpu(pid: int) -> float | None:
    """CPU seconds a local Postgres backend has used; None when it is not on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Statements:
    """The four statements, each a callable of no arguments that makes one call."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.previous = uuid.uuid4()
        conn.execute(
            "SELECT c.outcome FROM sp_claim_run(%s, 'noop', 'manual', NULL, '{}', 'bench', 30, 'allow', true, false) c",
            (self.previous,),
        )

    def select_one(self) -> None:
        self.conn.execute("SELECT 1").fetchall()

    def insert_row(self) -> None:
        self.conn.execute(INSERT_ROW, (uuid.uuid4(),))

    def claim_raw(self) -> None:
        run_id = uuid.uuid4()
        outcome = Jsonb([{"id": str(self.previous), "status": "succeeded", "elapsed": 0.001}])
        claim = (run_id, "noop", "manual", None, Jsonb({}), "bench", 30.0, "allow", True, False)
        self.conn.execute(CLAIM_AFTER, (outcome, Jsonb([]), *claim)).fetchall()
        self.previous = run_id

    def claim_wrapped(self) -> None:
        run_id = str(uuid.uuid4())
        claim_run(
            self.conn,
            run_id=run_id,
            job_name="noop",
            trigger="manual",
            scheduled_for=None,
            params={},
            worker="bench",
            lease_seconds=30.0,
            overlap="allow",
            enabled=True,
            finishing=[RunOutcome(str(self.previous), "succeeded", None, elapsed_seconds=0.001)],
        )
        self.previous = uuid.UUID(run_id)


def measure(call: Callable[[], None], calls: int, pid: int) -> tuple[float, float, float | None]:
    """Per call: wall seconds, this process's CPU seconds, the backend's CPU seconds (or None)."""
    server_before = backend_cpu(pid)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_after = backend_cpu(pid)
    server = None if server_before is None or server_after is None else (server_after - server_before) / calls
    return wall / calls, cpu / calls, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    sync = os.environ.get("SP_LEDGER_SYNC_COMMIT", "on")
    results: dict[str, list[tuple[float, float, float | None]]] = {}
    with scratch_database(server, migrated=True) as url, psycopg.connect(url, autocommit=True) as conn:
        if sync == "off":
            conn.execute("SET synchronous_commit = off")
        pid = conn.info.backend_pid
        statements = Statements(conn)
        sides = {
            "SELECT 1": statements.select_one,
            "insert one run row": statements.insert_row,
            "claim + outcome, raw": statements.claim_raw,
            "claim + outcome, store": statements.claim_wrapped,
        }
        for _ in range(options.rounds):
            for label, call in sides.items():
                results.setdefault(label, []).append(measure(call, options.calls, pid))
    print(f"calls={options.calls} rounds={options.rounds} synchronous_commit={sync}; medians, microseconds per call")
    print(f"{'statement':24} {'wall':>7} {'client CPU':>11} {'server CPU':>11}")
    for label, rounds in results.items():
        wall = statistics.median(r[0] for r in rounds) * 1e6
        cpu = statistics.median(r[1] for r in rounds) * 1e6
        servers = [r[2] for r in rounds if r[2] is not None]
        server_text = f"{statistics.median(servers) * 1e6:11.0f}" if servers else f"{'n/a':>11}"
        print(f"{label:24} {wall:7.0f} {cpu:11.0f} {server_text}")


if __name__ == "__main__":
    main()
