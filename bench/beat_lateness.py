"""Beat fire lateness: how long after its slot each message reaches the broker, ours against stock RedBeat.

    python bench/beat_lateness.py [--sizes 1,100,1000] [--rounds 1] [--redis-url URL] [--cold]

For each size N, N entries are due at the same instant. No worker runs: from just before the slot the
bench polls `LLEN` of the beat's queue about every millisecond, and message k's lateness is the time at
which the queue first held k messages minus the slot instant. Both beats are measured the same way.
Each beat also has one warm-up entry, due 3 s before the slot on the same queue, so the measured slot
is not its first publish (that one pays ~20 ms of lazy imports and connection set-up, as it would
only once in a beat's life); the warm-up message is not counted.

- ours: `python -m sp_scheduler beat` with N jobs (the `testing` extension's `noop`) scheduled
  `S * * * * *`, S being the second 20 s ahead;
- stock: `celery beat -S redbeat.RedBeatScheduler --max-interval 1` with N `crontab(minute="*")`
  entries. Celery's crontab has minute resolution, so a stock slot is always a whole minute.

Each beat is started 20 s before its slot, must have all its entries in Redis 4 s before it, and
is stopped (SIGTERM to its process group) once the messages are in. Redis is a private redis-server on a
free port unless --redis-url names a database (it is flushed before every scenario: never give it one
that tests or people use). Postgres (ours needs a migrated ledger) is a scratch database on the server
in SP_BENCH_POSTGRES_URL (default local), dropped at the end.

`--cold` measures ours only, without the warm-up: the first burst after beat starts (N jobs every
COLD_EVERY seconds, lateness against the slot the messages name).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler import keys  # noqa: E402
from sp_scheduler.store import connect, migrate  # noqa: E402
from sp_scheduler.worker import TASK_NAME  # noqa: E402
from tests.support import free_port  # noqa: E402
from tests.support.processes import service_env, write_config  # noqa: E402

LEAD = 20.0  # a beat is started this long before its slot (ours takes ~8 s to start with 1,000 jobs on a busy box)
LEAD_PER_ENTRY = 0.002  # ...plus this per entry (reading a config of 10,000 jobs takes seconds)...
READY_BEFORE = 4.0  # ...must have every entry in Redis this long before it...
WARMUP_BEFORE = 3  # ...and publishes its warm-up message this long (s) before it
WARMUP = "warmup"
POLL = 0.001  # seconds between two LLEN calls
WATCH_FROM = 1.0  # polling starts this long before the slot, so an early fire shows as negative lateness
COLLECT_TIMEOUT = 60.0  # the last message must arrive within this long after the slot
SETTLE = 1.5  # after the last expected message, watch this long more for duplicates
TARGET_P99_MS = 100.0
TARGET_SIZES = (1000, 10_000)
COLD_EVERY = 10  # --cold: the entries' schedule is every this many seconds

OURS_QUEUE = "bench_ours"
STOCK_QUEUE = "bench_stock"
STOCK_TASK = "bench.noop"
STOCK_SCHEDULE_KEY = "redbeat::schedule"  # RedBeat's default key prefix is "redbeat:"

STOCK_APP = """
import os
from datetime import datetime, timedelta, timezone
from celery import Celery
from celery.schedules import crontab, schedule

app = Celery("stock", broker=os.environ["BENCH_REDIS_URL"], set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_expires=None,  # no celery.backend_cleanup entry: the schedule holds the bench's entries only
    enable_utc=True,
    timezone="UTC",
    redbeat_redis_url=os.environ["BENCH_REDIS_URL"],
    beat_schedule={
        f"job{i}": {
            "task": os.environ["BENCH_TASK"],
            "schedule": crontab(minute="*"),
            "args": [f"job{i}", "schedule", None, None, {}],
            "options": {"queue": os.environ["BENCH_QUEUE"]},
        }
        for i in range(int(os.environ["BENCH_ENTRIES"]))
    },
)
# Hourly, last run an hour before the warm-up instant: due once, at that instant.
app.conf.beat_schedule["warmup"] = {
    "task": os.environ["BENCH_TASK"],
    "schedule": schedule(timedelta(hours=1)),
    "last_run_at": datetime.fromtimestamp(float(os.environ["BENCH_WARMUP_AT"]) - 3600, timezone.utc),
    "args": ["warmup", "schedule", None, None, {}],
    "options": {"queue": os.environ["BENCH_QUEUE"]},
}
"""


# -- processes -----------------------------------------------------------------------------------------------


def lead(entries: int) -> float:
    """How long before its slot a beat of `entries` entries is started."""
    return LEAD + LEAD_PER_ENTRY * entries


def start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (Celery's warm shutdown), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A redis-server of the bench's own on a free port, so no test or person shares its keyspace."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH: install it or pass --redis-url")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = start([*args, "--dir", str(directory)], dict(os.environ), directory, directory / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start:\n{tail(directory / 'redis.log')}") from None
                time.sleep(0.05)
        yield url
    finally:
        stop(process)


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A new, migrated database on `server`, dropped afterwards."""
    name = f"sp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        with connect(url, autocommit=True) as conn:
            migrate(conn)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- measuring -----------------------------------------------------------------------------------------------


