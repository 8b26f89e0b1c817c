"""`L`, `L-n`, `nW`, `LW` (day of month), `xL`, `x#n` and ranges ending on Sunday (day of week).

Named examples first, then property tests against references written without the engine: each
generated rule carries its own plain-Python day test (the last day is the one whose next day is in
another month, the n-th weekday is the one with (day - 1) // 7 == n - 1, ...), checked day by day
over decades and second by second around a fire. The DST part runs bench/cron_dst_sweep.py's check
on a few zones; the script itself sweeps every IANA zone from 2020 to 2035.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.cron_dst_sweep import EXPRESSIONS, check_transition, transitions
from sp_scheduler.cron import CronExpression
from sp_scheduler.errors import InvalidCronExpression

DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
DayTest = Callable[[date], bool]


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def first_fires(expr: str, after: datetime, count: int, tz: str = "UTC") -> list[datetime]:
    return list(islice(CronExpression.parse(expr, tz).iter_after(after), count))


# --- named examples (docs/cron.md) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        ("0 0 0 L * *", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
        ("0 0 0 L 2 *", ["2026-02-28", "2027-02-28", "2028-02-29", "2029-02-28"]),
        ("0 0 0 L-3 * *", ["2026-01-28", "2026-02-25", "2026-03-28", "2026-04-27"]),
        ("0 0 0 L-30 * *", ["2026-01-01", "2026-03-01", "2026-05-01", "2026-07-01"]),  # 31-day months only
        ("0 0 0 * * 5L", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
        ("0 0 0 * * FRIL", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
        ("0 0 0 * * MON#1", ["2026-01-05", "2026-02-02", "2026-03-02", "2026-04-06"]),
        ("0 0 0 * * 5#3", ["2026-01-16", "2026-02-20", "2026-03-20", "2026-04-17"]),
        ("0 0 0 * * 1#5", ["2026-03-30", "2026-06-29", "2026-08-31", "2026-11-30"]),  # no fifth Monday: skipped
        ("0 0 0 * * 0#1,7L", ["2026-01-04", "2026-01-25", "2026-02-01", "2026-02-22"]),
        ("0 0 0 15W * *", ["2026-01-15", "2026-02-16", "2026-03-16", "2026-04-15"]),  # Feb 15 is a Sunday
        ("0 0 0 1W * *", ["2026-01-01", "2026-02-02", "2026-03-02", "2026-04-01"]),  # never into January
        ("0 0 0 31W * *", ["2026-01-30", "2026-03-31", "2026-05-29", "2026-07-31"]),  # 31 Jan is a Saturday
        ("0 0 0 LW * *", ["2026-01-30", "2026-02-27", "2026-03-31", "2026-04-30"]),
        ("0 0 0 1,L * *", ["2026-01-01", "2026-01-31", "2026-02-01", "2026-02-28"]),
        ("0 0 0 * * MON-SUN", ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 0 * * FRI-0", ["2026-01-02", "2026-01-03", "2026-01-04", "2026-01-09"]),
        ("0 0 0 * * 5-7", ["2026-01-02", "2026-01-03", "2026-01-04", "2026-01-09"]),
        ("0 0 0 * * MON-SUN/3", ["2026-01-01", "2026-01-04", "2026-01-05", "2026-01-08"]),  # Mon, Thu, Sun
        ("0 0 0 L * FRI", ["2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23", "2026-01-30", "2026-01-31"]),
        ("0 0 0 */2 * FRIL", ["2026-02-27", "2026-03-27", "2026-05-29", "2026-07-31"]),  # AND: odd dates only
        ("0 0 0 L * SAT#1", ["2026-01-03", "2026-01-31", "2026-02-07", "2026-02-28"]),
    ],
)
def test_examples(expr: str, days: list[str]) -> None:
    after = utc(2025, 12, 31, 12)
    fired = first_fires(expr, after, len(days))
    assert [moment.date().isoformat() for moment in fired] == days
    assert all(CronExpression.parse(expr).matches(moment) for moment in fired)


def test_time_zone_and_prev_before() -> None:
    cron = CronExpression.parse("0 0 9 * * MON#1", "America/New_York")
    assert cron.next_after(utc(2026, 1, 1)).isoformat() == "2026-01-05T09:00:00-05:00"
    assert cron.prev_before(utc(2026, 1, 1)).isoformat() == "2025-12-01T09:00:00-05:00"
    assert CronExpression.parse("0 0 0 L * *").prev_before(utc(2028, 3, 1)) == utc(2028, 2, 29)


def test_last_sunday_of_march_in_berlin_fires_once_at_the_end_of_the_gap() -> None:
    """The EU switches on the last Sunday: 02:30 that day does not exist, so it fires at 03:00 CEST."""
    fired = first_fires("0 30 2 * * SUNL", utc(2026, 3, 1), 3, "Europe/Berlin")
    assert [moment.isoformat() for moment in fired] == [
        "2026-03-29T03:00:00+02:00",
        "2026-04-26T02:30:00+02:00",
        "2026-05-31T02:30:00+02:00",
    ]
    back = first_fires("0 30 2 * * SUNL", utc(2026, 10, 1), 1, "Europe/Berlin")
    assert back[0].isoformat() == "2026-10-25T02:30:00+02:00"  # the first pass only


def test_dom_dow_either_rule_applies_to_the_new_forms() -> None:
    assert CronExpression.parse("0 0 0 L * FRI").dom_dow_both_restricted
    assert not CronExpression.parse("0 0 0 L * *").dom_dow_both_restricted
    assert not CronExpression.parse("0 0 0 * * 5L").dom_dow_both_restricted


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("0 0 0 L * * *", "expected 6 fields (sec min hour dom month dow), got 7"),
        (
            "0 0 L * 5#2",
            "5 fields given; sp-scheduler uses six fields with seconds first: did you mean '0 0 0 L * 5#2'?",
        ),
        ("0 0 0 L-31 * *", "day-of-month field: 'L-31': L-n needs n from 0 to 30"),
        ("0 0 0 L-x * *", "day-of-month field: 'L-x': L-n needs n from 0 to 30"),
        ("0 0 0 32W * *", "day-of-month field: '32W': nW needs a day from 1 to 31"),
        ("0 0 0 W * *", "day-of-month field: 'W': nW needs a day from 1 to 31"),
        ("0 0 0 LX * *", "day-of-month field: 'LX' is not a number, L, L-n, LW or nW"),
        ("0 0 0 L/2 * *", "day-of-month field: 'L/2': L, W and # take no range or step"),
        ("0 0 0 1-LW * *", "day-of-month field: '1-LW': L, W and # take no range or step"),
        ("0 0 0 * * 1#6", "day-of-week field: '1#6': x#n needs n from 1 to 5"),
        ("0 0 0 * * 1#0", "day-of-week field: '1#0': x#n needs n from 1 to 5"),
        ("0 0 0 * * #2", "day-of-week field: missing value in '#2'"),
        ("0 0 0 * * 8#2", "day-of-week field: 8 is out of range 0-7"),
        ("0 0 0 * * FOOL", "day-of-week field: 'FOO' is not a number or weekday name (SUN-SAT)"),
        (
            "0 0 0 * * L",
            "day-of-week field: 'L' alone is ambiguous in day of week: write SATL (last Saturday) or put L in day "
            "of month",
        ),
        ("0 0 0 * * MON-FRIL", "day-of-week field: 'MON-FRIL': L, W and # take no range or step"),
        ("0 0 0 L-30 2 *", "never fires: day L-30 does not occur in Feb"),
        ("0 0 0 30W,31 2 *", "never fires: days 31, 30W do not occur in Feb"),
        (
            "0 0 0 * NOV-MAR *",
            "month field: range NOV-MAR is reversed; ranges cannot wrap: write NOV-DEC,JAN-MAR",
        ),
        ("0 0 0 * * SAT-MON", "day-of-week field: range SAT-MON is reversed; ranges cannot wrap: write SAT,SUN-MON"),
        ("0 0 0 * * 6-1", "day-of-week field: range 6-1 is reversed; ranges cannot wrap: write 6,0-1"),
    ],
)
def test_errors(expr: str, reason: str) -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression.parse(expr)
    assert caught.value.reason == reason


@pytest.mark.parametrize("expr", ["0 0 0 L-27 2 *", "0 0 0 29W 2 *", "0 0 0 LW 2 *", "0 0 0 L-30 2 MON"])
def test_fires_somewhere(expr: str) -> None:
    assert CronExpression.parse(expr).next_after(utc(2026, 1, 1)).year <= 2028


# --- references written without the engine ---------------------------------------------------------


def days_in(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def is_weekday(day: date) -> bool:
    return day.isoweekday() <= 5


def nearest_weekday_ref(n: int) -> DayTest:
    """The Monday-Friday of the same month closest to day n (there is never a tie)."""

    def test(day: date) -> bool:
        if n > days_in(day) or not is_weekday(day):
            return False
        month = [day.replace(day=k) for k in range(1, days_in(day) + 1)]
        return min((d for d in month if is_weekday(d)), key=lambda d: abs(d.day - n)) == day

    return test


def last_weekday_ref(day: date) -> bool:
    return is_weekday(day) and all(
        not is_weekday(day + timedelta(days=k)) for k in range(1, days_in(day) - day.day + 1)
    )


def weekday_of(day: date) -> int:
    return day.isoweekday() % 7  # Sunday = 0


@dataclass(frozen=True)
class DayField:
    text: str
    test: DayTest
    star: bool = False


@st.composite
def dom_field(draw: st.DrawFn) -> DayField:
    """Day of month: `*`, or 1-3 items among plain days, ranges, L, L-n, nW and LW."""
    if draw(st.integers(0, 4)) == 0:
        return DayField("*", lambda day: True, star=True)
    texts: list[str] = []
    tests: list[DayTest] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["a", "a-b", "L", "L-n", "nW", "LW"]))
        n = draw(st.integers(1, 31))
        if kind == "a":
            texts.append(str(n))
            tests.append(lambda day, n=n: day.day == n)
        elif kind == "a-b":
            b = draw(st.integers(n, 31))
            texts.append(f"{n}-{b}")
            tests.append(lambda day, n=n, b=b: n <= day.day <= b)
        elif kind == "L":
            texts.append(draw(st.sampled_from(["L", "l"])))
            tests.append(lambda day: (day + timedelta(days=1)).month != day.month)
        elif kind == "L-n":
            k = draw(st.integers(0, 30))
            texts.append(f"L-{k}")
            tests.append(
                lambda day, k=k: (
                    (day + timedelta(days=k)).month == day.month and (day + timedelta(days=k + 1)).month != day.month
                )
            )
        elif kind == "nW":
            texts.append(f"{n}W")
            tests.append(nearest_weekday_ref(n))
        else:
            texts.append("LW")
            tests.append(last_weekday_ref)
    return DayField(",".join(texts), lambda day: any(test(day) for test in tests))


@st.composite
def dow_field(draw: st.DrawFn) -> DayField:
    """Day of week: `*`, or 1-3 items among weekdays, ranges (ending on Sunday too), xL and x#n."""
    if draw(st.integers(0, 4)) == 0:
        return DayField("*", lambda day: True, star=True)

    def token(value: int) -> str:
        return DAYS[value % 7] if draw(st.booleans()) else str(value)

    texts: list[str] = []
    tests: list[DayTest] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["a", "a-b", "a-SUN", "xL", "x#n"]))
        w = draw(st.integers(0, 7))
        if kind == "a":
            texts.append(token(w))
            tests.append(lambda day, w=w % 7: weekday_of(day) == w)
        elif kind == "a-b":
            b = draw(st.integers(w, 7))
            first = str(w) if w == 7 else token(w)  # SUN is 0, so SUN-7 would be every day
            texts.append(f"{first}-{token(b)}" if b < 7 else f"{first}-7")
            tests.append(lambda day, w=w, b=b: w <= weekday_of(day) <= b or (b == 7 and weekday_of(day) == 0))
        elif kind == "a-SUN":
            start = draw(st.integers(1, 6))
            texts.append(f"{token(start)}-{draw(st.sampled_from(['SUN', 'sun', '0', '7']))}")
            tests.append(lambda day, start=start: weekday_of(day) == 0 or weekday_of(day) >= start)
        elif kind == "xL":
            texts.append(f"{token(w)}L")
            tests.append(lambda day, w=w % 7: weekday_of(day) == w and (day + timedelta(days=7)).month != day.month)
        else:
            n = draw(st.integers(1, 5))
            texts.append(f"{token(w)}#{n}")
            tests.append(lambda day, w=w % 7, n=n: weekday_of(day) == w and (day.day - 1) // 7 == n - 1)
    return DayField(",".join(texts), lambda day: any(test(day) for test in tests))


MONTHS = st.sampled_from([("*", range(1, 13)), ("2", [2]), ("2,4", [2, 4]), ("1-6", range(1, 7)), ("11", [11])])
HOURS = st.sampled_from([("*", range(24)), ("*/2", range(0, 24, 2)), ("1-23/3", range(1, 24, 3)), ("0,3", (0, 3))])


@dataclass(frozen=True)
class Spec:
    dom: DayField
    dow: DayField
    month: tuple[str, range | list[int]]
    hour: tuple[str, range | tuple[int, ...]]
    minute: int
    second: int

    @property
    def expr(self) -> str:
        return f"{self.second} {self.minute} {self.hour[0]} {self.dom.text} {self.month[0]} {self.dow.text}"

    def day_ok(self, day: date) -> bool:
        if day.month not in self.month[1]:
            return False
        on_dom, on_dow = self.dom.test(day), self.dow.test(day)
        if self.dom.star or self.dow.star:
            return on_dom and on_dow
        return on_dom or on_dow

    def matches(self, wall: datetime) -> bool:
        return (
            wall.second == self.second
            and wall.minute == self.minute
            and wall.hour in self.hour[1]
            and self.day_ok(wall.date())
        )


SPECS = st.builds(Spec, dom_field(), dow_field(), MONTHS, HOURS, st.integers(0, 59), st.integers(0, 59))


def first_day(spec: Spec, start: date, days: int) -> date | None:
    day = start
    for _ in range(days):
        if spec.day_ok(day):
            return day
        day += timedelta(days=1)
    return None


def fires_ever(spec: Spec) -> bool:
    """2000-2027 holds every calendar a year can have (28-year cycle, leap years included)."""
    return first_day(spec, date(2000, 1, 1), (date(2028, 1, 1) - date(2000, 1, 1)).days) is not None


@settings(max_examples=300, deadline=None)
@given(spec=SPECS, after=st.datetimes(datetime(1970, 1, 1), datetime(2090, 12, 31)))
def test_matches_day_by_day_and_second_by_second_walks(spec: Spec, after: datetime) -> None:
    try:
        cron = CronExpression.parse(spec.expr)
    except InvalidCronExpression as error:
        assert error.reason.startswith("never fires"), error
        assert not fires_ever(spec)
        return
    day = first_day(spec, after.date(), 366 * 30)
    if day is None:
        assert fires_ever(spec)  # rare combinations can be decades apart
        return
    # Second by second from shortly before the first matching day (every HOURS choice fires by 03:00).
    moment = max(after.replace(microsecond=0), datetime(day.year, day.month, day.day) - timedelta(hours=2))
    actual = cron.next_after(moment)
    walk = moment + timedelta(seconds=1)
    for _ in range(30 * 3600):
        if spec.matches(walk):
            break
        walk += timedelta(seconds=1)
    else:  # the day's fires were all before `after`: compare with the day walk from the next day
        walk = datetime.combine(first_day(spec, day + timedelta(days=1), 366 * 30) or date.max, datetime.min.time())
        assert actual.date() == walk.date()
        return
    assert actual == walk.replace(tzinfo=UTC)
    assert cron.matches(actual)
    assert cron.prev_before(actual + timedelta(seconds=1)) == actual


# --- DST: the fixed-hour rule around every transition of a few zones, 2020-2035 -------------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # transitions at midnight
    "Australia/Lord_Howe",  # 30-minute DST
    "Antarctica/Troll",  # 2-hour DST
    "America/Havana",  # gap at midnight
    "Africa/Casablanca",  # DST suspended for Ramadan: four transitions a year
    "Asia/Tehran",  # DST abolished in 2022
]


@pytest.mark.parametrize("zone", ZONES)
def test_dst_fixed_hour_rule_around_every_transition(zone: str) -> None:
    tz = ZoneInfo(zone)
    changes = transitions(tz, 2020, 2035)
    assert changes, f"{zone} has no transitions in 2020-2035"
    problems = [line for change in changes for line in check_transition(tz, change, EXPRESSIONS)]
    assert problems == []
