"""Property tests: next_after against brute-force references built from the generated field sets.

Each generated field carries its text and the set of values it should allow, so the references never
use the parser under test. The references walk real time second by second (UTC and DST zones) or day
by day (calendar fields), applying the rules of docs/cron.md in the most literal way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sp_scheduler.cron import CronExpression
from sp_scheduler.errors import InvalidCronExpression

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
ONE = timedelta(seconds=1)


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]

    @property
    def star(self) -> bool:
        return self.text.startswith("*")


@dataclass(frozen=True)
class Spec:
    second: Field
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field

    @property
    def expr(self) -> str:
        return " ".join(f.text for f in (self.second, self.minute, self.hour, self.dom, self.month, self.dow))

    def day_ok(self, day: date) -> bool:
        on_dom, on_dow = day.day in self.dom.values, day.isoweekday() % 7 in self.dow.values
        if self.dom.star or self.dow.star:
            return on_dom and on_dow
        return on_dom or on_dow

    def matches(self, wall: datetime) -> bool:
        return (
            wall.second in self.second.values
            and wall.minute in self.minute.values
            and wall.hour in self.hour.values
            and wall.month in self.month.values
            and self.day_ok(wall.date())
        )


@st.composite
def field(draw: st.DrawFn, lo: int, hi: int, names: tuple[str, ...] = (), dow: bool = False) -> Field:
    """One field: a list of 1-3 items, each `*`, `*/k`, `a`, `a-b`, `a-b/k` or `a/k`, with the values."""
    open_hi = 6 if dow else hi  # `*` and `a/k` stop at Saturday in day-of-week

    def token(value: int) -> str:
        offset = 1 if names is MONTHS else 0
        if names and value - offset < len(names) and draw(st.booleans()):
            name = names[value - offset]
            return draw(st.sampled_from([name, name.lower(), name.title()]))
        return str(value)

    texts: list[str] = []
    values: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["*", "*/k", "a", "a", "a-b", "a-b/k", "a/k"]))
        step = draw(st.integers(1, hi - lo + 2))
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        if kind == "*":
            texts.append("*")
            values.update(range(lo, open_hi + 1))
        elif kind == "*/k":
            texts.append(f"*/{step}")
            values.update(range(lo, open_hi + 1, step))
        elif kind == "a":
            texts.append(token(a))
            values.add(a)
        elif kind == "a-b":
            texts.append(f"{token(a)}-{token(b)}")
            values.update(range(a, b + 1))
        elif kind == "a-b/k":
            texts.append(f"{token(a)}-{token(b)}/{step}")
            values.update(range(a, b + 1, step))
        else:
            texts.append(f"{token(a)}/{step}")
            values.update(range(a, open_hi + 1, step))
    if dow and 7 in values:
        values = (values - {7}) | {0}
    return Field(",".join(texts), frozenset(values))


DENSE_HOURS = [("*", range(24)), ("*/2", range(0, 24, 2)), ("*/3", range(0, 24, 3))]
DENSE_HOURS += [("1-23/2", range(1, 24, 2)), ("2/3", range(2, 24, 3))]


@st.composite
def dense_hours(draw: st.DrawFn) -> Field:
    """An hour field whose allowed hours are never more than 3 apart, so fires come within 4 hours."""
    text, hours = draw(st.sampled_from(DENSE_HOURS))
    extra = draw(st.none() | field(0, 23))
    if extra is None:
        return Field(text, frozenset(hours))
    parts = [extra.text, text] if draw(st.booleans()) else [text, extra.text]
    return Field(",".join(parts), frozenset(hours) | extra.values)


ALL_DOM = Field("*", frozenset(range(1, 32)))
ALL_MONTHS = Field("*", frozenset(range(1, 13)))
ALL_DOW = Field("*", frozenset(range(7)))


def every_day(times: tuple[Field, Field, Field]) -> Spec:
    return Spec(*times, ALL_DOM, ALL_MONTHS, ALL_DOW)


SECONDS = field(0, 59)
MINUTES = field(0, 59)
DENSE = st.tuples(SECONDS, MINUTES, dense_hours()).map(every_day)
CALENDAR = st.builds(
    Spec,
    SECONDS,
    MINUTES,
    field(0, 23),
    field(1, 31),
    field(1, 12, MONTHS),
    field(0, 7, DAYS, dow=True),
)
INSTANTS = st.datetimes(datetime(1970, 1, 1), datetime(2200, 12, 31))


# --- UTC, second by second -----------------------------------------------------------------------


def brute_force_utc(spec: Spec, after: datetime) -> datetime:
    moment = after.replace(microsecond=0) + ONE
    for _ in range(5 * 3600):
        if spec.matches(moment):
            return moment
        moment += ONE
    raise AssertionError("no fire within 5 hours; the strategy should prevent this")


@settings(max_examples=150, deadline=None)
@given(spec=DENSE, after=INSTANTS, aware=st.booleans())
def test_utc_matches_second_by_second_walk(spec: Spec, after: datetime, aware: bool) -> None:
    cron = CronExpression.parse(spec.expr)
    expected = brute_force_utc(spec, after).replace(tzinfo=UTC)
    actual = cron.next_after(after.replace(tzinfo=UTC) if aware else after)
    assert actual == expected
    assert actual.tzinfo is cron.tz
    assert cron.matches(actual)


# --- calendar fields, day by day -----------------------------------------------------------------


def brute_force_days(spec: Spec, after: datetime) -> datetime | None:
    """The first matching day from after's date on, then its first time of day later than `after`."""
    day = after.date()
    for _ in range(366 * 40):
        if day.month in spec.month.values and spec.day_ok(day):
            for h in sorted(spec.hour.values):
                if datetime(day.year, day.month, day.day, h, 59, 59) <= after:
                    continue
                for m in sorted(spec.minute.values):
                    if datetime(day.year, day.month, day.day, h, m, 59) <= after:
                        continue
                    for s in sorted(spec.second.values):
                        candidate = datetime(day.year, day.month, day.day, h, m, s)
                        if candidate > after:
                            return candidate
        day += timedelta(days=1)
    return None


