"""`jobs backfill` without services: the slots of a range, the --max refusal, the range checks, what a
dry run and a real run print, and the refusals that come before the database is touched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from sp_scheduler.backfill import (
    COUNT_LIMIT,
    SlotReport,
    TooManySlots,
    check_range,
    range_slots,
    render_json,
    render_text,
    retention_note,
    slot_reports,
)
from sp_scheduler.cli import cli
from sp_scheduler.cli.expiry import parse_instant
from sp_scheduler.cron import CronExpression
from sp_scheduler.errors import ExitCode, UsageError
from sp_scheduler.ledger.memory import InMemoryLedger
from sp_scheduler.store import slot_run_id
from tests.support.processes import write_config

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def hourly(zone: str = "UTC") -> CronExpression:
    return CronExpression.parse("0 0 * * * *", zone)


def test_a_range_holds_the_fire_times_between_its_ends_both_included() -> None:
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    slots = range_slots(hourly(), start, start + timedelta(hours=3), 1000)
    assert slots == [start + timedelta(hours=n) for n in range(4)]
    assert range_slots(hourly(), start, start, 1000) == [start]  # one instant that is a slot
    assert range_slots(hourly(), start + timedelta(minutes=1), start + timedelta(minutes=59), 1000) == []
    assert range_slots(hourly(), start + timedelta(microseconds=1), start + timedelta(hours=1), 1000) == [
        start + timedelta(hours=1)
    ]
    assert all(slot.tzinfo is UTC for slot in slots)


def test_slots_follow_the_jobs_time_zone_across_a_dst_change() -> None:
    day = datetime(2026, 3, 29, tzinfo=BERLIN)  # clocks go from 02:00 to 03:00: a 23-hour day
    midnight = datetime(2026, 3, 30, tzinfo=BERLIN)
    slots = range_slots(hourly("Europe/Berlin"), day, midnight - timedelta(seconds=1), 1000)
    assert [s.astimezone(BERLIN).hour for s in slots] == [0, 1, *range(3, 24)]
    daily = range_slots(CronExpression.parse("0 30 2 * * *", "Europe/Berlin"), day, day + timedelta(days=2), 1000)
    assert [s.astimezone(BERLIN).strftime("%d %H:%M") for s in daily] == ["29 03:00", "30 02:30"]  # as cron.md says


def test_a_range_with_more_slots_than_max_is_refused_with_the_count() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert len(range_slots(hourly(), start, start + timedelta(hours=9), 10)) == 10  # exactly --max is fine
    with pytest.raises(TooManySlots) as refused:
        range_slots(hourly(), start, start + timedelta(hours=10), 10)
    assert refused.value.count == 11 and refused.value.exit_code == ExitCode.INVALID
    assert str(refused.value) == (
        "the range holds 11 slots, more than --max 10; nothing enqueued (narrow --from/--to, or raise --max)"
    )


def test_counting_stops_at_the_limit_so_a_huge_range_is_refused_at_once() -> None:
    every_second = CronExpression.parse("* * * * * *")  # a year of it is 31.5 million slots
    with pytest.raises(TooManySlots) as refused:
        range_slots(every_second, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), 1000)
    assert f"holds more than {COUNT_LIMIT:,} slots" in str(refused.value)


def test_max_at_the_count_limit_still_refuses_one_slot_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sp_scheduler.backfill.COUNT_LIMIT", 5)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert len(range_slots(hourly(), start, start + timedelta(hours=4), 5)) == 5
    with pytest.raises(TooManySlots, match="holds more than 5 slots, more than --max 5"):
        range_slots(hourly(), start, start + timedelta(hours=5), 5)


def test_a_range_backwards_or_into_the_future_is_refused() -> None:
    past = NOW - timedelta(days=1)
    check_range(past, NOW, NOW)  # up to now is allowed
    with pytest.raises(UsageError, match=r"^--from 2026-12-04T12:00:00\+00:00 is after --to "):
        check_range(past, past - timedelta(seconds=1), NOW)
    with pytest.raises(UsageError, match=r"is in the future \(now 2026-12-05T12:00:00\+00:00\): backfill runs past"):
        check_range(past, NOW + timedelta(seconds=1), NOW)


def test_a_naive_time_is_read_in_the_jobs_zone_and_an_offset_wins() -> None:
    assert parse_instant("--from", "2026-12-01T03:00", BERLIN) == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert parse_instant("--from", "2026-12-01T03:00Z", BERLIN) == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert parse_instant("--to", "2026-12-01T03:00+05:00", BERLIN) == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    with pytest.raises(UsageError) as bad:
        parse_instant("--from", "yesterday", BERLIN)
    assert str(bad.value) == (
        "--from 'yesterday': expected an ISO-8601 time such as 2026-12-05T09:00 (Europe/Berlin) or ...+01:00"
    )


def test_reports_say_which_slots_are_queued_and_which_a_run_holds() -> None:
    ledger = InMemoryLedger()
    slots = [datetime(2026, 12, 1, hour, tzinfo=UTC) for hour in range(3)]
    ledger.record_slots(job_name="noop", slots=[slots[1]], status="missed", message="beat was down")
    holders = ledger.slot_holders(job_name="noop", slots=slots)
    free = {slot: slot_run_id("noop", slot) for slot in slots if slot not in holders}
    reports = slot_reports(slots, free, holders)
    assert [(r.slot, r.skipped) for r in reports] == [(slots[0], False), (slots[1], True), (slots[2], False)]
    held = reports[1]
    assert held.holder is not None and held.to_dict() == {
        "scheduled_for": "2026-12-01T01:00:00+00:00",
        "run_id": slot_run_id("noop", slots[1]),
        "trigger": "schedule",
        "status": "missed",
    }


def test_a_dry_run_prints_each_slot_in_the_jobs_zone_and_says_nothing_was_enqueued() -> None:
    slots = [datetime(2026, 12, 1, hour, tzinfo=UTC) for hour in range(2)]
    ledger = InMemoryLedger()
    ledger.record_slots(job_name="noop", slots=[slots[1]], status="missed", message="beat was down")
    holder = ledger.get_run(slot_run_id("noop", slots[1]))
    reports = [SlotReport(slots[0], slot_run_id("noop", slots[0])), SlotReport(slots[1], holder.id, holder)]
    assert render_text("noop", reports, dry_run=True, zone=BERLIN) == [
        f"would queue  2026-12-01T01:00:00+01:00  run {slot_run_id('noop', slots[0])}",
        f"skipped      2026-12-01T02:00:00+01:00  already missed (schedule run {holder.id})",
        "noop: would queue 1, skipped 1 already in the ledger (times in Europe/Berlin); dry run, nothing enqueued",
    ]
    assert render_text("noop", reports[:1], dry_run=False, zone=UTC)[-1] == (
        "noop: queued 1, skipped 0 already in the ledger (times in UTC)"
    )
    document = render_json("noop", slots[0], slots[1], reports, dry_run=True)
    assert document["dry_run"] is True and (document["from"], document["to"]) == (
        "2026-12-01T00:00:00+00:00",
        "2026-12-01T01:00:00+00:00",
    )
    assert [r["scheduled_for"] for r in document["queued"]] == ["2026-12-01T00:00:00+00:00"]
    assert [r["status"] for r in document["skipped"]] == ["missed"]
    json.dumps(document)  # JSON-ready as it stands


def test_a_range_older_than_the_runs_retention_gets_a_note() -> None:
    month = timedelta(days=30)
    assert retention_note(NOW - timedelta(days=29), month, NOW) is None
    assert retention_note(NOW - timedelta(days=31), month, NOW) == (
        "note: slots before 2026-11-05T12:00:00+00:00 are older than the runs retention (30 days): their runs"
        " are kept as their slots' week is, so a retention pass may remove them soon (all but the job's newest"
        " min_runs)"
    )


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with an hourly job and a manual-only one, and no database configured."""
    for var in ("SP_DATABASE_URL", "SP_PROFILE", "SP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return write_config(
        tmp_path / "config.yaml",
        [
            {"name": "noop", "extension": "testing", "job": "noop", "schedule": "0 0 * * * *", "enabled": True},
            {"name": "by_hand", "extension": "testing", "job": "noop", "schedule": "", "enabled": True},
        ],
    )


