"""Table tests for the cron engine: syntax, errors, calendar edge cases (DST lives in test_cron_dst.py)."""

from __future__ import annotations

import ast
import pickle
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice, pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sp_scheduler.cron import CronExpression, load_zone, parse_schedule
from sp_scheduler.errors import CronError, ExitCode, InvalidCronExpression, InvalidTimeZone, NoFireTime, SchedulerError

WED = datetime(2026, 5, 13, 10, 7, 23, tzinfo=UTC)  # a Wednesday


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def upcoming(expr: str, after: datetime, count: int = 3, tz: str = "UTC") -> list[datetime]:
    return list(islice(CronExpression.parse(expr, tz).iter_after(after), count))


# --- the seed examples ----------------------------------------------------------------------------

SEEDS = [
    ("0 0 * * * *", [utc(2026, 5, 13, 11), utc(2026, 5, 13, 12), utc(2026, 5, 13, 13)]),
    ("0 */15 * * * *", [utc(2026, 5, 13, 10, 15), utc(2026, 5, 13, 10, 30), utc(2026, 5, 13, 10, 45)]),
    ("0 */30 * * * *", [utc(2026, 5, 13, 10, 30), utc(2026, 5, 13, 11), utc(2026, 5, 13, 11, 30)]),
    ("0 0 3 * * *", [utc(2026, 5, 14, 3), utc(2026, 5, 15, 3), utc(2026, 5, 16, 3)]),
    ("0 0 7,19 * * *", [utc(2026, 5, 13, 19), utc(2026, 5, 14, 7), utc(2026, 5, 14, 19)]),
    ("0 0 18 * * *", [utc(2026, 5, 13, 18), utc(2026, 5, 14, 18), utc(2026, 5, 15, 18)]),
    ("0 0 0 * * 0", [utc(2026, 5, 17), utc(2026, 5, 24), utc(2026, 5, 31)]),
    ("0 0 0 1 * *", [utc(2026, 6, 1), utc(2026, 7, 1), utc(2026, 8, 1)]),
    ("0 0 */2 * * *", [utc(2026, 5, 13, 12), utc(2026, 5, 13, 14), utc(2026, 5, 13, 16)]),
    ("0 30 2 * * *", [utc(2026, 5, 14, 2, 30), utc(2026, 5, 15, 2, 30), utc(2026, 5, 16, 2, 30)]),
    ("0 0 0 * * 1", [utc(2026, 5, 18), utc(2026, 5, 25), utc(2026, 6, 1)]),
    ("0 0 0 * * *", [utc(2026, 5, 14), utc(2026, 5, 15), utc(2026, 5, 16)]),
]


@pytest.mark.parametrize(("expr", "expected"), SEEDS, ids=[expr for expr, _ in SEEDS])
def test_seed_examples(expr: str, expected: list[datetime]) -> None:
    assert upcoming(expr, WED) == expected
    cron = CronExpression.parse(expr)
    assert all(cron.matches(when) for when in expected)


@pytest.mark.parametrize(
    ("expr", "seconds"),
    [
        ("0 0 * * * *", 3600),
        ("0 */15 * * * *", 900),
        ("0 */30 * * * *", 1800),
        ("0 0 3 * * *", 86400),
        ("0 0 7,19 * * *", 12 * 3600),
        ("0 0 0 * * 0", 7 * 86400),
        ("0 0 */2 * * *", 7200),
        ("* * * * * *", 1),
    ],
)
def test_period_seconds(expr: str, seconds: int) -> None:
    assert CronExpression.parse(expr).period_seconds() == seconds
    assert CronExpression.parse(expr, "Europe/Berlin").period_seconds() == seconds


