"""`--for` / `--until` of jobs enable/disable and the queued-run deadline: checked before any server is used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.cli.expiry import expiry, parse_duration, parse_until
from sp_scheduler.errors import ExitCode, UsageError
from sp_scheduler.settings import DEFAULT_QUEUED_DEADLINE, Settings

NOW = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 2H 15m ", timedelta(hours=2, minutes=15)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2", "expected a duration"),
        ("abc", "expected a duration"),
        ("-1h", "expected a duration"),
        ("1.5h", "expected a duration"),
        ("2 hours", "expected a duration"),
        ("0s", "at least one second"),
        ("3661d", "longer than ten years"),
        ("99999999999999999999w", "longer than ten years"),
    ],
)
def test_bad_durations_are_one_line_usage_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        parse_duration(text)
    assert f"--for {text!r}" in str(caught.value) and "\n" not in str(caught.value)


def test_until_takes_iso_times_and_naive_means_utc() -> None:
    assert parse_until("2026-12-05T09:00", NOW) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert parse_until("2026-12-05 09:00Z", NOW) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert parse_until("2026-12-05T10:00+01:00", NOW) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-12-04T18:59", "in the past"),
        ("2026-12-04T19:00", "in the past"),
        ("yesterday", "expected an ISO-8601 time"),
        ("2026-13-01", "expected an ISO-8601 time"),
    ],
)
def test_until_refuses_the_past_and_non_times(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_until(text, NOW)


def test_expiry_is_none_without_options_and_refuses_both() -> None:
    assert expiry(None, None, NOW) is None
    assert expiry("2h", None, NOW) == NOW + timedelta(hours=2)
    assert expiry(None, "2026-12-05T00:00", NOW) == datetime(2026, 12, 5, tzinfo=UTC)
    with pytest.raises(UsageError, match="not both"):
        expiry("2h", "2026-12-05T00:00", NOW)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--for", "soon"], "--for 'soon': expected a duration"),
        (["--until", "2001-01-01T00:00"], "--until '2001-01-01T00:00': that time is in the past"),
        (["--for", "1h", "--until", "2099-01-01"], "give one or the other"),
    ],
)
def test_bad_expiry_exits_2_in_one_line(monkeypatch: pytest.MonkeyPatch, args: list[str], why: str) -> None:
    # The database URL points nowhere: bad input must be refused before any server is touched.
    monkeypatch.setenv("SP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["jobs", "disable", "heartbeat", *args])
    assert result.exit_code == ExitCode.INVALID, result.output
    assert why in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_queued_deadline_setting() -> None:
    assert Settings.from_env({}).queued_deadline == DEFAULT_QUEUED_DEADLINE == 3600.0
    settings = Settings.from_env({"SP_QUEUED_DEADLINE": "120"})
    assert settings.queued_deadline == 120.0
    assert settings.to_env()["SP_QUEUED_DEADLINE"] == "120.0"
    with pytest.raises(UsageError, match="SP_QUEUED_DEADLINE"):
        Settings.from_env({"SP_QUEUED_DEADLINE": "soon"})
    with pytest.raises(UsageError, match="must be positive"):
        Settings.from_env({"SP_QUEUED_DEADLINE": "0"})
