"""Parsing six-field cron expressions (seconds first) into the lookup tables the search in cron.py walks.

Pure and stdlib-only; errors are InvalidCronExpression naming the field and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sp_scheduler.cron_days import DayRule, parse_dom_rule, parse_dow_rule, possible_in
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
ANY_DAY, DOM_ONLY, DOW_ONLY, SCAN_DAYS, MONTH_RULES = 0, 1, 2, 3, 4
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
    dom_rules: tuple[DayRule, ...] = ()  # L, L-n, nW, LW: days that depend on the month
    dow_rules: tuple[DayRule, ...] = ()  # xL, x#n


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
    parsed = [_parse_field(source, part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    seconds, minutes, hours, doms, months, dows = (values for values, _ in parsed)
    dom_rules, dow_rules = parsed[3][1], parsed[5][1]
    # Vixie: a day field is "restricted" unless it starts with `*`; both restricted -> EITHER matches.
    either = not parts[3].startswith("*") and not parts[5].startswith("*")
    if not either:
        _check_fires(source, doms, dom_rules, months)
    dom_bits = sum(1 << d for d in doms)
    dow_bits = sum(1 << w for w in dows)
    if dom_rules or dow_rules:
        day_mode = MONTH_RULES
    elif not either and dom_bits == _ALL_DOM and dow_bits == _ALL_DOW:
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
        dom_rules=dom_rules,
        dow_rules=dow_rules,
    )


def _parse_field(
    source: str, text: str, spec: tuple[str, int, int, tuple[str, ...], int]
) -> tuple[frozenset[int], tuple[DayRule, ...]]:
    """The values one field allows and its month-dependent day rules; InvalidCronExpression names the field."""
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
    rules: list[DayRule] = []
    for item in text.split(","):
        if not item:
            raise fail(f"empty list item in {text!r}")
        if _is_day_rule(name, item):
            if "/" in item or "-" in item.upper().removeprefix("L-"):
                raise fail(f"{item!r}: L, W and # take no range or step")
            rule = parse_dom_rule(item, fail) if name == "day-of-month" else parse_dow_rule(item, value, fail)
            rules.append(rule)
            continue
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
            if name == "day-of-week" and end == 0 < start:
                end = 7  # MON-SUN, FRI-0: a range ending on Sunday runs through Sunday
            if start > end:
                raise fail(f"range {base} is reversed{_wrap_hint(first, last, names)}")
        else:
            start = value(base)
            end = open_end if slash else start
        values.update(range(start, end + 1, step))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values), tuple(dict.fromkeys(rules))


def _is_day_rule(name: str, item: str) -> bool:
    """Whether a list item is an L/W/# form (cron_days.py parses those)."""
    upper = item.upper()
    if name == "day-of-month":
        return upper.startswith("L") or upper.endswith("W")
    return name == "day-of-week" and ("#" in upper or upper.endswith("L"))


def _wrap_hint(first: str, last: str, names: tuple[str, ...]) -> str:
    """How to write a wrapping month or weekday range as a list (FRI-MON: FRI-SAT,SUN-MON)."""
    if not names:
        return ""
    top, bottom = (names[-1], names[0]) if first.isalpha() else (("12", "1") if names[0] == "JAN" else ("6", "0"))
    upper = first if first.upper() == top else f"{first}-{top}"
    lower = last if last.upper() == bottom else f"{bottom}-{last}"
    return f"; ranges cannot wrap: write {upper},{lower}"


def _check_fires(source: str, doms: frozenset[int], rules: tuple[DayRule, ...], months: frozenset[int]) -> None:
    """Reject day-of-month/month combinations that never occur (when DOW cannot fire on its own).

    Every (month, day) that exists falls on every weekday in some year, so this is the only way an
    expression can never fire.
    """
    if any(day <= _MAX_DAYS_IN_MONTH[month] for day in doms for month in months):
        return
    if any(possible_in(rule, _MAX_DAYS_IN_MONTH[month]) for rule in rules for month in months):
        return
    days = [*map(str, sorted(doms)), *(rule.text for rule in rules)]
    names = [_MONTH_NAMES[m - 1].capitalize() for m in sorted(months)]
    months_text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    days_text = f"day {days[0]} does" if len(days) == 1 else f"days {', '.join(days)} do"
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
