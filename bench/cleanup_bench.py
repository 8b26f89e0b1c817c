"""Cleanup jobs on a million-row database: time per job, and how long anything waited on their locks.

    python bench/cleanup_bench.py [--users 1000000] [--batch-size 1000] [--keep]

Seeds a scratch database (on the server in SP_BENCH_POSTGRES_URL, default the local one) with at least
`--users` rows in each job's main table (users, user_sessions, contexts, sp_logs) using `demo seed`'s
generator, then runs cleanup_inactive_sessions, cleanup_empty_contexts, cleanup_anonymous_users and
database_cleanup in turn, in-process, exactly as a worker would. While each job runs:

- probe threads act like the application on the rows the job is cleaning (update a session being
  expired, post a message into an empty context being deleted, sign in an anonymous user being
  deleted, write log lines, touch expired tokens), every statement under `lock_timeout = 1s`, and
  record how long each took: a statement blocked behind the job for more than a second fails;
- a sampler polls pg_stat_activity every 20 ms for any backend waiting on a lock, and for the age of
  the job's open transaction.

Printed per job: rows acted on, wall time, rows/s, the longest batch transaction (row locks are held
from a batch's first statement to its commit, so this is the longest any row lock was held), the
worst probe statement, probe statements over 1 s, and the longest lock wait the sampler saw. The
probes' successful writes are checked afterwards: a message or a session the application managed to
add must never be deleted by the job that raced it. Method and results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler import Job, JobContext  # noqa: E402
from sp_scheduler.demo import APPLICATION_TABLES, SeedPlan, seed  # noqa: E402
from sp_scheduler.params import check_params, resolve_params  # noqa: E402
from sp_scheduler.store import connect, migrate  # noqa: E402
from tests.support.servers import with_database  # noqa: E402
from workers.core.batching import DEFAULT_BATCH_MS, DEFAULT_BATCH_SIZE  # noqa: E402
from workers.core.jobs import (  # noqa: E402
    CleanupAnonymousUsers,
    CleanupEmptyContexts,
    CleanupInactiveSessions,
    DatabaseCleanup,
)

JOB_APPLICATION = "cleanup-bench-job"
LOCK_LIMIT_S = 1.0
PROBE_PAUSE_S = 0.005  # pacing between one probe's statements, so probes do not starve the job of CPU
SAMPLE_EVERY_S = 0.02
TARGETS = 5000


@dataclass
class ProbeStats:
    """Latencies of one probe's statements, and what happened to them."""

    name: str
    latencies: list[float] = field(default_factory=list)
    timeouts: int = 0  # waited more than LOCK_LIMIT_S for a lock
    lost_races: int = 0  # the row was gone (deleted by the job) by the time the statement ran
    written: list[Any] = field(default_factory=list)  # keys of rows the probe managed to add


@dataclass
class Sample:
    max_lock_wait_s: float = 0.0
    max_job_xact_s: float = 0.0
    samples: int = 0


class Probe(threading.Thread):
    """Runs `statement(conn, target)` against random targets until stopped, timing each statement."""

    def __init__(self, url: str, stats: ProbeStats, targets: list[Any], action: Callable[..., Any]) -> None:
        super().__init__(daemon=True, name=stats.name)
        self.url, self.stats, self.targets, self.action = url, stats, targets, action
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '1s'")
            while not self.stop.is_set():
                target = random.choice(self.targets) if self.targets else None
                began = time.perf_counter()
                try:
                    written = self.action(conn, target)
                except errors.LockNotAvailable:
                    self.stats.timeouts += 1
                except errors.ForeignKeyViolation:
                    self.stats.lost_races += 1
                else:
                    if written is not None:
                        self.stats.written.append(written)
                self.stats.latencies.append(time.perf_counter() - began)
                time.sleep(PROBE_PAUSE_S)


