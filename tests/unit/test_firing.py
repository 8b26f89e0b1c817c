"""Beat's firing loop against a fake clock: slots go on the dot, missed ones are reported, one message per job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from sp_scheduler import firing as firing_module
from sp_scheduler import keys
from sp_scheduler.beat_ledger import MissedSlots
from sp_scheduler.entries import EntrySpec, SentSlots
from sp_scheduler.firing import LOOKAHEAD, MAX_SLEEP, Firing
from sp_scheduler.publish import Outgoing
from sp_scheduler.sync import sync_entries

SYNCED = datetime(2026, 5, 1, 12, 0, 0, 400000, tzinfo=UTC)


class Clock:
    """time.time and time.sleep for one test: sleeping moves the clock, nothing waits."""

    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def set(self, at: datetime) -> None:
        self.now = at.timestamp()


class Publisher:
    """Records what was sent and when (by the fake clock)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, Outgoing]] = []

    def prepare(self, messages: Sequence[Outgoing]) -> list[tuple[str, str]]:
        self._prepared = {m.request.job_name: m for m in messages}
        return [(m.queue, m.request.job_name) for m in messages]

    def send(self, prepared: Sequence[tuple[str, str]]) -> None:
        self.sent.extend((self.clock.now, self._prepared[name]) for _, name in prepared)


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def setup(client: fakeredis.FakeRedis, *specs: EntrySpec) -> tuple[Clock, Publisher, list[MissedSlots], Firing]:
    sent = SentSlots()
    sync_entries(client, {s.job_name: s for s in specs}, sent, SYNCED)
    clock = Clock(SYNCED)
    publisher = Publisher(clock)
    missed: list[MissedSlots] = []
    firing = Firing(lambda: publisher, sent, missed.append, clock=clock.time, sleep=clock.sleep)
    return clock, publisher, missed, firing


def every(name: str, expression: str, grace: float | None = None) -> EntrySpec:
    return EntrySpec(name, expression, "UTC", "q_" + name, 30.0, grace)


