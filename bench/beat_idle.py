"""Beat at 10,000 entries of mixed schedules: CPU of the idle leader and of a standby, and re-sync time.

    python bench/beat_idle.py [--entries 10000] [--window 30] [--redis-url URL]

Two `python -m sp_scheduler beat` processes share a private redis-server and a scratch ledger; one
leads, one stands by. The schedule mixes what a real one holds, so few entries are due at any moment:
a third every minute, a third every hour, a third daily, each at its own second (about 57 messages a
second in all; no worker runs, they pile up in the queue). After the leader holds every entry and a
settling pause, the CPU time (utime + stime from /proc) of each process over `--window` seconds is
printed as a percentage of one core. Then the config is rewritten so that every entry changes (a new
timeout for all, one job added) and the bench times, from the file write, the leader's "schedule
synced" line reporting them all updated, with the sync's own duration from that line. Finally it
checks the queue for a slot sent twice and the ledger for slots recorded missed.

Targets: leader < 2 %, standby < 1 % of a core; re-sync < 5 s; no slot missed or duplicated.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from beat_lateness import ROOT, private_redis, scratch_database, start, stop, tail

from sp_scheduler import keys
from tests.support.processes import service_env, write_config

QUEUE = "bench_idle"
SETTLE = 5.0  # seconds after the leader is ready before CPU is measured
READY_TIMEOUT = 180.0
RESYNC_TIMEOUT = 60.0
TICK = os.sysconf("SC_CLK_TCK")


def schedules(entries: int) -> list[str]:
    """A third every minute, a third hourly, a third daily, spread over the seconds and minutes."""
    out = []
    for i in range(entries):
        second, minute, hour = i % 60, (i // 60) % 60, (i // 3600) % 24
        out.append([f"{second} * * * * *", f"{second} {minute} * * * *", f"{second} {minute} {hour} * * *"][i % 3])
    return out


def jobs(entries: int, timeout: int, extra: int = 0) -> list[dict[str, object]]:
    entry = {"extension": "testing", "job": "noop", "queue": QUEUE, "enabled": True, "timeout": timeout}
    every = schedules(entries + extra)
    return [{**entry, "name": f"job{i}", "schedule": every[i]} for i in range(entries + extra)]


def config_text(scratch: Path, entries: list[dict[str, object]]) -> str:
    return write_config(scratch, entries).read_text()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def wait_for(predicate, timeout: float, what: str, logs: list[Path]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} within {timeout:g} s; logs:\n" + "\n".join(tail(log) for log in logs))
        time.sleep(0.05)


def synced_updates(log: Path, count: int) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if "schedule synced" in line and f"updated={count}" in line.split():
            return line
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of CPU measured")
    parser.add_argument("--redis-url", help="use this Redis database (FLUSHED) instead of a private redis-server")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    print(
        f"entries={options.entries} window={options.window:g}s cores={os.cpu_count()}"
        f" started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    with tempfile.TemporaryDirectory() as directory, scratch_database(server) as database_url:
        tmp = Path(directory)
        with private_redis(tmp) if options.redis_url is None else nullcontext(options.redis_url) as redis_url:
            client = redis.Redis.from_url(redis_url)
            client.flushdb()
            config = write_config(tmp / "config.yaml", jobs(options.entries, timeout=30))
            env = service_env(database_url, redis_url, config)
            leader_log, standby_log = tmp / "leader.log", tmp / "standby.log"
            started = time.monotonic()
            leader = start([sys.executable, "-m", "sp_scheduler", "beat"], env, ROOT, leader_log)
            standby = None
            try:
                wait_for(
                    lambda: (
                        "beat took the lead" in leader_log.read_text(errors="replace")
                        and client.zcard(keys.schedule_key()) == options.entries
                    ),
                    READY_TIMEOUT,
                    "the leader did not hold every entry",
                    [leader_log],
                )
                print(f"leader ready (every entry in Redis) {time.monotonic() - started:.1f} s after start")
                standby = start([sys.executable, "-m", "sp_scheduler", "beat"], env, ROOT, standby_log)
                wait_for(
                    lambda: "beat: Starting..." in standby_log.read_text(errors="replace"),
                    READY_TIMEOUT,
                    "the standby did not start",
                    [standby_log],
                )
                time.sleep(SETTLE)
                before = {p.pid: cpu_seconds(p.pid) for p in (leader, standby)}
                begun = time.monotonic()
                queued = client.llen(QUEUE)
                time.sleep(options.window)
                elapsed = time.monotonic() - begun
                used = {pid: cpu_seconds(pid) - seconds for pid, seconds in before.items()}
                sent = client.llen(QUEUE) - queued
                leader_pct, standby_pct = used[leader.pid] / elapsed * 100, used[standby.pid] / elapsed * 100
                print(
                    f"leader CPU:  {leader_pct:5.2f} % of a core ({sent / elapsed:.0f} messages/s sent)  target < 2 %"
                )
                print(f"standby CPU: {standby_pct:5.2f} % of a core  target < 1 %")

                text = config_text(tmp / "next.yaml", jobs(options.entries, timeout=60, extra=1))
                written = time.monotonic()
                config.write_text(text)  # the timer starts at the write, not while the bench builds the YAML
                print(f"  config rewritten at {datetime.now(UTC):%H:%M:%S.%f} UTC")
                deadline = written + RESYNC_TIMEOUT
                while (line := synced_updates(leader_log, options.entries)) is None:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"no re-sync of every entry within {RESYNC_TIMEOUT:g} s:\n{tail(leader_log)}")
                    time.sleep(0.02)
                resync = time.monotonic() - written
                duration = re.search(r"duration_ms=([\d.]+)", line)
                itself = float(duration.group(1)) / 1000 if duration else float("nan")
                print(
                    f"re-sync after the config change: {resync:.2f} s from the file write"
                    f" (the sync itself {itself:.2f} s)  target < 5 s"
                )
                for text in leader_log.read_text(errors="replace").splitlines():
                    if "config loaded" in text or "schedule synced" in text:
                        print("  leader: " + text[:160])
                time.sleep(3)  # a few more slots after the re-sync
            finally:
                for process in (leader, standby):
                    if process is not None:
                        stop(process)
            counts = Counter()
            for raw in client.lrange(QUEUE, 0, -1):
                args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
                counts[(args[0], args[2])] += 1
            twice = sum(1 for n in counts.values() if n > 1)
            with psycopg.connect(database_url) as conn:
                missed = conn.execute("SELECT count(*) FROM sp_job_runs WHERE status = 'missed'").fetchone()[0]
            print(f"slots sent twice: {twice}; slots recorded missed: {missed}  target 0 and 0")


if __name__ == "__main__":
    main()
