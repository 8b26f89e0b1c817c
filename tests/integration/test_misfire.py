"""The default misfire grace follows the period: a slot missed during a beat outage still runs once.

Beat's clock is real, so the daily example (03:00 slot, beat down 02:55 to 03:10) is scaled down to
a 20-second period: the beat is stopped, a slot passes, and a new beat starts a few seconds later.
The job without `misfire_grace` runs that slot late, once; the same schedule with `misfire_grace: 1`
records it `missed`. tests/unit/test_slots.py covers the rule itself with the daily numbers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from sp_scheduler.cron import CronExpression
from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration

SCHEDULE = "*/20 * * * * *"


def rows_for(system: System, name: str, slot: datetime) -> list[dict[str, Any]]:
    return [
        r
        for r in system.history(name)
        if r["trigger"] == "schedule" and datetime.fromisoformat(r["scheduled_for"]) == slot
    ]


def test_a_slot_missed_in_a_beat_outage_runs_once_within_its_period(system: System) -> None:
    base = {"extension": "testing", "job": "noop", "schedule": SCHEDULE, "enabled": True}
    system.configure([{"name": "follows", **base}, {"name": "strict", **base, "misfire_grace": 1}])
    system.worker()
    beat = system.beat()
    wait_until(lambda: any(r["status"] == "succeeded" for r in system.history("follows")), timeout=60)
    beat.stop()  # a clean stop hands the lead over at once
    down_at = datetime.now().astimezone()
    slot = CronExpression.parse(SCHEDULE).next_after(down_at)  # the slot that falls in the outage
    wait_until(lambda: datetime.now().astimezone() >= slot + timedelta(seconds=2), timeout=30)
    system.beat("beat2")

    caught_up = wait_until(lambda: [r for r in rows_for(system, "follows", slot) if r["status"] == "succeeded"], 30)
    assert len(caught_up) == 1 and len(rows_for(system, "follows", slot)) == 1  # once, not missed as well
    assert caught_up[0]["lateness_ms"] >= 2000  # it ran after the outage, as the catch-up
    strict = wait_until(lambda: rows_for(system, "strict", slot), timeout=30)
    assert [r["status"] for r in strict] == ["missed"]
    assert "past misfire_grace" in strict[0]["message"]