def test_a_slot_is_prepared_early_and_sent_on_the_dot(client: fakeredis.FakeRedis) -> None:
    clock, publisher, missed, firing = setup(client, every("a", "* * * * * *"))
    slot = datetime(2026, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert firing.next_sleep(client) == pytest.approx(slot.timestamp() - LOOKAHEAD - clock.now)
    clock.set(slot - timedelta(seconds=0.25))  # woke within LOOKAHEAD of the slot
    firing.fire_due(client)
    assert clock.slept == [pytest.approx(0.25)]
    assert [(at, o.request.scheduled_for, o.queue, o.timeout) for at, o in publisher.sent] == [
        (slot.timestamp(), slot, "q_a", 30.0)
    ]
    assert missed == []
    assert client.zscore(keys.schedule_key(), keys.entry_key("a")) == (slot + timedelta(seconds=1)).timestamp()
    assert firing.sent.last[keys.entry_key("a")][1] == slot


def test_nothing_is_sent_before_its_lookahead(client: fakeredis.FakeRedis) -> None:
    clock, publisher, _, firing = setup(client, every("a", "0 * * * * *"))
    clock.set(SYNCED + timedelta(seconds=30))
    firing.fire_due(client)
    assert publisher.sent == [] and clock.slept == []
    assert firing.next_sleep(client) == MAX_SLEEP


def test_slots_missed_while_beat_was_away_are_reported_and_the_newest_runs_once(client: fakeredis.FakeRedis) -> None:
    clock, publisher, missed, firing = setup(client, every("a", "0 * * * * *"))
    clock.set(datetime(2026, 5, 1, 12, 5, 0, 100000, tzinfo=UTC))  # beat was away from 12:00:30 to now
    firing.fire_due(client)
    assert clock.slept == []  # overdue: sent at once
    assert [o.request.scheduled_for for _, o in publisher.sent] == [datetime(2026, 5, 1, 12, 5, tzinfo=UTC)]
    assert len(missed) == 1 and missed[0].job_name == "a"
    assert missed[0].slots == tuple(datetime(2026, 5, 1, 12, m, tzinfo=UTC) for m in (1, 2, 3, 4))
    assert "no beat was running" in missed[0].message and "the newest slot ran as the catch-up" in missed[0].message


def test_slots_past_the_grace_are_reported_and_not_run(client: fakeredis.FakeRedis) -> None:
    clock, publisher, missed, firing = setup(client, every("a", "0 * * * * *", grace=5.0))
    clock.set(datetime(2026, 5, 1, 12, 2, 30, tzinfo=UTC))
    firing.fire_due(client)
    assert publisher.sent == []
    assert missed[0].slots == (datetime(2026, 5, 1, 12, 1, tzinfo=UTC), datetime(2026, 5, 1, 12, 2, tzinfo=UTC))
    assert "past misfire_grace, not run" in missed[0].message


def test_a_broker_gap_names_the_broker_in_the_missed_message(client: fakeredis.FakeRedis) -> None:
    clock, _, missed, firing = setup(client, every("a", "0 * * * * *"))
    firing.sent.broker_gap.add("a")
    clock.set(datetime(2026, 5, 1, 12, 3, 0, 50000, tzinfo=UTC))
    firing.fire_due(client)
    assert "while the broker (Redis) was unreachable" in missed[0].message
    assert firing.sent.broker_gap == set()  # only the slots of that outage


def test_one_message_per_job_per_tick(client: fakeredis.FakeRedis) -> None:
    clock, publisher, _, firing = setup(client, every("a", "* * * * * *"), every("b", "*/2 * * * * *"))
    clock.set(SYNCED + timedelta(seconds=20))  # twenty slots of a, ten of b overdue
    firing.fire_due(client)
    assert sorted(o.request.job_name for _, o in publisher.sent) == ["a", "b"]
    firing.fire_due(client)  # the same instant again: nothing new is due
    assert len(publisher.sent) == 2


def test_an_undecodable_entry_is_skipped_and_retried_later(client: fakeredis.FakeRedis) -> None:
    clock, publisher, _, firing = setup(client, every("a", "* * * * * *"))
    client.hset(keys.entry_key("a"), "definition", "not json")
    clock.set(SYNCED + timedelta(seconds=1))
    firing.fire_due(client)
    assert publisher.sent == []
    assert client.zscore(keys.schedule_key(), keys.entry_key("a")) == pytest.approx(clock.now + 60.0)


def test_the_lookahead_grows_with_the_entries_due_at_the_next_slot(client: fakeredis.FakeRedis) -> None:
    specs = [every(f"j{i}", "* * * * * *") for i in range(3000)]
    clock, publisher, missed, firing = setup(client, *specs)
    firing.lookahead.per_entry = 200e-6  # as if measured: 3,000 entries take 0.6 s, so wake 1.2 s ahead
    slot = datetime(2026, 5, 1, 12, 0, 1, tzinfo=UTC)
    clock.set(slot - timedelta(seconds=2))
    assert firing.next_sleep(client) == pytest.approx(2 - 1.2)
    clock.set(slot - timedelta(seconds=1.1))  # woke about as told: every entry of the slot is read and prepared
    firing.fire_due(client)
    assert clock.slept == [pytest.approx(1.1)]
    assert len(publisher.sent) == 3000 and {at for at, _ in publisher.sent} == {slot.timestamp()}
    assert {o.request.scheduled_for for _, o in publisher.sent} == {slot} and missed == []
    assert client.zcount(keys.schedule_key(), "-inf", slot.timestamp()) == 0  # every entry moved on


def test_a_few_entries_keep_the_least_lookahead(client: fakeredis.FakeRedis) -> None:
    clock, _, _, firing = setup(client, *(every(f"j{i}", "* * * * * *") for i in range(10)))
    firing.lookahead.per_entry = 1e-3
    slot = datetime(2026, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert firing.next_sleep(client) == pytest.approx(slot.timestamp() - LOOKAHEAD - clock.now)
    assert firing.window == LOOKAHEAD


def test_identical_definitions_are_decoded_once(client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, publisher, _, firing = setup(client, every("a", "* * * * * *"))
    decoded: list[str] = []
    original = firing_module.decode_definition
    monkeypatch.setattr(firing_module, "decode_definition", lambda text: decoded.append(text) or original(text))
    for second in (1, 2, 3):
        clock.set(datetime(2026, 5, 1, 12, 0, second, tzinfo=UTC))
        firing.fire_due(client)
    assert len(publisher.sent) == 3 and len(decoded) == 1
