"""`logs view` helpers that need no database: --since parsing and the line format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sp_scheduler.cli.logs_cmd import format_line, parse_since
from sp_scheduler.errors import UsageError
from sp_scheduler.store import LogRecordRow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        (" 2d ", timedelta(days=2)),
        ("1W", timedelta(weeks=1)),
    ],
)
def test_since_accepts_ages(text: str, ago: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_since_accepts_iso_times_naive_meaning_utc() -> None:
    assert parse_since("2026-02-01T10:00:00Z") == datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert parse_since("2026-02-01T10:00:00") == datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert parse_since("2026-02-01T11:00:00+01:00") == datetime(2026, 2, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "yesterday"])
def test_since_rejects_anything_else(text: str) -> None:
    with pytest.raises(UsageError, match="expected an age such as 30m, 1h, 2d"):
        parse_since(text, NOW)


def test_a_line_shows_time_level_job_run_message_fields_and_the_traceback_below() -> None:
    row = LogRecordRow(
        created_at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        level="ERROR",
        logger="sp_scheduler.jobs.cleanup",
        message="job raised",
        job_name="cleanup",
        run_id="0b7e4a52-0000-4000-8000-000000000000",
        fields={"error": "boom: it broke", "items": 3, "ok": "yes", "traceback": "Traceback\n  line\nValueError"},
    )
    assert format_line(row).splitlines() == [
        '2026-03-01T12:00:00.123Z ERROR    cleanup [0b7e4a52] job raised  error="boom: it broke" items=3 ok=yes',
        "    Traceback",
        "      line",
        "    ValueError",
    ]
    process = LogRecordRow(datetime(2026, 3, 1, tzinfo=UTC), "INFO", "sp_scheduler.beat", "tick")
    assert format_line(process) == "2026-03-01T00:00:00.000Z INFO     sp_scheduler.beat tick"