# --- syntax -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # names, case-insensitive, and names in ranges and lists
        ("0 0 12 * JAN-MAR MON-FRI", utc(2026, 3, 31, 12), [utc(2027, 1, 1, 12), utc(2027, 1, 4, 12)]),
        ("0 0 0 1 jan,Jul *", utc(2026, 1, 1), [utc(2026, 7, 1), utc(2027, 1, 1)]),
        ("0 0 0 * * sun", WED, [utc(2026, 5, 17), utc(2026, 5, 24)]),
        ("0 0 0 * * SAT,sun", WED, [utc(2026, 5, 16), utc(2026, 5, 17), utc(2026, 5, 23)]),
        ("0 0 0 1 JAN-DEC/3 *", WED, [utc(2026, 7, 1), utc(2026, 10, 1), utc(2027, 1, 1)]),
        # ranges and steps
        ("10-40/5 0 0 * * *", utc(2026, 5, 13), [utc(2026, 5, 13, 0, 0, 10), utc(2026, 5, 13, 0, 0, 15)]),
        ("10-40/5 0 0 * * *", utc(2026, 5, 13, 0, 0, 40), [utc(2026, 5, 14, 0, 0, 10)]),
        ("0 5/10 * * * *", utc(2026, 5, 13, 10), [utc(2026, 5, 13, 10, 5), utc(2026, 5, 13, 10, 15)]),
        ("0 5/10 * * * *", utc(2026, 5, 13, 10, 55), [utc(2026, 5, 13, 11, 5)]),
        ("*/20 * * * * *", utc(2026, 5, 13, 10, 0, 41), [utc(2026, 5, 13, 10, 1), utc(2026, 5, 13, 10, 1, 20)]),
        ("0 0 9-17 * * MON-FRI", utc(2026, 5, 15, 17), [utc(2026, 5, 18, 9), utc(2026, 5, 18, 10)]),
        ("0 0 0 1-5,10,20-22/2 * *", utc(2026, 5, 5), [utc(2026, 5, 10), utc(2026, 5, 20), utc(2026, 5, 22)]),
        ("0 0 */7 * * *", WED, [utc(2026, 5, 13, 14), utc(2026, 5, 13, 21), utc(2026, 5, 14, 0)]),
        ("0 0 0 */10 * *", WED, [utc(2026, 5, 21), utc(2026, 5, 31), utc(2026, 6, 1)]),
        ("59 59 23 31 12 *", WED, [utc(2026, 12, 31, 23, 59, 59), utc(2027, 12, 31, 23, 59, 59)]),
        # Sunday is 0 and 7; a range may end at 7
        ("0 0 0 * * 7", WED, [utc(2026, 5, 17), utc(2026, 5, 24)]),
        ("0 0 0 * * 5-7", WED, [utc(2026, 5, 15), utc(2026, 5, 16), utc(2026, 5, 17), utc(2026, 5, 22)]),
        ("0 0 0 * * 0,7", WED, [utc(2026, 5, 17), utc(2026, 5, 24)]),
        ("0 0 0 * * */2", WED, [utc(2026, 5, 14), utc(2026, 5, 16), utc(2026, 5, 17), utc(2026, 5, 19)]),
        ("0 0 0 * * 4/1", WED, [utc(2026, 5, 14), utc(2026, 5, 15), utc(2026, 5, 16), utc(2026, 5, 21)]),
    ],
)
def test_syntax(expr: str, after: datetime, expected: list[datetime]) -> None:
    assert upcoming(expr, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("macro", "equivalent"),
    [
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
        ("@DAILY", "0 0 0 * * *"),
    ],
)
def test_macros(macro: str, equivalent: str) -> None:
    cron = CronExpression.parse(f"  {macro} ")
    assert cron.source == macro
    assert upcoming(macro, WED, 5) == upcoming(equivalent, WED, 5)