def wait_ready(
    process: subprocess.Popen[bytes],
    log: Path,
    marker: str,
    client: redis.Redis,
    schedule_key: str,
    entries: int,
    slot: float,
) -> None:
    """Until `marker` is logged and all entries plus the warm-up are in Redis, at the latest READY_BEFORE the slot."""
    while not (marker in log.read_text(errors="replace") and client.zcard(schedule_key) == entries + 1):
        if process.poll() is not None:
            raise SystemExit(f"beat exited with {process.returncode}:\n{tail(log)}")
        if time.time() > slot - READY_BEFORE:
            raise SystemExit(f"beat not ready {READY_BEFORE:g} s before its slot ({entries} entries):\n{tail(log)}")
        time.sleep(0.05)


def sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


def collect(client: redis.Redis, queue: str, slot: float, expected: int) -> tuple[list[float], float]:
    """Lateness (s) of each message reaching `queue` (the warm-up one aside), and the mean poll period (s)."""
    sleep_until(slot - WATCH_FROM)
    seen = client.llen(queue)
    if seen != 1:
        print(f"  warning: {seen} message(s), not just the warm-up, in {queue} before the slot", file=sys.stderr)
    expected += seen
    lateness: list[float] = []
    polls, started = 0, time.perf_counter()
    while seen < expected:
        length = client.llen(queue)
        now = time.time()
        polls += 1
        if length > seen:
            lateness.extend([now - slot] * (length - seen))
            seen = length
        elif now > slot + COLLECT_TIMEOUT:
            break
        time.sleep(POLL)
    period = (time.perf_counter() - started) / max(polls, 1)
    time.sleep(SETTLE)
    extra = client.llen(queue) - seen
    if extra:
        print(f"  warning: {extra} message(s) more than expected arrived in {queue}", file=sys.stderr)
    return lateness, period


def check_messages(client: redis.Redis, queue: str, task: str, expected_args: list[object] | None) -> None:
    """Every message names the task and a distinct job; ours also carry the slot as scheduled_for."""
    jobs = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        if envelope["headers"]["task"] != task:
            raise SystemExit(f"unexpected message in {queue}: task {envelope['headers']['task']}, args {args}")
        if args[0] != WARMUP:
            jobs.append(args[0])
            if expected_args is not None and args[1:3] != expected_args:
                raise SystemExit(f"unexpected message in {queue}: args {args}, expected {expected_args}")
    if len(set(jobs)) != len(jobs):
        print(f"  warning: {queue} holds two messages for the same job", file=sys.stderr)


