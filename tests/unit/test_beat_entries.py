"""Beat's schedule entries: the pure diff between Redis and the desired schedule, and the sync carrying it out."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from sp_scheduler import keys
from sp_scheduler.entries import EntryDiff, EntrySpec, SentSlots, diff_entries
from sp_scheduler.messages import TASK_NAME
from sp_scheduler.schedule import CronSchedule, ScheduleEncoder
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


def test_a_definition_is_the_text_the_schedule_encoder_writes() -> None:
    # Built without a CronSchedule, for speed: it must stay the text RedBeat's encoder produced.
    timed = EntrySpec("a", "*/5 * * * * *", "Europe/Paris", "q", 30.0, 2.5)
    for entry in (spec("a"), timed):
        body = {
            "name": entry.job_name,
            "task": TASK_NAME,
            "args": [],
            "kwargs": {"job_name": entry.job_name, "timeout": entry.timeout, "misfire_grace": entry.misfire_grace},
            "options": {"queue": entry.queue},
            "schedule": CronSchedule(entry.expression, entry.timezone),
            "enabled": True,
        }
        assert entry.definition() == json.dumps(body, cls=ScheduleEncoder, sort_keys=True)


def test_a_sync_logs_one_summary_line_and_each_entry_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    sent = SentSlots()
    many = {f"job{i}": spec(f"job{i}") for i in range(50)}
    with caplog.at_level(logging.DEBUG, logger="sp_scheduler.sync"):
        sync_entries(client, {**many, "gone": spec("gone")}, sent, NOW)
        caplog.clear()
        sync_entries(client, many, sent, NOW)
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info] == ["schedule synced"]
    assert (info[0].added, info[0].updated, info[0].removed, info[0].removed_jobs) == (0, 0, 1, "gone")  # type: ignore[attr-defined]
    assert [r.job for r in caplog.records if r.getMessage() == "schedule entry removed"] == ["gone"]  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="sp_scheduler.sync"):
        sync_entries(client, many, sent, NOW)  # nothing to change: the summary is DEBUG too
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_new_entries_count_from_the_lead_changed_ones_from_now() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    sent = SentSlots()
    every_second = "* * * * * *"
    sync_entries(client, {"old": spec("old", every_second)}, sent, NOW)
    changed = {"old": spec("old", every_second, queue="other"), "new": spec("new", every_second)}
    sync_entries(client, changed, sent, NOW, lead=2.0)
    whole = NOW.replace(microsecond=0)
    assert client.zscore(keys.schedule_key(), keys.entry_key("old")) == (whole + timedelta(seconds=1)).timestamp()
    assert client.zscore(keys.schedule_key(), keys.entry_key("new")) == (whole + timedelta(seconds=3)).timestamp()


def test_a_changed_entry_never_counts_from_before_the_slot_this_beat_sent() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    sent_slot = NOW.replace(microsecond=0) + timedelta(seconds=1)  # sent ahead of NOW (within the look-ahead)
    sent = SentSlots(last={keys.entry_key("a"): (spec("a", "* * * * * *").definition(), sent_slot)})
    sync_entries(client, {"a": spec("a", "* * * * * *")}, sent, NOW)  # seeds Redis: an unchanged entry lost
    sync_entries(client, {"a": spec("a", "* * * * * *", queue="other")}, sent, NOW)
    assert client.zscore(keys.schedule_key(), keys.entry_key("a")) == (sent_slot + timedelta(seconds=1)).timestamp()