def test_empty_schedule_is_manual_only() -> None:
    assert parse_schedule("") is None
    assert parse_schedule("   \t\n") is None
    assert parse_schedule("0 0 3 * * *") == CronExpression.parse("0 0 3 * * *")
    cron = parse_schedule("0 0 3 * * *", "Europe/Berlin")
    assert cron is not None
    assert cron.tz == ZoneInfo("Europe/Berlin")


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("", "empty expression (an empty schedule means manual-only)"),
        ("   ", "empty expression (an empty schedule means manual-only)"),
        (
            "*/5 * * * *",
            "5 fields given; sp-scheduler uses six fields with seconds first: did you mean '0 */5 * * * *'?",
        ),
        (
            "  0   3 * * 1 ",
            "5 fields given; sp-scheduler uses six fields with seconds first: did you mean '0 0 3 * * 1'?",
        ),
        ("0 0 0 * * * *", "expected 6 fields (sec min hour dom month dow), got 7"),
        ("0 0 0", "expected 6 fields (sec min hour dom month dow), got 3"),
        ("@often", "unknown macro '@often' (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"),
        ("60 * * * * *", "second field: 60 is out of range 0-59"),
        ("0 61 * * * *", "minute field: 61 is out of range 0-59"),
        ("0 0 24 * * *", "hour field: 24 is out of range 0-23"),
        ("0 0 0 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("0 0 0 32 * *", "day-of-month field: 32 is out of range 1-31"),
        ("0 0 0 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 0 0 * 0 *", "month field: 0 is out of range 1-12"),
        ("0 0 0 * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("0 0-70 * * * *", "minute field: 70 is out of range 0-59"),
        ("0 */0 * * * *", "minute field: step must be a positive integer, got '0'"),
        ("0 */-5 * * * *", "minute field: step must be a positive integer, got '-5'"),
        ("0 */x * * * *", "minute field: step must be a positive integer, got 'x'"),
        ("0 */ * * * *", "minute field: step must be a positive integer, got ''"),
        ("0 1/2/3 * * * *", "minute field: step must be a positive integer, got '2/3'"),
        ("0 40-10 * * * *", "minute field: range 40-10 is reversed"),
        (
            "0 0 0 * * FRI-MON",
            "day-of-week field: range FRI-MON is reversed; ranges cannot wrap: write FRI-SAT,SUN-MON",
        ),
        ("0 0 0 * DEC-JAN *", "month field: range DEC-JAN is reversed; ranges cannot wrap: write DEC,JAN"),
        ("0 0 0 * 11-3 *", "month field: range 11-3 is reversed; ranges cannot wrap: write 11-12,1-3"),
        ("0 1,,2 * * * *", "minute field: empty list item in '1,,2'"),
        ("0 1, * * * *", "minute field: empty list item in '1,'"),
        ("0 -5 * * * *", "minute field: missing value in '-5'"),
        ("0 5- * * * *", "minute field: missing value in '5-'"),
        ("0 /5 * * * *", "minute field: missing value in '/5'"),
        ("0 1-2-3 * * * *", "minute field: '2-3' is not a number"),
        ("0 x * * * *", "minute field: 'x' is not a number"),
        ("0 MON * * * *", "minute field: 'MON' is not a number"),
        ("0 0 0 ? * *", "day-of-month field: '?' is not a number"),
        ("0 0 0 H * *", "day-of-month field: 'H' is not a number"),
        ("0 0 0 * FOO *", "month field: 'FOO' is not a number or month name (JAN-DEC)"),
        ("0 0 0 * * MONDAY", "day-of-week field: 'MONDAY' is not a number or weekday name (SUN-SAT)"),
        ("0 0 0 * * 1?2", "day-of-week field: '1?2' is not a number or weekday name (SUN-SAT)"),
        ("0 0 0 * MON *", "month field: 'MON' is not a number or month name (JAN-DEC)"),
        ("0 0 0 * * JAN", "day-of-week field: 'JAN' is not a number or weekday name (SUN-SAT)"),
        ("0 \uff15 * * * *", "minute field: '\uff15' is not a number"),  # a full-width digit
        ("0 *-5 * * * *", "minute field: '*' is not a number"),
        # never fires
        ("0 0 0 31 2 *", "never fires: day 31 does not occur in Feb"),
        ("0 0 0 30 2 *", "never fires: day 30 does not occur in Feb"),
        ("0 0 0 30,31 FEB *", "never fires: days 30, 31 do not occur in Feb"),
        ("0 0 0 31 4,6,9,11 *", "never fires: day 31 does not occur in Apr, Jun, Sep or Nov"),
        ("0 0 0 31 2,4 */2", "never fires: day 31 does not occur in Feb or Apr"),
    ],
)
def test_errors(expr: str, reason: str) -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression.parse(expr)
    assert caught.value.reason == reason
    assert caught.value.expression == expr.strip()
    assert str(caught.value) == f"invalid cron expression {expr.strip()!r}: {reason}"


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 0 29 2 *",  # leap years
        "0 0 0 31 2,3 *",  # March has a 31st
        "0 0 0 31 2 1",  # day-of-week fires on its own (either matches)
        "0 0 0 30 2 MON-FRI",
        "0 0 0 31 4,6,9,11 0",
    ],
)
def test_not_never_fires(expr: str) -> None:
    assert CronExpression.parse(expr).next_after(WED) > WED