def never_fires(spec: Spec) -> bool:
    if not (spec.dom.star or spec.dow.star):
        return False  # either rule: the weekdays alone fire
    longest = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
    return not any(d <= longest[m] for d in spec.dom.values for m in spec.month.values)


FEB_29 = Spec(
    Field("0", frozenset({0})),
    Field("0", frozenset({0})),
    Field("0", frozenset({0})),
    Field("29", frozenset({29})),
    Field("feb", frozenset({2})),
    ALL_DOW,
)


@settings(max_examples=300, deadline=None)
@given(spec=CALENDAR, after=INSTANTS)
@example(spec=FEB_29, after=datetime(2097, 1, 1))  # 2100 is not a leap year
def test_calendar_fields_match_day_by_day_walk(spec: Spec, after: datetime) -> None:
    try:
        cron = CronExpression.parse(spec.expr)
    except InvalidCronExpression as error:
        assert never_fires(spec), error
        assert error.reason.startswith("never fires")
        return
    assert not never_fires(spec)
    assert cron.dom_dow_both_restricted is not (spec.dom.star or spec.dow.star)
    expected = brute_force_days(spec, after)
    if expected is None:  # rare weekday/day combinations can be decades apart
        return
    assert cron.next_after(after) == expected.replace(tzinfo=UTC)


# --- DST zones, second by second in real time ----------------------------------------------------

ZONE_YEARS = [
    ("Europe/Berlin", 2026),
    ("America/New_York", 2026),
    ("Australia/Lord_Howe", 2026),  # 30-minute DST
    ("America/Santiago", 2026),  # transitions at midnight
    ("Pacific/Apia", 2011),  # skipped 2011-12-30 entirely
]


