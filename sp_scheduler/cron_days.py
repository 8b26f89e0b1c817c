"""The day rules that depend on the month: `L`, `L-n`, `nW` and `LW` (day of month), `xL` and `x#n` (day of week).

Each rule names at most one day of a given month, so a month's days are a 32-bit mask computed once per
(year, month) and cached by the expression; cron.py then finds the next day with a bit trick. Parsing a
token into a rule lives here too, so cron_fields.py only routes the tokens that carry `L`, `W` or `#`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

# Rule kinds. Day of month: LAST (a = days before the last day), NEAREST (a = the day), LAST_WEEKDAY.
# Day of week: LAST_OF (a = weekday, Sunday = 0), NTH (a = weekday, b = 1..5).
LAST, NEAREST, LAST_WEEKDAY, LAST_OF, NTH = "L", "W", "LW", "xL", "#"
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True, slots=True)
class DayRule:
    """One month-dependent day: `kind` and its numbers (see the kinds above)."""

    kind: str
    a: int = 0
    b: int = 0
    text: str = field(default="", compare=False)  # as written, for error messages

    def day(self, last: int, first_weekday: int) -> int:
        """The day this rule names in a month of `last` days whose 1st is `first_weekday`, or 0 for none."""
        if self.kind == LAST:
            return last - self.a if last - self.a >= 1 else 0
        if self.kind == NEAREST:
            return nearest_weekday(self.a, last, first_weekday)
        if self.kind == LAST_WEEKDAY:
            return nearest_weekday(last, last, first_weekday)
        if self.kind == LAST_OF:
            return last - (weekday_of(last, first_weekday) - self.a) % 7
        first = 1 + (self.a - first_weekday) % 7  # NTH
        day = first + 7 * (self.b - 1)
        return day if day <= last else 0


def weekday_of(day: int, first_weekday: int) -> int:
    """Weekday (Sunday = 0) of `day` in a month whose 1st falls on `first_weekday`."""
    return (first_weekday + day - 1) % 7


def nearest_weekday(day: int, last: int, first_weekday: int) -> int:
    """Monday-Friday nearest `day`, never leaving the month (Quartz's `W`); 0 when `day` is not in it."""
    if day > last:
        return 0
    weekday = weekday_of(day, first_weekday)
    if weekday == 6:  # Saturday: the Friday before, unless that is last month
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday: the Monday after, unless that is next month
        return day + 1 if day < last else day - 2
    return day


def parse_dom_rule(token: str, fail: Callable[[str], Exception]) -> DayRule:
    """`L`, `L-n`, `LW` or `nW` in day of month; `fail(reason)` builds the error to raise."""
    upper = token.upper()
    if upper == "L":
        return DayRule(LAST, text=token)
    if upper == "LW":
        return DayRule(LAST_WEEKDAY, text=token)
    if upper.startswith("L-"):
        offset = upper[2:]
        if not (offset.isascii() and offset.isdigit()) or not 0 <= int(offset) <= 30:
            raise fail(f"{token!r}: L-n needs n from 0 to 30")
        return DayRule(LAST, int(offset), text=token)
    if upper.endswith("W"):
        number = upper[:-1]
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= 31:
            raise fail(f"{token!r}: nW needs a day from 1 to 31")
        return DayRule(NEAREST, int(number), text=token)
    raise fail(f"{token!r} is not a number, L, L-n, LW or nW")


def parse_dow_rule(token: str, weekday: Callable[[str], int], fail: Callable[[str], Exception]) -> DayRule:
    """`xL` (last x of the month) or `x#n` (n-th x) in day of week; `weekday` reads x (0-7 or a name)."""
    if "#" in token:
        day, _, nth = token.partition("#")
        if not (nth.isascii() and nth.isdigit()) or not 1 <= int(nth) <= 5:
            raise fail(f"{token!r}: x#n needs n from 1 to 5")
        return DayRule(NTH, weekday(day) % 7, int(nth), text=token)
    if token.upper() == "L":
        raise fail("'L' alone is ambiguous in day of week: write SATL (last Saturday) or put L in day of month")
    return DayRule(LAST_OF, weekday(token[:-1]) % 7, text=token)


def possible_in(rule: DayRule, longest: int) -> bool:
    """Whether a day-of-month rule names a day in some month of at most `longest` days (never-fires check)."""
    if rule.kind == LAST:
        return longest - rule.a >= 1
    return rule.kind != NEAREST or rule.a <= longest


def month_mask(
    year: int, month: int, dom_bits: int, dow_bits: int, dom_rules: tuple[DayRule, ...], dow_rules: tuple[DayRule, ...]
) -> tuple[int, int]:
    """(days matching day of month, days matching day of week) in one month, as bit masks (bit d = day d)."""
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last = _DAYS_IN_MONTH[month] + leap
    first_weekday = (date(year, month, 1).toordinal()) % 7  # 0001-01-01 is a Monday, so Sunday = 0
    in_month = (1 << (last + 1)) - 2
    on_dom = dom_bits & in_month
    for rule in dom_rules:
        on_dom |= 1 << rule.day(last, first_weekday) & ~1
    on_dow = 0
    for weekday in range(7):
        if dow_bits >> weekday & 1:
            first = 1 + (weekday - first_weekday) % 7
            on_dow |= sum(1 << d for d in range(first, 32, 7))
    on_dow &= in_month
    for rule in dow_rules:
        on_dow |= 1 << rule.day(last, first_weekday) & ~1
    return on_dom, on_dow