def test_parse_schedule_raises_for_bad_expressions() -> None:
    with pytest.raises(InvalidCronExpression):
        parse_schedule("* * * * *")


# --- calendar rules -------------------------------------------------------------------------------


def test_dom_and_dow_both_restricted_means_either() -> None:
    cron = CronExpression.parse("0 0 0 13 * FRI")
    assert cron.dom_dow_both_restricted
    fires = upcoming("0 0 0 13 * FRI", utc(2026, 2, 11), 6)
    # Fri 13 Feb fires once; every Friday and every 13th fire.
    assert fires == [
        utc(2026, 2, 13),
        utc(2026, 2, 20),
        utc(2026, 2, 27),
        utc(2026, 3, 6),
        utc(2026, 3, 13),
        utc(2026, 3, 20),
    ]
    assert cron.matches(utc(2026, 4, 13))  # a Monday, but the 13th
    assert cron.matches(utc(2026, 4, 3))  # a Friday
    assert not cron.matches(utc(2026, 4, 14))


@pytest.mark.parametrize(
    ("expr", "both"),
    [
        ("0 0 0 * * *", False),
        ("0 0 0 1 * *", False),
        ("0 0 0 * * 1", False),
        ("0 0 0 1 * 1", True),
        ("0 0 0 1-31 * 0-7", True),  # syntactically restricted even though every day is allowed
        ("0 0 0 */2 * 1", False),  # `*/2` starts with `*`: not restricted (Vixie)
        ("0 0 0 1 * */1", False),
        ("@weekly", False),
    ],
)
def test_dom_dow_both_restricted(expr: str, both: bool) -> None:
    assert CronExpression.parse(expr).dom_dow_both_restricted is both


def test_star_step_day_field_combines_with_and() -> None:
    # `*/2` is unrestricted for the either-rule (it starts with `*`), so both sets must hold: odd days
    # that are Mondays. 2026-06-01, 06-15 and 06-29 are odd-dated Mondays; 06-08 and 06-22 are not odd.
    assert upcoming("0 0 0 */2 * MON", utc(2026, 5, 31), 4) == [
        utc(2026, 6, 1),
        utc(2026, 6, 15),
        utc(2026, 6, 29),
        utc(2026, 7, 13),
    ]


def test_full_but_restricted_day_fields_fire_every_day() -> None:
    assert upcoming("0 0 0 1-31 * 0-6", WED, 3) == [utc(2026, 5, 14), utc(2026, 5, 15), utc(2026, 5, 16)]


def test_leap_years() -> None:
    assert CronExpression.parse("0 0 0 29 2 *").next_after(utc(2025, 1, 1)) == utc(2028, 2, 29)
    assert upcoming("0 0 0 29 2 *", utc(2024, 2, 29), 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    # 2100 is not a leap year, 2000 was.
    assert CronExpression.parse("0 0 0 29 2 *").next_after(utc(2097, 1, 1)) == utc(2104, 2, 29)
    assert CronExpression.parse("0 0 0 29 2 *").next_after(utc(1999, 1, 1)) == utc(2000, 2, 29)
    assert CronExpression.parse("0 0 0 * 2 *").next_after(utc(2028, 2, 28, 12)) == utc(2028, 2, 29)
    assert CronExpression.parse("0 0 0 * 2 *").next_after(utc(2027, 2, 28, 12)) == utc(2028, 2, 1)


def test_31_day_months() -> None:
    assert upcoming("0 0 0 31 * *", utc(2026, 1, 1), 7) == [
        utc(2026, 1, 31),
        utc(2026, 3, 31),
        utc(2026, 5, 31),
        utc(2026, 7, 31),
        utc(2026, 8, 31),
        utc(2026, 10, 31),
        utc(2026, 12, 31),
    ]
    assert CronExpression.parse("0 0 0 30 * *").next_after(utc(2026, 1, 30)) == utc(2026, 3, 30)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("* * * * * *", utc(2027, 1, 1)),
        ("0 * * * * *", utc(2027, 1, 1)),
        ("0 0 0 1 1 *", utc(2027, 1, 1)),
        ("0 0 0 * * 5", utc(2027, 1, 1)),  # 2027-01-01 is a Friday
        ("30 * * * * *", utc(2027, 1, 1, 0, 0, 30)),
    ],
)
def test_end_of_year_rollover(expr: str, expected: datetime) -> None:
    assert CronExpression.parse(expr).next_after(utc(2026, 12, 31, 23, 59, 59)) == expected