class Bench:
    def __init__(self, redis_url: str, database_url: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.database_url = database_url
        self.tmp = tmp
        self.client = redis.Redis.from_url(redis_url)
        (tmp / "stock_app.py").write_text(STOCK_APP)
        self.poll_periods: list[float] = []

    def run_ours(self, entries: int) -> list[float]:
        self.client.flushdb()
        slot = float(math.ceil(time.time() + lead(entries)))
        second = datetime.fromtimestamp(slot, UTC).second

        def job(name: str, second: int) -> dict[str, object]:
            schedule = f"{second % 60} * * * * *"
            entry = {"name": name, "extension": "testing", "job": "noop", "schedule": schedule, "enabled": True}
            return {**entry, "queue": OURS_QUEUE}

        jobs = [job(WARMUP, second - WARMUP_BEFORE), *(job(f"job{i}", second) for i in range(entries))]
        config = write_config(self.tmp / f"ours_{entries}.yaml", jobs)
        log = self.tmp / f"ours_{entries}.log"
        env = service_env(self.database_url, self.redis_url, config)
        process = start([sys.executable, "-m", "sp_scheduler", "beat"], env, ROOT, log)
        try:
            wait_ready(process, log, "beat took the lead", self.client, keys.schedule_key(), entries, slot)
            lateness, period = collect(self.client, OURS_QUEUE, slot, entries)
        finally:
            stop(process)
        check_messages(self.client, OURS_QUEUE, TASK_NAME, ["schedule", datetime.fromtimestamp(slot, UTC).isoformat()])
        self.poll_periods.append(period)
        return lateness

    def run_ours_cold(self, entries: int) -> list[float]:
        """The first burst after a cold start: N jobs `*/COLD_EVERY * * * * *`, no warm-up entry, the
        beat started just now; lateness is measured against the slot the messages name."""
        self.client.flushdb()
        jobs = [
            {"name": f"job{i}", "extension": "testing", "job": "noop", "schedule": f"*/{COLD_EVERY} * * * * *"}
            | {"enabled": True, "queue": OURS_QUEUE}
            for i in range(entries)
        ]
        config = write_config(self.tmp / f"cold_{entries}.yaml", jobs)
        log = self.tmp / f"cold_{entries}.log"
        env = service_env(self.database_url, self.redis_url, config)
        process = start([sys.executable, "-m", "sp_scheduler", "beat"], env, ROOT, log)
        arrivals: list[float] = []
        try:
            deadline = time.time() + lead(entries) + COLLECT_TIMEOUT
            seen = 0
            while seen < entries and time.time() < deadline:
                length = self.client.llen(OURS_QUEUE)
                if length > seen:
                    arrivals.extend([time.time()] * (min(length, entries) - seen))
                    seen = min(length, entries)
                if process.poll() is not None:
                    raise SystemExit(f"beat exited with {process.returncode}:\n{tail(log)}")
                time.sleep(POLL)
        finally:
            stop(process)
        oldest = self.client.lrange(OURS_QUEUE, -len(arrivals), -1)[::-1] if arrivals else []
        slots = {json.loads(base64.b64decode(json.loads(raw)["body"]))[0][2] for raw in oldest}
        if len(slots) != 1:
            print(f"  warning: the first {len(arrivals)} messages name {len(slots)} slots", file=sys.stderr)
        slot = min(datetime.fromisoformat(s).timestamp() for s in slots) if slots else math.nan
        return [arrival - slot for arrival in arrivals]

    def run_stock(self, entries: int) -> list[float]:
        slot = float(math.ceil((time.time() + lead(entries)) / 60) * 60)  # crontab(minute="*"): whole minutes only
        sleep_until(slot - lead(entries))
        self.client.flushdb()
        log = self.tmp / f"stock_{entries}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(self.tmp),
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_ENTRIES": str(entries),
            "BENCH_QUEUE": STOCK_QUEUE,
            "BENCH_TASK": STOCK_TASK,
            "BENCH_WARMUP_AT": str(slot - WARMUP_BEFORE),
        }
        args = ["-A", "stock_app", "beat", "-S", "redbeat.RedBeatScheduler", "--max-interval", "1", "-l", "INFO"]
        process = start([sys.executable, "-m", "celery", *args], env, self.tmp, log)
        try:
            wait_ready(process, log, "beat: Acquired lock", self.client, STOCK_SCHEDULE_KEY, entries, slot)
            lateness, period = collect(self.client, STOCK_QUEUE, slot, entries)
        finally:
            stop(process)
        check_messages(self.client, STOCK_QUEUE, STOCK_TASK, None)
        self.poll_periods.append(period)
        return lateness


# -- reporting -----------------------------------------------------------------------------------------------