def transitions(tz: ZoneInfo, year: int) -> list[int]:
    """POSIX seconds at which tz's UTC offset changes during `year` (hourly scan, then bisection)."""
    found = []
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    stop = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    for t in range(start, stop, 3600):
        if datetime.fromtimestamp(t, tz).utcoffset() != datetime.fromtimestamp(t + 3600, tz).utcoffset():
            lo, hi = t, t + 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, tz).utcoffset() == datetime.fromtimestamp(lo, tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
    return found


TRANSITIONS = [(ZoneInfo(name), t) for name, year in ZONE_YEARS for t in transitions(ZoneInfo(name), year)]


def brute_force_zoned(spec: Spec, tz: ZoneInfo, after_ts: int) -> int:
    """Walk real seconds: a gap's end fires if any skipped wall time matches; a repeated wall time
    fires in the first pass, and in the second pass only when the hour field starts with `*`."""
    previous = datetime.fromtimestamp(after_ts, tz)
    for t in range(after_ts + 1, after_ts + 1 + 5 * 3600):
        local = datetime.fromtimestamp(t, tz)
        offset, previous_offset = local.utcoffset(), previous.utcoffset()
        assert offset is not None
        assert previous_offset is not None
        if offset > previous_offset:  # t is the first instant after a gap
            wall, end = previous.replace(tzinfo=None) + ONE, local.replace(tzinfo=None)
            while wall < end:
                if spec.matches(wall):
                    return t
                wall += ONE
        if spec.matches(local.replace(tzinfo=None)) and (local.fold == 0 or spec.hour.star):
            return t
        previous = local
    raise AssertionError("no fire within 5 hours; the strategy should prevent this")


@settings(max_examples=200, deadline=None)
@given(
    spec=DENSE,
    transition=st.sampled_from(TRANSITIONS),
    delta=st.integers(-4 * 3600, 3 * 3600),
    form=st.sampled_from(["utc", "local", "naive"]),
)
def test_dst_zones_match_real_time_walk(spec: Spec, transition: tuple[ZoneInfo, int], delta: int, form: str) -> None:
    tz, change = transition
    cron = CronExpression.parse(spec.expr, tz)
    instant = datetime.fromtimestamp(change + delta, UTC)
    if form == "utc":
        after = instant
    elif form == "local":
        after = instant.astimezone(tz)
    else:
        after = instant.astimezone(tz).replace(tzinfo=None)  # naive: read back with fold=0
    after_ts = int(after.replace(tzinfo=tz, fold=0).timestamp()) if form == "naive" else change + delta
    actual = cron.next_after(after)
    assert actual.tzinfo is tz
    assert actual.timestamp() == brute_force_zoned(spec, tz, after_ts)
    assert actual.isoformat() == datetime.fromtimestamp(actual.timestamp(), tz).isoformat()  # real wall clock


@settings(max_examples=60, deadline=None)
@given(spec=DENSE, transition=st.sampled_from(TRANSITIONS), delta=st.integers(-3 * 3600, 0))
def test_dst_iteration_strictly_increasing(spec: Spec, transition: tuple[ZoneInfo, int], delta: int) -> None:
    tz, change = transition
    cron = CronExpression.parse(spec.expr, tz)
    previous = datetime.fromtimestamp(change + delta, tz)
    for fire in cron.iter_after(previous):
        assert fire.timestamp() > previous.timestamp()
        previous = fire
        if fire.timestamp() > change + 3 * 3600:
            break


# --- prev_before: the same references, walked backwards ------------------------------------------


def brute_force_utc_back(spec: Spec, before: datetime) -> datetime:
    moment = before.replace(microsecond=0) if before.microsecond else before - ONE
    for _ in range(5 * 3600):
        if spec.matches(moment):
            return moment
        moment -= ONE
    raise AssertionError("no fire within 5 hours; the strategy should prevent this")


@settings(max_examples=150, deadline=None)
@given(spec=DENSE, before=INSTANTS, aware=st.booleans())
def test_prev_utc_matches_second_by_second_walk_back(spec: Spec, before: datetime, aware: bool) -> None:
    cron = CronExpression.parse(spec.expr)
    expected = brute_force_utc_back(spec, before).replace(tzinfo=UTC)
    actual = cron.prev_before(before.replace(tzinfo=UTC) if aware else before)
    assert actual == expected
    assert actual.tzinfo is cron.tz


def brute_force_days_back(spec: Spec, before: datetime) -> datetime | None:
    """The last matching day from before's date back, then its last time of day earlier than `before`."""
    day = before.date()
    for _ in range(366 * 40):
        if day.month in spec.month.values and spec.day_ok(day):
            for h in sorted(spec.hour.values, reverse=True):
                if datetime(day.year, day.month, day.day, h) >= before:
                    continue
                for m in sorted(spec.minute.values, reverse=True):
                    if datetime(day.year, day.month, day.day, h, m) >= before:
                        continue
                    for s in sorted(spec.second.values, reverse=True):
                        candidate = datetime(day.year, day.month, day.day, h, m, s)
                        if candidate < before:
                            return candidate
        day -= timedelta(days=1)
    return None


@settings(max_examples=300, deadline=None)
@given(spec=CALENDAR, before=INSTANTS)
@example(spec=FEB_29, before=datetime(2104, 1, 1))  # 2100 is not a leap year: back to 2096
def test_prev_calendar_fields_match_day_by_day_walk_back(spec: Spec, before: datetime) -> None:
    if never_fires(spec):
        return
    cron = CronExpression.parse(spec.expr)
    expected = brute_force_days_back(spec, before)
    if expected is None:  # rare weekday/day combinations can be decades apart
        return
    assert cron.prev_before(before) == expected.replace(tzinfo=UTC)


def fires_at(spec: Spec, tz: ZoneInfo, t: int) -> bool:
    """Whether real second `t` is a fire time under the rules brute_force_zoned applies going forward."""
    local, previous = datetime.fromtimestamp(t, tz), datetime.fromtimestamp(t - 1, tz)
    offset, previous_offset = local.utcoffset(), previous.utcoffset()
    assert offset is not None
    assert previous_offset is not None
    if offset > previous_offset:
        wall, end = previous.replace(tzinfo=None) + ONE, local.replace(tzinfo=None)
        while wall < end:
            if spec.matches(wall):
                return True
            wall += ONE
    return spec.matches(local.replace(tzinfo=None)) and (local.fold == 0 or spec.hour.star)


def brute_force_zoned_back(spec: Spec, tz: ZoneInfo, before_ts: int) -> int:
    for t in range(before_ts - 1, before_ts - 1 - 5 * 3600, -1):
        if fires_at(spec, tz, t):
            return t
    raise AssertionError("no fire within 5 hours; the strategy should prevent this")


@settings(max_examples=200, deadline=None)
@given(
    spec=DENSE,
    transition=st.sampled_from(TRANSITIONS),
    delta=st.integers(-3 * 3600, 4 * 3600),
    form=st.sampled_from(["utc", "local", "naive"]),
)
def test_prev_dst_zones_match_real_time_walk_back(
    spec: Spec, transition: tuple[ZoneInfo, int], delta: int, form: str
) -> None:
    tz, change = transition
    cron = CronExpression.parse(spec.expr, tz)
    instant = datetime.fromtimestamp(change + delta, UTC)
    if form == "utc":
        before = instant
    elif form == "local":
        before = instant.astimezone(tz)
    else:
        before = instant.astimezone(tz).replace(tzinfo=None)  # naive: read back with fold=0
    before_ts = int(before.replace(tzinfo=tz, fold=0).timestamp()) if form == "naive" else change + delta
    actual = cron.prev_before(before)
    assert actual.tzinfo is tz
    assert actual.timestamp() == brute_force_zoned_back(spec, tz, before_ts)
    assert cron.next_after(datetime.fromtimestamp(actual.timestamp() - 1, tz)) == actual


@settings(max_examples=60, deadline=None)
@given(spec=DENSE, transition=st.sampled_from(TRANSITIONS), delta=st.integers(-3 * 3600, 0))
def test_prev_undoes_next_across_transitions(spec: Spec, transition: tuple[ZoneInfo, int], delta: int) -> None:
    tz, change = transition
    cron = CronExpression.parse(spec.expr, tz)
    fire = cron.next_after(datetime.fromtimestamp(change + delta, tz))
    for _ in range(20):
        following = cron.next_after(fire)
        assert cron.prev_before(following) == fire
        fire = following
