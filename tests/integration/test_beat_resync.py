"""A re-sync of a large schedule, after a config change that rewrites every entry, neither misses nor
duplicates a slot: 2,000 jobs every second, read straight off the queue (no worker runs)."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
import redis

from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration

JOBS = 2000
QUEUE = "resync"


def jobs(timeout: int, extra: int = 0) -> list[dict[str, object]]:
    entry = {"extension": "testing", "job": "noop", "schedule": "* * * * * *", "queue": QUEUE, "enabled": True}
    return [{**entry, "name": f"r{i}", "timeout": timeout} for i in range(JOBS + extra)]


def queued_slots(client: redis.Redis) -> dict[str, list[datetime]]:
    """Each job's scheduled slots, as the queue holds them."""
    found: dict[str, list[datetime]] = defaultdict(list)
    for raw in client.lrange(QUEUE, 0, -1):
        args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
        found[args[0]].append(datetime.fromisoformat(args[2]))
    return found


def synced_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "schedule synced" in line]


def test_a_resync_of_a_large_schedule_neither_misses_nor_duplicates_a_slot(system: System) -> None:
    client = redis.Redis.from_url(system.redis_url)
    system.configure(jobs(timeout=30))
    beat = system.beat()
    wait_until(lambda: client.llen(QUEUE) >= 3 * JOBS, timeout=60, message="beat did not fire three bursts")
    system.configure(jobs(timeout=60, extra=1))  # every entry's definition changes, and one job is added
    wait_until(lambda: any(f"updated={JOBS}" in line.split() for line in synced_lines(beat.output())), timeout=30)
    after_sync = client.llen(QUEUE)
    wait_until(lambda: client.llen(QUEUE) >= after_sync + 3 * JOBS, timeout=30, message="beat stopped firing")
    beat.stop()

    slots = queued_slots(client)
    assert set(slots) >= {f"r{i}" for i in range(JOBS + 1)}
    for name, found in slots.items():
        assert len(found) == len(set(found)), f"{name} was sent a slot twice: {sorted(found)}"
    # Over the window every original job covered, each was sent every second: none missed.
    originals = [sorted(slots[f"r{i}"]) for i in range(JOBS)]
    first, last = max(found[0] for found in originals), min(found[-1] for found in originals)
    assert last - first >= timedelta(seconds=5)
    expected = int((last - first).total_seconds()) + 1
    gaps = {f"r{i}": expected - len([s for s in found if first <= s <= last]) for i, found in enumerate(originals)}
    absent = sorted({first + timedelta(seconds=k) for k in range(expected)} - set(originals[0]))  # r0's, if any
    assert {name: gap for name, gap in gaps.items() if gap} == {}, (absent, synced_lines(beat.output()))
    missed = [r for r in system.history(limit=100) if r["status"] == "missed"]
    assert missed == [], missed[:5]
