"""Six-field cron expressions (seconds first) with the DST rules of docs/cron.md.

Stdlib + zoneinfo only, so the scheduler, the CLI and the tests share one pure engine. The search for
the next fire time runs on naive wall-clock integers with precomputed lookup tables; the time zone is
consulted only to turn the candidate into an instant (`_resolve`). Fixed-offset zones such as UTC skip
that step entirely, which keeps `next_after` in single-digit microseconds.

DST (see docs/cron.md): a wall time skipped by spring-forward fires once, at the first instant after
the gap; a wall time that occurs twice fires on its first occurrence only, unless the hour field starts
with `*`, in which case the expression follows real time and fires in both passes.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sp_scheduler.errors import InvalidCronExpression, InvalidTimeZone

__all__ = ["CronExpression", "load_zone", "parse_schedule"]

_Wall = tuple[int, int, int, int, int, int]  # naive wall clock: year, month, day, hour, minute, second

_MACROS = (
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * 0"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
)
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, lowest, highest, names for lowest.., highest value reached by `*` and `a/step`)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...], int], ...] = (
    ("second", 0, 59, (), 59),
    ("minute", 0, 59, (), 59),
    ("hour", 0, 23, (), 23),
    ("day-of-month", 1, 31, (), 31),
    ("month", 1, 12, _MONTH_NAMES, 12),
    ("day-of-week", 0, 7, _DAY_NAMES, 6),  # 7 is Sunday too, but `*` and `a/step` stop at Saturday
)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MAX_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap years included
# Zones with one offset forever: no DST resolution needed (unknown keys take the general path).
_FIXED_ZONE = re.compile(r"(?:Etc/)?(?:UTC|UCT|GMT|GMT0|GMT[+-]\d{1,2}|Greenwich|Universal|Zulu)")
_EPOCH = datetime(1970, 1, 1)
_ONE_SECOND = timedelta(seconds=1)
_MIN_TS = int(datetime(1, 1, 2, tzinfo=UTC).timestamp())  # prev_before searches no further back
_NONE = 99  # "no allowed value at or after this index" in the lookup tables

# How day-of-month and day-of-week combine, decided once at parse time.
_ANY_DAY, _DOM_ONLY, _DOW_ONLY, _SCAN_DAYS = 0, 1, 2, 3
_ALL_DOM = sum(1 << d for d in range(1, 32))  # bit sets with every day / weekday allowed
_ALL_DOW = sum(1 << w for w in range(7))


@functools.lru_cache(maxsize=256)
def load_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or InvalidTimeZone; cached because jobs share a handful of zones."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidTimeZone(name) from None


def parse_schedule(expr: str, tz: str | ZoneInfo = "UTC") -> CronExpression | None:
    """A job's schedule: None for an empty (manual-only) schedule, else the parsed expression."""
    if not expr.strip():
        return None
    return CronExpression.parse(expr, tz)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed six-field cron expression bound to a time zone; immutable and hashable.

    Equality and hashing use the stripped source text and the zone. Build one with `parse`.
    """

    source: str
    tz: ZoneInfo
    # Lookup tables: _next_x[i] is the smallest allowed value >= i, or _NONE.
    _next_second: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_minute: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_hour: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_dom: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_month: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dom_bits: int = field(init=False, repr=False, compare=False)  # bit d set: day d allowed
    _dow_bits: int = field(init=False, repr=False, compare=False)  # bit w set: weekday w allowed, Sunday = 0
    _dow_skip: tuple[int, ...] = field(init=False, repr=False, compare=False)  # days to the next allowed weekday
    _day_mode: int = field(init=False, repr=False, compare=False)
    _both_restricted: bool = field(init=False, repr=False, compare=False)
    _hour_star: bool = field(init=False, repr=False, compare=False)
    _fixed: bool = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, expr: str, tz: str | ZoneInfo = "UTC") -> CronExpression:
        """Parse `expr` in zone `tz`; raises InvalidCronExpression (also for "") or InvalidTimeZone."""
        zone = tz if isinstance(tz, ZoneInfo) else load_zone(tz)
        if cls is CronExpression:
            return _parse_cached(expr.strip(), zone)
        return cls(expr.strip(), zone)

    def __post_init__(self) -> None:
        source = self.source.strip()
        set_ = functools.partial(object.__setattr__, self)
        set_("source", source)
        text = source
        if text.startswith("@"):
            text = dict(_MACROS).get(text.lower(), "")
            if not text:
                known = ", ".join(name for name, _ in _MACROS)
                raise InvalidCronExpression(source, f"unknown macro {source!r} (known: {known})")
        parts = text.split()
        if not parts:
            raise InvalidCronExpression(source, "empty expression (an empty schedule means manual-only)")
        if len(parts) == 5:
            raise InvalidCronExpression(
                source,
                f"5 fields given; sp-scheduler uses six fields with seconds first: did you mean '0 {' '.join(parts)}'?",
            )
        if len(parts) != 6:
            raise InvalidCronExpression(source, f"expected 6 fields (sec min hour dom month dow), got {len(parts)}")
        seconds, minutes, hours, doms, months, dows = (
            _parse_field(source, part, spec) for part, spec in zip(parts, _FIELDS, strict=True)
        )
        # Vixie: a day field is "restricted" unless it starts with `*`; both restricted -> EITHER matches.
        either = not parts[3].startswith("*") and not parts[5].startswith("*")
        if not either:
            _check_fires(source, doms, months)
        dom_bits = sum(1 << d for d in doms)
        dow_bits = sum(1 << w for w in dows)
        if not either and dom_bits == _ALL_DOM and dow_bits == _ALL_DOW:
            day_mode = _ANY_DAY
        elif not either and dow_bits == _ALL_DOW:
            day_mode = _DOM_ONLY
        elif not either and dom_bits == _ALL_DOM:
            day_mode = _DOW_ONLY
        else:
            day_mode = _SCAN_DAYS
        set_("_next_second", _next_table(seconds, 60))
        set_("_next_minute", _next_table(minutes, 60))
        set_("_next_hour", _next_table(hours, 24))
        set_("_next_dom", _next_table(doms, 32))
        set_("_next_month", _next_table(months, 13))
        set_("_dom_bits", dom_bits)
        set_("_dow_bits", dow_bits)
        set_("_dow_skip", tuple(min((k for k in range(7) if (w + k) % 7 in dows), default=_NONE) for w in range(7)))
        set_("_day_mode", day_mode)
        set_("_both_restricted", either)
        set_("_hour_star", parts[2].startswith("*"))
        set_("_fixed", bool(self.tz.key and _FIXED_ZONE.fullmatch(self.tz.key)))

    @property
    def dom_dow_both_restricted(self) -> bool:
        """True when day-of-month and day-of-week are both restricted, so either one matching fires."""
        return self._both_restricted

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (naive = wall clock in self.tz), aware in self.tz."""
        tz = self.tz
        if not self._fixed:
            return self._next_zoned(after)
        if after.tzinfo is not None and after.tzinfo is not tz:
            after = after.astimezone(tz)
        y, mo, d, h, mi, s = self._next_wall(
            (after.year, after.month, after.day, after.hour, after.minute, after.second)
        )
        return datetime(y, mo, d, h, mi, s, tzinfo=tz)

    def prev_before(self, before: datetime) -> datetime:
        """The last fire time strictly before `before` (naive = wall clock in self.tz), aware in self.tz.

        Defined through `next_after`, so the DST rules are the same in both directions: the answer is
        `next_after(s)` for the latest whole second `s` whose next fire is still before `before`. A
        galloping search finds a start whose next fire is early enough (about log2 of the gap), then a
        bisection narrows it: a few dozen `next_after` calls even for a yearly expression.
        """
        tz = self.tz
        if before.tzinfo is None:
            before = before.replace(tzinfo=tz, fold=0)
        limit = math.ceil(before.timestamp()) - 1  # fire times are whole seconds: fire < before <=> fire <= limit
        step = 1
        low = limit - step
        while self._next_ts(low) > limit:
            step *= 2
            low = limit - step
            if low < _MIN_TS:
                raise ValueError(f"cron expression {self.source!r} has no fire time before {before.isoformat()}")
        high = limit  # invariant: next(low) <= limit < next(high)
        while high - low > 1:
            middle = (low + high) // 2
            if self._next_ts(middle) <= limit:
                low = middle
            else:
                high = middle
        return self.next_after(datetime.fromtimestamp(low, tz))

    def _next_ts(self, ts: int) -> int:
        return int(self.next_after(datetime.fromtimestamp(ts, self.tz)).timestamp())

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Upcoming fire times after `after`, forever, each strictly later than the one before."""
        while True:
            after = self.next_after(after)
            yield after

    def matches(self, when: datetime) -> bool:
        """Whether the wall clock of `when` in self.tz matches every field (to the second; no DST rules)."""
        if when.tzinfo is not None:
            when = when.astimezone(self.tz)
        return (
            self._next_second[when.second] == when.second
            and self._next_minute[when.minute] == when.minute
            and self._next_hour[when.hour] == when.hour
            and self._next_month[when.month] == when.month
            and self._day_at_or_after(when.year, when.month, when.day) == when.day
        )

    def period_seconds(self) -> float:
        """Typical seconds between fires: the gap between the first two after 2001-01-01T00:00Z."""
        first = self.next_after(datetime(2001, 1, 1, tzinfo=UTC))
        return self.next_after(first).timestamp() - first.timestamp()

    # -- the search on naive wall-clock integers -------------------------------------------------

    def _next_wall(self, wall: _Wall) -> _Wall:
        """The first matching wall time strictly after `wall` (no time zone involved)."""
        y, mo, d, h, mi, s = wall
        next_second, next_minute, next_hour, next_month = (
            self._next_second,
            self._next_minute,
            self._next_hour,
            self._next_month,
        )
        s += 1
        while True:
            x = next_month[mo]
            if x != mo:
                if x == _NONE:
                    y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                    if y > 9999:
                        raise ValueError(f"cron expression {self.source!r} has no fire time before year 10000")
                    continue
                mo, d, h, mi, s = x, 1, 0, 0, 0
            if self._day_mode == _ANY_DAY:
                x = d if d <= (_DAYS_IN_MONTH[mo] if mo != 2 else 28 + _is_leap(y)) else 0
            else:
                x = self._day_at_or_after(y, mo, d)
            if x != d:
                if x == 0:
                    mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                    continue
                d, h, mi, s = x, 0, 0, 0
            x = next_hour[h]
            if x != h:
                if x == _NONE:
                    d, h, mi, s = d + 1, 0, 0, 0
                    continue
                h, mi, s = x, 0, 0
            x = next_minute[mi]
            if x != mi:
                if x == _NONE:
                    h, mi, s = h + 1, 0, 0
                    continue
                mi, s = x, 0
            x = next_second[s]
            if x == _NONE:
                mi, s = mi + 1, 0
                continue
            return y, mo, d, h, mi, x

    def _day_at_or_after(self, y: int, mo: int, d: int) -> int:
        """The first allowed day >= d in the month (DOM/DOW rule applied), or 0 if none is left."""
        last = _DAYS_IN_MONTH[mo] if mo != 2 else 28 + _is_leap(y)
        if d > last:
            return 0
        if self._day_mode == _ANY_DAY:
            return d
        if self._day_mode == _DOM_ONLY:
            x = self._next_dom[d]
            return x if x <= last else 0
        weekday = date(y, mo, d).toordinal() % 7  # 0001-01-01 is a Monday, so this is Sunday = 0
        if self._day_mode == _DOW_ONLY:
            d += self._dow_skip[weekday]
            return d if d <= last else 0
        dom_bits, dow_bits, either = self._dom_bits, self._dow_bits, self._both_restricted
        while d <= last:
            on_dom, on_dow = dom_bits >> d & 1, dow_bits >> weekday & 1
            if (on_dom or on_dow) if either else (on_dom and on_dow):
                return d
            d, weekday = d + 1, (weekday + 1) % 7
        return 0

    # -- time zones with transitions -------------------------------------------------------------

    def _next_zoned(self, after: datetime) -> datetime:
        """next_after for zones with DST: search wall times, then resolve each candidate to an instant."""
        tz = self.tz
        if after.tzinfo is None:
            after = after.replace(tzinfo=tz, fold=0)
        after_ts = math.floor(after.timestamp())
        local = datetime.fromtimestamp(after_ts, tz)  # the real wall clock of `after`, with fold set
        cursor = _parts(local)
        # Only a fold that `after` sits in needs care; later folds are met in their first pass first.
        fold = _fold_around(tz, cursor) if local.fold or self._hour_star else None
        if fold is not None:
            fold_start, fold_end = fold
            if not self._hour_star:
                # Second pass: the fold's wall times fired in the first pass; resume at the fold's end.
                cursor = _parts(datetime(*fold_end) - _ONE_SECOND)
            elif not local.fold:
                # First pass, following real time: the rest of the first pass, then the second pass.
                found = self._next_wall(cursor)
                if found < fold_end:
                    return datetime(*found, tzinfo=tz)
                found = self._next_wall(_parts(datetime(*fold_start) - _ONE_SECOND))
                if found < fold_end:
                    return datetime(*found, tzinfo=tz, fold=1)
        while True:
            cursor = self._next_wall(cursor)
            resolved = self._resolve(cursor, after_ts)
            if resolved is not None:
                return resolved

    def _resolve(self, wall: _Wall, after_ts: int) -> datetime | None:
        """The instant wall time `wall` fires at under the DST rules, or None if not after `after_ts`."""
        tz = self.tz
        first = datetime(*wall, tzinfo=tz)
        second = datetime(*wall, tzinfo=tz, fold=1)
        offset_first, offset_second = _offset(first), _offset(second)
        if offset_first == offset_second:
            # The wall time exists once. `wall` is later than after's real wall clock, and such wall
            # times map to later instants (the cursor never stops inside a second pass), so no check.
            return first
        if offset_first > offset_second:  # fall-back fold: first occurrence, or both if hour is `*`
            if first.timestamp() > after_ts:
                return first
            if self._hour_star and second.timestamp() > after_ts:
                return second
            return None
        # Spring-forward gap: fire at the first instant after the gap (fold=0 uses the old offset).
        seconds = _wall_seconds(wall)
        end = _transition(tz, seconds - offset_second, seconds - offset_first)
        return datetime.fromtimestamp(end, tz) if end > after_ts else None


def _parse_field(source: str, text: str, spec: tuple[str, int, int, tuple[str, ...], int]) -> frozenset[int]:
    """The set of values one field allows; raises InvalidCronExpression naming the field."""
    name, lowest, highest, names, open_end = spec

    def fail(reason: str) -> InvalidCronExpression:
        return InvalidCronExpression(source, f"{name} field: {reason}")

    def value(token: str) -> int:
        if token.isascii() and token.isdigit():
            number = int(token)
            if not lowest <= number <= highest:
                raise fail(f"{number} is out of range {lowest}-{highest}")
            return number
        if token.upper() in names:
            return names.index(token.upper()) + (1 if names is _MONTH_NAMES else 0)
        if not token:
            raise fail(f"missing value in {text!r}")
        kind = {_MONTH_NAMES: " or month name (JAN-DEC)", _DAY_NAMES: " or weekday name (SUN-SAT)"}.get(names, "")
        raise fail(f"{token!r} is not a number{kind}")

    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise fail(f"empty list item in {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise fail(f"step must be a positive integer, got {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = lowest, open_end
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = value(first), value(last)
            if start > end:
                raise fail(f"range {base} is reversed")
        else:
            start = value(base)
            end = open_end if slash else start
        values.update(range(start, end + 1, step))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _check_fires(source: str, doms: frozenset[int], months: frozenset[int]) -> None:
    """Reject day-of-month/month combinations that never occur (when DOW cannot fire on its own).

    Every (month, day) that exists falls on every weekday in some year, so this is the only way an
    expression can never fire.
    """
    if any(day <= _MAX_DAYS_IN_MONTH[month] for day in doms for month in months):
        return
    days = sorted(doms)
    names = [_MONTH_NAMES[m - 1].capitalize() for m in sorted(months)]
    months_text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    days_text = f"day {days[0]} does" if len(days) == 1 else f"days {', '.join(map(str, days))} do"
    raise InvalidCronExpression(source, f"never fires: {days_text} not occur in {months_text}")


@functools.lru_cache(maxsize=4096)
def _parse_cached(source: str, zone: ZoneInfo) -> CronExpression:
    """Expressions are immutable, so beat and workers share one parse per (expression, zone)."""
    return CronExpression(source, zone)


def _next_table(values: frozenset[int], highest: int) -> tuple[int, ...]:
    """table[i] = the smallest allowed value >= i, or _NONE; indexes 0..highest (highest is a sentinel)."""
    table = [_NONE] * (highest + 1)
    upcoming = _NONE
    for i in range(highest, -1, -1):  # one backward pass instead of a min() per index
        if i in values:
            upcoming = i
        table[i] = upcoming
    return tuple(table)


def _is_leap(year: int) -> int:
    return 1 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 0


def _parts(moment: datetime) -> _Wall:
    return moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second


def _wall_seconds(wall: _Wall) -> int:
    """A naive wall time as seconds since 1970-01-01T00:00 on the same (zone-less) clock."""
    return (datetime(*wall) - _EPOCH) // _ONE_SECOND


def _offset(moment: datetime) -> int:
    offset = moment.utcoffset()
    return offset // _ONE_SECOND if offset is not None else 0


def _transition(tz: ZoneInfo, before: int, after: int) -> int:
    """The first POSIX second in (before, after] whose UTC offset differs from the one at `before`."""
    offset = _offset(datetime.fromtimestamp(before, tz))
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(datetime.fromtimestamp(middle, tz)) == offset:
            before = middle
        else:
            after = middle
    return after


def _fold_around(tz: ZoneInfo, wall: _Wall) -> tuple[_Wall, _Wall] | None:
    """If `wall` occurs twice (fall-back), the fold's first and first-after wall times, else None."""
    offset_first = _offset(datetime(*wall, tzinfo=tz))
    offset_second = _offset(datetime(*wall, tzinfo=tz, fold=1))
    if offset_first <= offset_second:
        return None
    seconds = _wall_seconds(wall)
    change = _transition(tz, seconds - offset_first, seconds - offset_second)
    return _wall_at(change + offset_second), _wall_at(change + offset_first)


def _wall_at(seconds: int) -> _Wall:
    """Inverse of _wall_seconds."""
    return _parts(_EPOCH + timedelta(seconds=seconds))
