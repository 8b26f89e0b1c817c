"""Beat's schedule entries: the pure diff between Redis and the desired schedule, and the sync carrying it out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis

from sp_scheduler import keys
from sp_scheduler.entries import EntryDiff, EntrySpec, SentSlots, diff_entries
from sp_scheduler.sync import read_entries, sync_entries

NOW = datetime(2026, 5, 1, 12, 0, 0, 400000, tzinfo=UTC)


def spec(name: str, expression: str = "0 * * * * *", queue: str = "default") -> EntrySpec:
    return EntrySpec(name, expression, "UTC", queue, None, None)


def test_a_job_new_to_redis_is_added() -> None:
    diff = diff_entries({}, {"a": spec("a")})
    assert diff == EntryDiff(adds={"a": spec("a")})


def test_an_unchanged_entry_is_left_alone() -> None:
    assert diff_entries({"a": spec("a").definition()}, {"a": spec("a")}).empty


def test_a_changed_definition_is_an_update() -> None:
    changed = spec("a", "*/5 * * * * *")
    diff = diff_entries({"a": spec("a").definition()}, {"a": changed})
    assert diff == EntryDiff(updates={"a": changed})
    assert diff_entries({"a": spec("a").definition()}, {"a": spec("a", queue="other")}).updates  # any field counts


def test_an_entry_whose_hash_is_gone_is_rewritten_as_an_update() -> None:
    assert diff_entries({"a": None}, {"a": spec("a")}) == EntryDiff(updates={"a": spec("a")})


def test_an_entry_no_longer_desired_is_removed() -> None:
    existing = {"a": spec("a").definition(), "gone": spec("gone").definition()}
    assert diff_entries(existing, {"a": spec("a")}) == EntryDiff(removes=("gone",))


def test_diff_reads_only_its_arguments() -> None:
    existing = {"a": spec("a").definition(), "b": "stale"}
    desired = {"b": spec("b"), "c": spec("c")}
    before = (dict(existing), dict(desired))
    assert diff_entries(existing, desired) == EntryDiff(adds={"c": spec("c")}, updates={"b": spec("b")}, removes=("a",))
    assert (existing, desired) == before


def test_sync_writes_adds_updates_and_removes_to_redis() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    sent = SentSlots()
    sync_entries(client, {"a": spec("a"), "b": spec("b")}, sent, NOW)
    assert read_entries(client)[1] == {"a": spec("a").definition(), "b": spec("b").definition()}
    # Counts slots from now: the next one is the next minute, never a "missed" one.
    next_minute = (NOW + timedelta(minutes=1)).replace(second=0, microsecond=0).timestamp()
    assert client.zscore(keys.schedule_key(), keys.entry_key("a")) == next_minute

    diff = sync_entries(client, {"a": spec("a", "*/5 * * * * *")}, sent, NOW)
    assert diff == EntryDiff(updates={"a": spec("a", "*/5 * * * * *")}, removes=("b",))
    assert read_entries(client)[1] == {"a": spec("a", "*/5 * * * * *").definition()}
    assert not client.exists(keys.entry_key("b"))
    assert sync_entries(client, {"a": spec("a", "*/5 * * * * *")}, sent, NOW).empty


def test_an_entry_redis_lost_counts_from_the_last_slot_this_beat_sent() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    last_slot = NOW - timedelta(minutes=3, seconds=NOW.second, microseconds=NOW.microsecond)
    sent = SentSlots(last={keys.entry_key("a"): (spec("a").definition(), last_slot)})
    sync_entries(client, {"a": spec("a")}, sent, NOW)  # Redis came back empty
    assert client.zscore(keys.schedule_key(), keys.entry_key("a")) == (last_slot + timedelta(minutes=1)).timestamp()
    assert sent.broker_gap == {"a"}