def test_no_fire_before_year_10000() -> None:
    with pytest.raises(ValueError, match="no fire time before year 10000"):
        CronExpression.parse("0 0 0 29 2 *").next_after(utc(9997, 1, 1))


def test_cron_errors_belong_to_the_projects_tree_and_stay_value_errors() -> None:
    with pytest.raises(NoFireTime) as no_fire:
        CronExpression.parse("0 0 0 29 2 *").next_after(utc(9997, 1, 1))
    with pytest.raises(NoFireTime) as none_before:
        CronExpression.parse("0 0 0 29 2 *").prev_before(utc(4, 2, 1))
    with pytest.raises(InvalidCronExpression) as invalid:
        CronExpression.parse("0 0 0 30 2 *")
    for caught in (no_fire.value, none_before.value, invalid.value):
        assert isinstance(caught, CronError) and isinstance(caught, SchedulerError) and isinstance(caught, ValueError)
        assert caught.exit_code == ExitCode.INVALID
    assert str(none_before.value).startswith("cron expression '0 0 0 29 2 *' has no fire time before 0004-02-01")


# --- `after` handling -----------------------------------------------------------------------------


def test_naive_after_is_wall_clock_in_the_expression_zone() -> None:
    cron = CronExpression.parse("0 0 3 * * *")
    assert cron.next_after(datetime(2026, 5, 13, 10, 7)) == utc(2026, 5, 14, 3)
    tokyo = CronExpression.parse("0 0 3 * * *", "Asia/Tokyo")
    fire = tokyo.next_after(datetime(2026, 5, 13, 2, 59, 59))
    assert fire == datetime(2026, 5, 13, 3, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert fire.utcoffset() == timedelta(hours=9)


def test_aware_after_in_any_zone() -> None:
    cron = CronExpression.parse("0 0 3 * * *")
    plus_five = timezone(timedelta(hours=5))
    # 07:30+05:00 is 02:30 UTC, so 03:00 UTC the same day is next.
    assert cron.next_after(datetime(2026, 5, 13, 7, 30, tzinfo=plus_five)) == utc(2026, 5, 13, 3)
    assert cron.next_after(datetime(2026, 5, 13, 7, 30, tzinfo=ZoneInfo("Asia/Karachi"))) == utc(2026, 5, 13, 3)
    tokyo = CronExpression.parse("0 0 3 * * *", "Asia/Tokyo")
    # 19:00 UTC is 04:00 in Tokyo the next day, so 03:00 Tokyo the day after.
    assert tokyo.next_after(utc(2026, 5, 13, 19)) == datetime(2026, 5, 15, 3, tzinfo=ZoneInfo("Asia/Tokyo"))


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Etc/GMT-5", "Asia/Kolkata"])
def test_results_are_aware_in_the_expression_zone_and_whole_seconds(tz: str) -> None:
    cron = CronExpression.parse("*/7 * * * * *", tz)
    for fire in islice(cron.iter_after(datetime(2026, 5, 13, 10, 7, 23, 999999)), 20):
        assert fire.tzinfo is load_zone(tz)
        assert fire.microsecond == 0
        assert fire.second % 7 == 0


def test_fixed_offset_zone() -> None:
    cron = CronExpression.parse("0 0 3 * * *", "Etc/GMT-5")  # POSIX sign: UTC+5
    fire = cron.next_after(utc(2026, 5, 13))
    assert fire.utcoffset() == timedelta(hours=5)
    assert fire == utc(2026, 5, 13, 22)


def test_results_are_strictly_after() -> None:
    cron = CronExpression.parse("0 */15 * * * *")
    assert cron.next_after(utc(2026, 5, 13, 10, 15)) == utc(2026, 5, 13, 10, 30)
    assert cron.next_after(utc(2026, 5, 13, 10, 14, 59, 999999)) == utc(2026, 5, 13, 10, 15)
    assert cron.next_after(utc(2026, 5, 13, 10, 15, 0, 1)) == utc(2026, 5, 13, 10, 30)
    every = CronExpression.parse("* * * * * *")
    assert every.next_after(utc(2026, 5, 13, 10, 15, 0, 500000)) == utc(2026, 5, 13, 10, 15, 1)
    fires = list(islice(every.iter_after(WED), 100))
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(fires))
    assert fires[0] == WED + timedelta(seconds=1)