class Sampler(threading.Thread):
    """Polls pg_stat_activity: the longest lock wait of any backend, the age of the job's transaction."""

    QUERY = (
        "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start))"
        "          FILTER (WHERE wait_event_type = 'Lock'), 0),"
        "       coalesce(max(extract(epoch FROM clock_timestamp() - xact_start))"
        "          FILTER (WHERE application_name = %s AND state <> 'idle' AND query NOT ILIKE 'VACUUM%%'), 0)"
        " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="sampler")
        self.url = url
        self.sample = Sample()
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(SAMPLE_EVERY_S):
                row = conn.execute(self.QUERY, (JOB_APPLICATION,)).fetchone()
                if row:
                    self.sample.max_lock_wait_s = max(self.sample.max_lock_wait_s, float(row[0]))
                    self.sample.max_job_xact_s = max(self.sample.max_job_xact_s, float(row[1]))
                self.sample.samples += 1


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def ids(url: str, query: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(query, (TARGETS,)).fetchall()]


# -- what the application does while each job runs ---------------------------------------------------------


def touch_session(conn: psycopg.Connection[Any], target: Any) -> None:
    conn.execute("UPDATE user_sessions SET user_agent = user_agent WHERE id = %s", (target,))


def post_message(conn: psycopg.Connection[Any], target: Any) -> Any:
    row = conn.execute(
        "INSERT INTO context_messages (context_id, role, content) VALUES (%s, 'user', 'probe') RETURNING context_id",
        (target,),
    ).fetchone()
    return row[0] if row else None


def sign_in(conn: psycopg.Connection[Any], target: Any) -> Any:
    row = conn.execute("INSERT INTO user_sessions (user_id) VALUES (%s) RETURNING user_id", (target,)).fetchone()
    return row[0] if row else None


def write_log(conn: psycopg.Connection[Any], target: Any) -> None:
    conn.execute("INSERT INTO sp_logs (level, logger, message) VALUES ('INFO', 'bench.probe', 'probe line')")


def touch_token(conn: psycopg.Connection[Any], target: Any) -> None:
    conn.execute("UPDATE oauth_tokens SET revoked_at = revoked_at WHERE id = %s", (target,))


@dataclass(frozen=True)
class Scenario:
    job: Job
    probes: tuple[tuple[str, str, Callable[..., Any]], ...]  # (name, target query, action)
    survivors: str | None = None  # rows every successful write must have kept: SELECT count(*) ... = ANY(%s)


SCENARIOS = (
    Scenario(
        CleanupInactiveSessions(),
        (
            (
                "touch idle session",
                "SELECT id FROM user_sessions WHERE ended_at IS NULL AND last_activity_at < now() - interval '1 hour'"
                " ORDER BY random() LIMIT %s",
                touch_session,
            ),
            (
                "touch old ended session",
                "SELECT id FROM user_sessions WHERE ended_at < now() - interval '7 days' ORDER BY random() LIMIT %s",
                touch_session,
            ),
        ),
    ),
    Scenario(
        CleanupEmptyContexts(),
        (
            (
                "message into empty context",
                "SELECT c.id FROM contexts c WHERE c.created_at < now() - interval '24 hours'"
                " AND NOT EXISTS (SELECT 1 FROM context_messages m WHERE m.context_id = c.id)"
                " ORDER BY random() LIMIT %s",
                post_message,
            ),
        ),
        survivors="SELECT count(*) FROM contexts WHERE id = ANY(%s)",
    ),
    Scenario(
        CleanupAnonymousUsers(),
        (
            (
                "sign in old anonymous user",
                "SELECT u.id FROM users u WHERE u.is_anonymous AND u.upgraded_at IS NULL"
                " AND u.created_at < now() - interval '30 days' ORDER BY random() LIMIT %s",
                sign_in,
            ),
        ),
        survivors="SELECT count(*) FROM users WHERE id = ANY(%s)",
    ),
    Scenario(
        DatabaseCleanup(),
        (
            ("write log line", "SELECT 1 LIMIT %s", write_log),
            (
                "touch expired token",
                "SELECT id FROM oauth_tokens WHERE expires_at < now() ORDER BY random() LIMIT %s",
                touch_token,
            ),
        ),
    ),
)


async def run_job(url: str, job: Job, batch_size: int | None) -> tuple[Any, float, list[logging.LogRecord]]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=1, max_size=2, kwargs={"application_name": JOB_APPLICATION}, open=False
    )
    await pool.open(wait=True)
    logger = logging.Logger(f"bench.{job.name}")  # noqa: LOG001 - private, like the runner's per-run loggers
    collect = Collect()
    logger.addHandler(collect)
    given = {"batch_size": batch_size} if batch_size else {}
    parameters = resolve_params(job.parameters, check_params(job.name, job.parameters, given))
    ctx = JobContext(job.name, str(uuid.uuid4()), "manual", logger, parameters=parameters, pool=pool)
    began = time.perf_counter()
    try:
        result = await job.execute(ctx)
    finally:
        await pool.close()
    return result, time.perf_counter() - began, collect.records


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_job(url: str, scenario: Scenario, batch_size: int | None) -> dict[str, Any]:
    probes = []
    for name, target_query, action in scenario.probes:
        targets = ids(url, target_query)
        probes.append(Probe(url, ProbeStats(name), targets, action))
    sampler = Sampler(url)
    threads: list[Probe | Sampler] = [*probes, sampler]
    for thread in threads:
        thread.start()
    result, seconds, records = asyncio.run(run_job(url, scenario.job, batch_size))
    for thread in threads:
        thread.stop.set()
    for thread in threads:
        thread.join(timeout=10)
    longest_batch_ms = max(
        (float(getattr(r, "longest_batch_ms", 0.0)) for r in records if r.getMessage() == "maintenance rule applied"),
        default=0.0,
    )
    vacuum_ms = {
        getattr(r, "table", "?"): float(getattr(r, "ms", 0.0)) for r in records if r.getMessage() == "table vacuumed"
    }
    latencies = [s for probe in probes for s in probe.stats.latencies]
    survivors_ok = True
    if scenario.survivors:
        written = list({key for probe in probes for key in probe.stats.written})
        with psycopg.connect(url) as conn:
            row = conn.execute(scenario.survivors, (written,)).fetchone()
        survivors_ok = row is not None and int(row[0]) == len(written)
    return {
        "job": scenario.job.name,
        "ok": result.ok,
        "rows": result.items_processed,
        "seconds": seconds,
        "message": result.message,
        "longest_batch_ms": longest_batch_ms,
        "vacuum_ms": vacuum_ms,
        "probe_statements": len(latencies),
        "probe_max_ms": max(latencies, default=0.0) * 1000,
        "probe_p99_ms": percentile(latencies, 0.99) * 1000,
        "probe_median_ms": (statistics.median(latencies) if latencies else 0.0) * 1000,
        "probe_timeouts": sum(probe.stats.timeouts for probe in probes),
        "lost_races": sum(probe.stats.lost_races for probe in probes),
        "writes_kept": sum(len(set(probe.stats.written)) for probe in probes) if scenario.survivors else None,
        "survivors_ok": survivors_ok,
        "sampler_max_lock_wait_ms": sampler.sample.max_lock_wait_s * 1000,
        "sampler_max_job_xact_ms": sampler.sample.max_job_xact_s * 1000,
        "samples": sampler.sample.samples,
    }


