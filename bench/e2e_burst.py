"""End to end: N jobs due in the same second every minute, real beat and workers, every run counted in the ledger.

    python bench/e2e_burst.py [--jobs 1000] [--workers 1,2] [--bursts 3] [--concurrency 2] [--cold-lead 5]

For each worker count W in --workers, in one invocation: a scratch ledger (migrated Postgres database,
dropped afterwards) and a private redis-server on a free port (flushed between scenarios), W real
`python -m sp_scheduler worker -c CONCURRENCY` processes started and ready first, then one real
`python -m sp_scheduler beat` with N jobs (the `testing` extension's `noop`) all scheduled
`0 * * * * *`: every job due at second 0 of every minute, the realistic worst case (docs/benchmarks.md).

Beat is started --cold-lead seconds before a minute; the first burst is the first slot it sends (the
one planned, or the next minute's if beat held its entries only after that slot: new entries count
from when they are written), reported apart from the warm ones that follow (`first`); then --bursts
more.
For every burst the ledger says, per slot: rows, distinct jobs, (job, slot) pairs recorded more
than once, jobs with no row, runs not succeeded, how late beat sent the burst (`sent`: its own
"slots sent ... late_ms" log line), the lateness of each run's start (started_at - scheduled_for;
min, p50, p99, max) and the drain (last finished_at - slot). Rows for any
other slot (a burst skipped, or a slot recorded missed) are listed after the table.
Postgres: SP_BENCH_POSTGRES_URL (default the local server).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from beat_lateness import ROOT, private_redis, scratch_database, sleep_until, start, stats_ms, stop, tail

from sp_scheduler import keys
from tests.support.processes import service_env, write_config

SCHEDULE = "0 * * * * *"  # every job at second 0 of every minute
READY_TIMEOUT = 120.0  # a worker or the beat must be ready within this long
DRAIN_TIMEOUT = 50.0  # a burst's runs must all be finished this long after the slot
POLL = 0.25  # seconds between two ledger counts while a burst drains


@dataclass(frozen=True)
class Burst:
    """What the ledger holds for one slot."""

    slot: datetime
    rows: int
    jobs: int
    twice: int
    missing: int
    not_succeeded: int
    lateness: list[float]  # started_at - scheduled_for of each run that started, seconds
    drain: float  # last finished_at - slot, seconds (nan when nothing finished)
    sent_late: float = math.nan  # beat's own "slots sent" late_ms for this slot, seconds (nan: no such line)


@dataclass(frozen=True)
class Scenario:
    workers: int
    beat_ready: float  # seconds from beat's start until it led and held every entry
    cold_lead: float  # seconds from beat's start to the first slot it sent
    bursts: list[Burst]
    other_slots: list[tuple[datetime, str, int]]  # slot, status, rows: anything outside the measured slots


def jobs(count: int) -> list[dict[str, object]]:
    return [
        {"name": f"job{i}", "extension": "testing", "job": "noop", "schedule": SCHEDULE, "enabled": True}
        for i in range(count)
    ]


def wait_log(process: object, log: Path, marker: str, what: str, also: object = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while marker not in log.read_text(errors="replace") or (also is not None and not also()):  # type: ignore[operator]
        if process.poll() is not None:  # type: ignore[attr-defined]
            raise SystemExit(f"{what} exited with {process.returncode}:\n{tail(log)}")  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready within {READY_TIMEOUT:g} s:\n{tail(log)}")
        time.sleep(0.05)


def first_slot(cold_lead: float) -> datetime:
    """The first whole minute at least `cold_lead` seconds from now (beat is started `cold_lead` before it)."""
    return datetime.fromtimestamp(math.ceil((time.time() + cold_lead + 1) / 60) * 60, UTC)


def first_sent(conn: psycopg.Connection, started: float) -> datetime:
    """The first slot beat sent (any run recorded), whichever minute that was: a slot that fell before the
    entries were written is not one beat owed."""
    deadline = started + READY_TIMEOUT
    while (row := conn.execute("SELECT min(scheduled_for) FROM sp_job_runs").fetchone()) is None or row[0] is None:
        if time.time() > deadline:
            raise SystemExit(f"no run recorded within {READY_TIMEOUT:g} s of beat's start")
        time.sleep(0.05)
    return row[0]  # type: ignore[no-any-return]


def finished(conn: psycopg.Connection, slot: datetime) -> int:
    row = conn.execute(
        "SELECT count(*) FROM sp_job_runs WHERE scheduled_for = %s AND finished_at IS NOT NULL", (slot,)
    ).fetchone()
    return int(row[0]) if row else 0


def read_burst(conn: psycopg.Connection, slot: datetime, expected: int) -> Burst:
    rows = conn.execute(
        "SELECT job_name, status, started_at, finished_at FROM sp_job_runs"
        " WHERE trigger = 'schedule' AND scheduled_for = %s",
        (slot,),
    ).fetchall()
    per_job: dict[str, int] = {}
    for name, *_ in rows:
        per_job[name] = per_job.get(name, 0) + 1
    wanted = {f"job{i}" for i in range(expected)}
    ends = [end for *_, end in rows if end is not None]
    return Burst(
        slot=slot,
        rows=len(rows),
        jobs=len(per_job),
        twice=sum(1 for count in per_job.values() if count > 1),
        missing=len(wanted - per_job.keys()),
        not_succeeded=sum(1 for _, status, *_ in rows if status != "succeeded"),
        lateness=[(started - slot).total_seconds() for _, _, started, _ in rows if started is not None],
        drain=(max(ends) - slot).total_seconds() if ends else math.nan,
    )


def sent_lateness(beat_log: Path) -> dict[datetime, float]:
    """Beat's own measure of each large burst: how late (s) after its slot the messages were sent, from its
    JSON "slots sent" lines (late_ms), keyed by the slot (the whole second the line's time minus late_ms is in)."""
    out = {}
    for line in beat_log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue  # Celery's banner
        record = json.loads(line)
        if record.get("message") == "slots sent":
            late = float(record["late_ms"]) / 1000
            at = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")) - timedelta(seconds=late)
            out[at.replace(microsecond=0) + timedelta(seconds=round(at.microsecond / 1e6))] = late
    return out


def other_slots(conn: psycopg.Connection, measured: list[datetime]) -> list[tuple[datetime, str, int]]:
    rows = conn.execute(
        "SELECT scheduled_for, status, count(*) FROM sp_job_runs"
        " WHERE NOT (scheduled_for = ANY(%s)) OR scheduled_for IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
        (measured,),
    ).fetchall()
    return [(slot, status, int(count)) for slot, status, count in rows]


def run_scenario(server: str, redis_url: str, tmp: Path, workers: int, options: argparse.Namespace) -> Scenario:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with scratch_database(server) as database_url:
        config = write_config(tmp / f"burst_{workers}.yaml", jobs(options.jobs))
        env = service_env(database_url, redis_url, config)
        processes = []
        try:
            for index in range(workers):
                log = tmp / f"worker_{workers}_{index}.log"
                args = ["worker", "-c", str(options.concurrency), "-n", f"burst{index}@%h"]
                processes.append(start([sys.executable, "-m", "sp_scheduler", *args], env, ROOT, log))
                wait_log(processes[-1], log, " ready.", f"worker {index}")
            slot = first_slot(options.cold_lead)
            sleep_until(slot.timestamp() - options.cold_lead)
            beat_log = tmp / f"beat_{workers}.log"
            started = time.time()
            beat_env = {**env, "SP_LOG_FORMAT": "json"}  # its "slots sent" lines, read back below
            beat = start([sys.executable, "-m", "sp_scheduler", "beat"], beat_env, ROOT, beat_log)
            processes.append(beat)
            wait_log(
                beat, beat_log, "beat took the lead", "beat", lambda: client.zcard(keys.schedule_key()) == options.jobs
            )
            ready = time.time() - started
            with psycopg.connect(database_url, autocommit=True) as conn:
                slot = first_sent(conn, started)
                cold_lead = slot.timestamp() - started
                slots = [slot + timedelta(minutes=k) for k in range(options.bursts + 1)]
                for each in slots:
                    deadline = each.timestamp() + DRAIN_TIMEOUT
                    sleep_until(each.timestamp())
                    while finished(conn, each) < options.jobs and time.time() < deadline:
                        time.sleep(POLL)
                stop(beat)
                for process in processes:
                    stop(process)
                sent = sent_lateness(beat_log)
                bursts = [
                    replace(read_burst(conn, each, options.jobs), sent_late=sent.get(each, math.nan)) for each in slots
                ]
                others = other_slots(conn, slots)
        finally:
            for process in processes:
                stop(process)
    return Scenario(workers, ready, cold_lead, bursts, others)


def report(options: argparse.Namespace, scenarios: list[Scenario]) -> None:
    print()
    print(
        f"{'workers':>7} {'burst':>6} {'slot (UTC)':>10} {'rows':>6} {'jobs':>6} {'twice':>6} {'missing':>8}"
        f" {'failed':>7} | {'sent':>6} | {'start - slot (ms)':^35} | {'drain (s)':>9}"
    )
    print(f"{'':>64}| {'(ms)':>6} | {'min':>8}{'p50':>9}{'p99':>9}{'max':>9} |")
    for scenario in scenarios:
        for index, burst in enumerate(scenario.bursts):
            p50, p99, peak = stats_ms(burst.lateness) if burst.lateness else (math.nan,) * 3
            low = min(burst.lateness, default=math.nan) * 1000
            label = "first" if index == 0 else str(index)
            print(
                f"{scenario.workers:>7} {label:>6} {burst.slot:  %H:%M:%S} {burst.rows:>6} {burst.jobs:>6}"
                f" {burst.twice:>6} {burst.missing:>8} {burst.not_succeeded:>7} | {burst.sent_late * 1000:6.0f}"
                f" | {low:8.0f}{p50:9.0f}{p99:9.0f}{peak:9.0f} | {burst.drain:9.2f}"
            )
    print()
    for scenario in scenarios:
        print(
            f"workers={scenario.workers}: beat started {scenario.cold_lead:.1f} s before the first slot and held every"
            f" entry {scenario.beat_ready:.1f} s after its start"
        )
        for slot, status, count in scenario.other_slots:
            print(f"  rows outside the measured slots: {slot} {status} x{count}")
    total = [burst for scenario in scenarios for burst in scenario.bursts]
    exact = all(b.rows == options.jobs and b.jobs == options.jobs and not b.twice and not b.missing for b in total)
    stray = sum(len(scenario.other_slots) for scenario in scenarios)
    verdict = "YES" if exact and not stray else "NO"
    print(f"every slot recorded exactly once ({options.jobs} rows per burst, none twice, none missing): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs due at second 0 of every minute")
    parser.add_argument("--workers", default="1,2", help="worker process counts, comma-separated, run in turn")
    parser.add_argument("--bursts", type=int, default=3, help="bursts measured after the first")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of each worker")
    parser.add_argument("--cold-lead", type=float, default=5.0, help="beat starts this long (s) before the first slot")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    counts = [int(count) for count in options.workers.split(",")]
    print(
        f"jobs={options.jobs} schedule '{SCHEDULE}' workers={options.workers} (each -c {options.concurrency})"
        f" bursts=1+{options.bursts} cores={os.cpu_count()} load={os.getloadavg()[0]:.2f}"
        f" started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    scenarios = []
    with tempfile.TemporaryDirectory() as directory, private_redis(Path(directory)) as redis_url:
        for workers in counts:
            scenarios.append(run_scenario(server, redis_url, Path(directory), workers, options))
            print(f"  workers={workers} done, load={os.getloadavg()[0]:.2f}", flush=True)
    report(options, scenarios)


if __name__ == "__main__":
    main()