# --- the object -----------------------------------------------------------------------------------


def test_matches() -> None:
    cron = CronExpression.parse("0 */15 9-17 * * MON-FRI")
    assert cron.matches(utc(2026, 5, 13, 9, 15))
    assert cron.matches(datetime(2026, 5, 13, 9, 15))  # naive: wall clock in the zone
    assert not cron.matches(utc(2026, 5, 13, 9, 16))
    assert not cron.matches(utc(2026, 5, 13, 9, 15, 1))
    assert not cron.matches(utc(2026, 5, 13, 18, 0))
    assert not cron.matches(utc(2026, 5, 16, 9, 15))  # Saturday
    berlin = CronExpression.parse("0 0 3 * * *", "Europe/Berlin")
    assert berlin.matches(utc(2026, 5, 13, 1))  # 03:00 in Berlin (CEST)
    assert not berlin.matches(utc(2026, 5, 13, 3))


def test_value_semantics() -> None:
    a = CronExpression.parse(" 0 0 3 * * * ")
    b = CronExpression.parse("0 0 3 * * *", ZoneInfo("UTC"))
    assert a.source == "0 0 3 * * *"
    assert a == b
    assert hash(a) == hash(b)
    assert a != CronExpression.parse("0 0 3 * * *", "Europe/Berlin")
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.source = "0 0 4 * * *"  # type: ignore[misc]
    assert repr(a) == "CronExpression(source='0 0 3 * * *', tz=zoneinfo.ZoneInfo(key='UTC'))"
    copy = pickle.loads(pickle.dumps(a))
    assert copy == a
    assert copy.next_after(WED) == a.next_after(WED)


def test_direct_construction_parses_too() -> None:
    cron = CronExpression("@hourly", ZoneInfo("UTC"))
    assert cron.next_after(WED) == utc(2026, 5, 13, 11)
    with pytest.raises(InvalidCronExpression):
        CronExpression("0 0 3 * *", ZoneInfo("UTC"))


def test_load_zone() -> None:
    assert load_zone("Europe/Berlin") is load_zone("Europe/Berlin")
    assert load_zone("UTC") == ZoneInfo("UTC")
    for bad in ["Mars/Olympus", "Europe", "", "../etc/passwd", "/etc/passwd", "Europe/Berlin "]:
        with pytest.raises(InvalidTimeZone) as caught:
            load_zone(bad)
        assert caught.value.name == bad
    with pytest.raises(InvalidTimeZone):
        CronExpression.parse("0 0 3 * * *", "Not/AZone")
    with pytest.raises(InvalidTimeZone):
        parse_schedule("0 0 3 * * *", "Not/AZone")


@pytest.mark.parametrize("module", ["cron.py", "cron_fields.py", "cron_days.py"])
def test_module_imports_only_the_standard_library(module: str) -> None:
    source = Path(__file__).parents[2] / "sp_scheduler" / module
    tree = ast.parse(source.read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in ([alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""])
    }
    assert imported <= {"__future__", "functools", "math", "re", "collections", "dataclasses", "datetime"} | {
        "zoneinfo",
        "sp_scheduler",
    }


@pytest.mark.parametrize(
    ("expr", "before", "expected"),
    [
        ("0 0 9 * * MON-FRI", utc(2026, 12, 6, 12), utc(2026, 12, 4, 9)),  # Sunday -> Friday
        ("0 0 9 * * MON-FRI", utc(2026, 12, 4, 9), utc(2026, 12, 3, 9)),  # strictly before
        ("0 0 9 * * MON-FRI", utc(2026, 12, 4, 9, micro=1), utc(2026, 12, 4, 9)),
        ("0 0 0 29 2 *", utc(2026, 1, 1), utc(2024, 2, 29)),
        ("0 0 0 1 1 *", utc(2001, 1, 1), utc(2000, 1, 1)),
        ("* * * * * *", utc(2026, 1, 1), utc(2025, 12, 31, 23, 59, 59)),
    ],
)
def test_prev_before(expr: str, before: datetime, expected: datetime) -> None:
    assert CronExpression.parse(expr).prev_before(before) == expected