def stats_ms(lateness: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in ms (nearest-rank percentiles)."""
    ordered = sorted(lateness)

    def rank(q: float) -> float:
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] * 1000

    return rank(0.50), rank(0.99), ordered[-1] * 1000


def row(label: str, stats: tuple[float, float, float], missing: int) -> str:
    cells = "".join(f"{value:9.1f}" for value in stats)
    return cells + (f"  ({label}: {missing} never arrived)" if missing else "")


def report(sizes: list[int], rounds: int, ours: dict[int, list[float]], stock: dict[int, list[float]]) -> None:
    print()
    print(f"{'':>8} | {'ours (ms)':^27} | {'stock RedBeat (ms)':^27}")
    print(f"{'entries':>8} | {'p50':>9}{'p99':>9}{'max':>9} | {'p50':>9}{'p99':>9}{'max':>9}")
    worse = []
    for size in sizes:
        expected = size * rounds
        if not ours[size] or not stock[size]:
            print(f"{size:>8} | nothing arrived (ours {len(ours[size])}, stock {len(stock[size])} of {expected})")
            continue
        mine, theirs = stats_ms(ours[size]), stats_ms(stock[size])
        print(
            f"{size:>8} | {row('ours', mine, expected - len(ours[size]))}"
            f" | {row('stock', theirs, expected - len(stock[size]))}"
        )
        for name, a, b in zip(("p50", "p99", "max"), mine, theirs, strict=True):
            if a > b + POLL * 1000:  # within one poll period is a tie
                worse.append(f"{name} at {size} ({a:.1f} > {b:.1f} ms)")
        if len(ours[size]) < len(stock[size]):
            worse.append(f"messages lost at {size}")
    print()
    for target in TARGET_SIZES:
        if target in sizes and ours[target]:
            p99 = stats_ms(ours[target])[1]
            met = p99 <= TARGET_P99_MS and len(ours[target]) == target * rounds
            verdict = "MET" if met else "NOT MET"
            print(f"target p99 <= {TARGET_P99_MS:g} ms at {target} entries: {verdict} (ours p99 {p99:.1f} ms)")
        else:
            print(f"target p99 <= {TARGET_P99_MS:g} ms at {target} entries: not measured (not in --sizes)")
    if worse:
        print("never worse than stock RedBeat: NOT MET, ours worse in " + "; ".join(worse))
    else:
        print("never worse than stock RedBeat: MET (p50, p99 and max, every size, within one poll period)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1000", help="entries due at once, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="slots measured per size and beat (pooled)")
    parser.add_argument("--redis-url", help="use this Redis database (FLUSHED) instead of a private redis-server")
    parser.add_argument("--cold", action="store_true", help="ours only: the first burst after beat starts")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    ours: dict[int, list[float]] = {size: [] for size in sizes}
    stock: dict[int, list[float]] = {size: [] for size in sizes}
    print(
        f"sizes={options.sizes} rounds={options.rounds} cores={os.cpu_count()}"
        f" started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; no worker runs, LLEN polled every ~{POLL * 1000:g} ms"
    )
    print("ours fires at a second-level slot; stock RedBeat's crontab only at whole minutes, so it waits for those")
    with tempfile.TemporaryDirectory() as directory, scratch_database(server) as database_url:
        tmp = Path(directory)
        with private_redis(tmp) if options.redis_url is None else nullcontext(options.redis_url) as redis_url:
            bench = Bench(redis_url, database_url, tmp)
            if options.cold:
                for size in sizes:
                    lateness = bench.run_ours_cold(size)
                    p50, p99, peak = stats_ms(lateness) if lateness else (math.nan,) * 3
                    low = min(lateness) * 1000 if lateness else math.nan
                    print(
                        f"  cold start, {size:>5} entries: {len(lateness)} arrived,"
                        f" min {low:.1f} p50 {p50:.1f} p99 {p99:.1f} max {peak:.1f} ms"
                    )
                return
            for round_number in range(1, options.rounds + 1):
                for size in sizes:
                    for name, run, results in (("ours", bench.run_ours, ours), ("stock", bench.run_stock, stock)):
                        lateness = run(size)
                        results[size].extend(lateness)
                        p50, p99, peak = stats_ms(lateness) if lateness else (math.nan,) * 3
                        print(
                            f"  round {round_number} {name:<5} {size:>5} entries: {len(lateness)} arrived,"
                            f" p50 {p50:.1f} p99 {p99:.1f} max {peak:.1f} ms"
                        )
    periods = ", ".join(f"{period * 1000:.2f}" for period in bench.poll_periods)
    print(f"mean poll period per scenario (ms): {periods}")
    report(sizes, options.rounds, ours, stock)


if __name__ == "__main__":
    main()
