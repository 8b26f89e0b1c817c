"""Six-field cron expressions (seconds first) with the DST rules of docs/cron.md.

Stdlib + zoneinfo only, so the scheduler, the CLI and the tests share one pure engine. Parsing the
fields into lookup tables is cron_fields.py's job, and the days that depend on the month (L, W, #)
are cron_days.py's; this module searches them. The search for
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

from sp_scheduler.cron_days import DayRule, month_mask
from sp_scheduler.cron_fields import (
    ANY_DAY,
    DOM_ONLY,
    DOW_ONLY,
    MONTH_RULES,
    NONE,
    parse_fields,
)
from sp_scheduler.errors import InvalidTimeZone, NoFireTime

__all__ = ["CronExpression", "load_zone", "parse_schedule"]

_Wall = tuple[int, int, int, int, int, int]  # naive wall clock: year, month, day, hour, minute, second

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Zones with one offset forever: no DST resolution needed (unknown keys take the general path).
_FIXED_ZONE = re.compile(r"(?:Etc/)?(?:UTC|UCT|GMT|GMT0|GMT[+-]\d{1,2}|Greenwich|Universal|Zulu)")
_EPOCH = datetime(1970, 1, 1)
_ONE_SECOND = timedelta(seconds=1)
_MIN_TS = int(datetime(1, 1, 2, tzinfo=UTC).timestamp())  # prev_before searches no further back


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
    # Lookup tables: _next_x[i] is the smallest allowed value >= i, or NONE.
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
    _dom_rules: tuple[DayRule, ...] = field(init=False, repr=False, compare=False)
    _dow_rules: tuple[DayRule, ...] = field(init=False, repr=False, compare=False)
    _month_days: dict[int, int] = field(init=False, repr=False, compare=False)  # year*16+month -> day mask
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
        fields = parse_fields(source)
        set_ = functools.partial(object.__setattr__, self)
        set_("source", source)
        set_("_next_second", fields.next_second)
        set_("_next_minute", fields.next_minute)
        set_("_next_hour", fields.next_hour)
        set_("_next_dom", fields.next_dom)
        set_("_next_month", fields.next_month)
        set_("_dom_bits", fields.dom_bits)
        set_("_dow_bits", fields.dow_bits)
        set_("_dow_skip", fields.dow_skip)
        set_("_day_mode", fields.day_mode)
        set_("_both_restricted", fields.both_restricted)
        set_("_hour_star", fields.hour_star)
        set_("_dom_rules", fields.dom_rules)
        set_("_dow_rules", fields.dow_rules)
        set_("_month_days", {})
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
                raise NoFireTime(self.source, before.isoformat())
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
                if x == NONE:
                    y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                    if y > 9999:
                        raise NoFireTime(self.source, "year 10000")
                    continue
                mo, d, h, mi, s = x, 1, 0, 0, 0
            if self._day_mode == ANY_DAY:
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
                if x == NONE:
                    d, h, mi, s = d + 1, 0, 0, 0
                    continue
                h, mi, s = x, 0, 0
            x = next_minute[mi]
            if x != mi:
                if x == NONE:
                    h, mi, s = h + 1, 0, 0
                    continue
                mi, s = x, 0
            x = next_second[s]
            if x == NONE:
                mi, s = mi + 1, 0
                continue
            return y, mo, d, h, mi, x

    def _day_at_or_after(self, y: int, mo: int, d: int) -> int:
        """The first allowed day >= d in the month (DOM/DOW rule applied), or 0 if none is left."""
        last = _DAYS_IN_MONTH[mo] if mo != 2 else 28 + _is_leap(y)
        if d > last:
            return 0
        if self._day_mode == ANY_DAY:
            return d
        if self._day_mode == MONTH_RULES:
            mask = self._month_days.get(y * 16 + mo)
            if mask is None:
                mask = self._month_mask(y, mo)
            mask >>= d
            return (mask & -mask).bit_length() - 1 + d if mask else 0
        if self._day_mode == DOM_ONLY:
            x = self._next_dom[d]
            return x if x <= last else 0
        weekday = date(y, mo, d).toordinal() % 7  # 0001-01-01 is a Monday, so this is Sunday = 0
        if self._day_mode == DOW_ONLY:
            d += self._dow_skip[weekday]
            return d if d <= last else 0
        dom_bits, dow_bits, either = self._dom_bits, self._dow_bits, self._both_restricted
        while d <= last:
            on_dom, on_dow = dom_bits >> d & 1, dow_bits >> weekday & 1
            if (on_dom or on_dow) if either else (on_dom and on_dow):
                return d
            d, weekday = d + 1, (weekday + 1) % 7
        return 0

    def _month_mask(self, y: int, mo: int) -> int:
        """The allowed days of one month as a bit mask (L, W and # resolved), cached per month."""
        on_dom, on_dow = month_mask(y, mo, self._dom_bits, self._dow_bits, self._dom_rules, self._dow_rules)
        mask = on_dom | on_dow if self._both_restricted else on_dom & on_dow
        if len(self._month_days) >= 4096:  # a long walk: keep memory bounded
            self._month_days.clear()
        self._month_days[y * 16 + mo] = mask
        return mask

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


@functools.lru_cache(maxsize=4096)
def _parse_cached(source: str, zone: ZoneInfo) -> CronExpression:
    """Expressions are immutable, so beat and workers share one parse per (expression, zone)."""
    return CronExpression(source, zone)


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