def backfill(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "jobs", "backfill", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["nope", "--from", "2026-01-01", "--to", "2026-01-02"], ExitCode.NOT_FOUND, "unknown job 'nope'"),
        (["by_hand", "--from", "2026-01-01", "--to", "2026-01-02"], ExitCode.INVALID, "has no schedule"),
        (["noop", "--from", "2026-01-02", "--to", "2026-01-01"], ExitCode.INVALID, "is after --to"),
        (["noop", "--from", "2026-01-01", "--to", "2999-01-01"], ExitCode.INVALID, "is in the future"),
        (["noop", "--from", "soon", "--to", "2026-01-01"], ExitCode.INVALID, "--from 'soon': expected an ISO-8601"),
        (["noop", "--from", "2026-01-01", "--to", "2026-03-01"], ExitCode.INVALID, "holds 1,417 slots, more than"),
        (["noop", "--from", "2026-01-01", "--to", "2026-01-01T10:00", "--max", "10"], ExitCode.INVALID, "--max 10;"),
    ],
)
def test_refusals_are_one_line_before_the_database_is_needed(
    offline: Path, args: list[str], code: ExitCode, says: str
) -> None:
    exit_code, output = backfill(offline, *args)
    assert exit_code == code, output
    assert says in output and len(output.strip().splitlines()) == 1, output
