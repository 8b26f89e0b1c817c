"""Parsing six-field cron expressions (seconds first) into the lookup tables the search in cron.py walks.

Pure and stdlib-only; errors are InvalidCronExpression naming the field and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sp_scheduler.errors import InvalidCronExpression

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
_MAX_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap years included
NONE = 99  # "no allowed value at or after this index" in the lookup tables
# How day-of-month and day-of-week combine, decided once at parse time.
ANY_DAY, DOM_ONLY, DOW_ONLY, SCAN_DAYS = 0, 1, 2, 3
_ALL_DOM = sum(1 << d for d in range(1, 32))  # bit sets with every day / weekday allowed
_ALL_DOW = sum(1 << w for w in range(7))


@dataclass(frozen=True, slots=True)
class CronFields:
    """One expression's fields as lookup tables: next_x[i] is the smallest allowed value >= i, or NONE."""

    next_second: tuple[int, ...]
    next_minute: tuple[int, ...]
    next_hour: tuple[int, ...]
    next_dom: tuple[int, ...]
    next_month: tuple[int, ...]
    dom_bits: int  # bit d set: day d allowed
    dow_bits: int  # bit w set: weekday w allowed, Sunday = 0
    dow_skip: tuple[int, ...]  # days to the next allowed weekday
    day_mode: int
    both_restricted: bool
    hour_star: bool


def parse_fields(source: str) -> CronFields:
    """The lookup tables of a stripped expression (or macro); InvalidCronExpression when it is not one."""
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
        day_mode = ANY_DAY
    elif not either and dow_bits == _ALL_DOW:
        day_mode = DOM_ONLY
    elif not either and dom_bits == _ALL_DOM:
        day_mode = DOW_ONLY
    else:
        day_mode = SCAN_DAYS
    return CronFields(
        next_second=_next_table(seconds, 60),
        next_minute=_next_table(minutes, 60),
        next_hour=_next_table(hours, 24),
        next_dom=_next_table(doms, 32),
        next_month=_next_table(months, 13),
        dom_bits=dom_bits,
        dow_bits=dow_bits,
        dow_skip=tuple(min((k for k in range(7) if (w + k) % 7 in dows), default=NONE) for w in range(7)),
        day_mode=day_mode,
        both_restricted=either,
        hour_star=parts[2].startswith("*"),
    )


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


def _next_table(values: frozenset[int], highest: int) -> tuple[int, ...]:
    """table[i] = the smallest allowed value >= i, or NONE; indexes 0..highest (highest is a sentinel)."""
    table = [NONE] * (highest + 1)
    upcoming = NONE
    for i in range(highest, -1, -1):  # one backward pass instead of a min() per index
        if i in values:
            upcoming = i
        table[i] = upcoming
    return tuple(table)