def prepare(server_url: str, users: int) -> str:
    name = f"sp_bench_cleanup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    with connect(url, autocommit=True) as conn:
        migrate(conn)
    plan = SeedPlan(
        users=users,
        sessions=users,
        contexts=users,
        oauth_codes=users // 5,
        oauth_tokens=users // 2,
        logs=users,
        content=100,
    )
    with connect(url) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        conn.commit()
        began = time.perf_counter()
        report = seed(
            conn, plan, rebuild=(*APPLICATION_TABLES, "sp_logs"), skip_triggers=bool(superuser and superuser[0])
        )
        seeded = time.perf_counter() - began
    total = sum(report.rows.values())
    print(f"seeded {total:,} rows in {seeded:.1f} s ({total / seeded:,.0f} rows/s):")
    for table, count in report.rows.items():
        print(f"  {table:<26} {count:>10,}")
    began = time.perf_counter()
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")  # a live database has its visibility map and statistics
    print(f"vacuum analyze after seeding: {time.perf_counter() - began:.1f} s")
    return url


def drop(server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="rows in each job's main table")
    parser.add_argument("--batch-size", type=int, help="the jobs' batch_size parameter (default: theirs)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = prepare(server, args.users)
    results = []
    try:
        for scenario in SCENARIOS:
            result = bench_job(url, scenario, args.batch_size)
            results.append(result)
            print(f"\n{result['job']}: {'ok' if result['ok'] else 'FAILED'}: {result['message']}")
            for table, ms in result["vacuum_ms"].items():
                print(
                    f"  VACUUM (ANALYZE) {table}: {ms / 1000:.1f} s (SHARE UPDATE EXCLUSIVE: blocks no reads or writes)"
                )
    finally:
        if not args.keep:
            drop(server, url)
        else:
            print(f"kept {url}")
    size = args.batch_size or f"{DEFAULT_BATCH_SIZE} (default)"
    print(
        f"\nbatch size at most {size}, aimed at {DEFAULT_BATCH_MS} ms; probes under lock_timeout = {LOCK_LIMIT_S:g} s\n"
    )
    header = (
        f"{'job':<26} {'rows':>9} {'time s':>7} {'rows/s':>8} {'batch max ms':>12} {'probe n':>8}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>1s':>4} {'lock wait ms':>12} {'xact ms':>8} {'writes kept':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        kept = "-" if r["writes_kept"] is None else f"{r['writes_kept']}{'' if r['survivors_ok'] else ' LOST'}"
        print(
            f"{r['job']:<26} {r['rows']:>9,} {r['seconds']:>7.1f} {r['rows'] / r['seconds']:>8,.0f}"
            f" {r['longest_batch_ms']:>12.0f} {r['probe_statements']:>8,} {r['probe_median_ms']:>7.1f}"
            f" {r['probe_p99_ms']:>7.1f} {r['probe_max_ms']:>7.0f} {r['probe_timeouts']:>4}"
            f" {r['sampler_max_lock_wait_ms']:>12.0f} {r['sampler_max_job_xact_ms']:>8.0f} {kept:>11}"
        )
    worst = max(max(r["longest_batch_ms"], r["probe_max_ms"], r["sampler_max_lock_wait_ms"]) for r in results)
    limit_ms = LOCK_LIMIT_S * 1000
    problems = [
        f"{r['job']}: {why}"
        for r in results
        for why, bad in (
            ("the job failed", not r["ok"]),
            (f"{r['probe_timeouts']} probe statements waited over {limit_ms:.0f} ms", r["probe_timeouts"] > 0),
            ("a probe's successful write was deleted", not r["survivors_ok"]),
            (f"a batch held its locks {r['longest_batch_ms']:.0f} ms", r["longest_batch_ms"] >= limit_ms),
            (f"a probe statement took {r['probe_max_ms']:.0f} ms", r["probe_max_ms"] >= limit_ms),
        )
        if bad
    ]
    print(f"\nlongest lock held or waited for: {worst:.0f} ms (limit {limit_ms:.0f} ms)")
    print("PASS" if not problems else "FAIL: " + "; ".join(problems))
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
