"""A plain-English reading of a six-field cron expression: `describe("0 */5 * * * *")` is "every 5 minutes".

It reads the engine's parsed form (cron_fields.parse_fields), so the sentence says what the scheduler
does: `*/90` in seconds is "at second 0", `MON-SUN` is every day, and both day fields restricted is
Vixie's either-or. The value sets are enough to find steps and ranges again, so no text is re-parsed.
The time zone is not part of the sentence; callers add it. The CLI and the dashboard share this one
function, so its signature stays `describe(expression: str) -> str`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise

from sp_scheduler.cron_days import LAST, LAST_OF, LAST_WEEKDAY, NEAREST, DayRule
from sp_scheduler.cron_fields import CronFields, parse_fields

__all__ = ["describe"]

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NTH = ("", "first", "second", "third", "fourth", "fifth")
_MAX_LISTED_TIMES = 8  # beyond this many clock times, fields are described one by one
_CLOCK_TIMES = re.compile(r"at \d\d:\d\d:\d\d(?:(?:, | and )\d\d:\d\d:\d\d)*")


@lru_cache(maxsize=4096)  # ~0.1 ms each: the dashboard's jobs page reads a thousand on every render
def describe(expression: str) -> str:
    """The schedule of `expression` in plain English; InvalidCronExpression when the engine rejects it."""
    fields = parse_fields(expression.strip())
    seconds = _allowed(fields.next_second, 60)
    minutes = _allowed(fields.next_minute, 60)
    hours = _allowed(fields.next_hour, 24)
    months = _allowed(fields.next_month, 13)
    time, days = _time_part(seconds, minutes, hours), _date_part(fields, months)
    if _CLOCK_TIMES.fullmatch(time) and (not days or days.startswith(", in ")):
        time = "every day " + time  # "at 03:00:00" alone could be read as once
    return time + days


def _allowed(table: tuple[int, ...], size: int) -> tuple[int, ...]:
    """The values a lookup table allows (next_x[i] == i), ascending."""
    return tuple(i for i in range(size) if table[i] == i)


# -- shapes of a value set ----------------------------------------------------------------------


def _progression(values: tuple[int, ...]) -> int:
    """The common step of an arithmetic progression of at least two values, else 0."""
    if len(values) < 2:
        return 0
    step = values[1] - values[0]
    return step if all(b - a == step for a, b in pairwise(values)) else 0


def _full_step(values: tuple[int, ...], lowest: int, size: int) -> int:
    """n when the values are exactly `*/n` and n divides the field evenly (every n minutes), else 0."""
    step = _progression(values)
    if step < 2 or values[0] != lowest or size % step:
        return 0
    return step if values[-1] + step >= lowest + size else 0


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive values, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _join(items: list[str], word: str = "and") -> str:
    """`a`, `a and b`, `a, b and c`."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _numbers(values: tuple[int, ...], name: Callable[[int], str] = str) -> str:
    """Values as a list, runs of three or more as `a through b`."""
    items: list[str] = []
    for first, last in _runs(values):
        if last - first >= 2:
            items.append(f"{name(first)} through {name(last)}")
        else:
            items.extend(name(v) for v in range(first, last + 1))
    return _join(items)


# -- time of day --------------------------------------------------------------------------------


def _clock(hour: int, minute: int, second: int) -> str:
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def _time_part(seconds: tuple[int, ...], minutes: tuple[int, ...], hours: tuple[int, ...]) -> str:
    """When in the day: clock times when there are few, else a phrase per field, finest first."""
    every_hour = len(hours) == 24
    if len(seconds) == 1 and len(minutes) == 1:
        return _hourly(seconds[0], minutes[0], hours)
    if not every_hour and len(minutes) < 60 and len(seconds) * len(minutes) * len(hours) <= _MAX_LISTED_TIMES:
        return "at " + _join([_clock(h, m, s) for h in hours for m in minutes for s in seconds])
    second, minute = _seconds_piece(seconds, minutes), _minutes_piece(minutes, seconds, every_hour)
    pieces = [minute, second] if len(seconds) == 1 else [second, minute]  # "every 5 minutes, at second 30"
    pieces.append(_hours_piece(hours))
    return ", ".join(piece for piece in pieces if piece)


def _hourly(second: int, minute: int, hours: tuple[int, ...]) -> str:
    """One minute and one second: the hours decide (every hour, every n hours, a range, a list)."""
    if len(hours) == 24:
        if minute == second == 0:
            return "every hour"
        return f"every hour at minute {minute}" + (f", second {second}" if second else "")
    step = _full_step(hours, 0, 24)
    if step and minute == second == 0:
        return f"every {step} hours"
    first, last = _clock(hours[0], minute, second), _clock(hours[-1], minute, second)
    step = _progression(hours)
    if step == 1 and len(hours) >= 3:
        return f"every hour from {first} through {last}"
    if step > 1 and (len(hours) >= 3 or _full_step(hours, 0, 24)):
        return f"every {step} hours from {first} through {last}"
    return "at " + _join([_clock(hour, minute, second) for hour in hours])


def _stepped(values: tuple[int, ...], unit: str, lowest: int, size: int) -> str | None:
    """`every n units`, `every unit from unit a through b`, `every n units from unit a through b`, or None."""
    if len(values) == size:
        return f"every {unit}"
    step = _full_step(values, lowest, size)
    if step:
        return f"every {step} {unit}s"
    step = _progression(values)
    if step and len(values) >= 3:
        every = f"every {unit}" if step == 1 else f"every {step} {unit}s"
        return f"{every} from {unit} {values[0]} through {values[-1]}"
    return None


def _seconds_piece(seconds: tuple[int, ...], minutes: tuple[int, ...]) -> str | None:
    if seconds == (0,) and len(minutes) > 1:
        return None  # "every 5 minutes" means at second 0
    if len(seconds) == 1:
        return f"at second {seconds[0]}"
    return _stepped(seconds, "second", 0, 60) or f"at seconds {_numbers(seconds)}"


def _minutes_piece(minutes: tuple[int, ...], seconds: tuple[int, ...], every_hour: bool) -> str | None:
    if len(minutes) == 60:
        # "every 10 seconds" already covers every minute; "at second 30" and "seconds 5 through 9" do not.
        return None if len(seconds) == 60 or _full_step(seconds, 0, 60) else "every minute"
    if len(minutes) == 1:
        return f"during minute {minutes[0]}" + (" of every hour" if every_hour else "")
    return _stepped(minutes, "minute", 0, 60) or f"at minutes {_numbers(minutes)}"


def _hours_piece(hours: tuple[int, ...]) -> str | None:
    if len(hours) == 24:
        return None
    runs = _runs(hours)
    if len(runs) <= 3:
        return _join([f"between {first:02d}:00 and {last:02d}:59" for first, last in runs])
    return f"during hours {_numbers(hours)}"


# -- days and months ----------------------------------------------------------------------------

_ALL_DOM = sum(1 << d for d in range(1, 32))
_ALL_DOW = sum(1 << w for w in range(7))


def _date_part(fields: CronFields, months: tuple[int, ...]) -> str:
    """Which days: the day-of-month and day-of-week clauses under the Vixie rule, then the months."""
    any_dom = fields.dom_bits == _ALL_DOM  # then L, W and # items add no day
    any_dow = fields.dow_bits == _ALL_DOW
    dom_days = tuple(d for d in range(1, 32) if fields.dom_bits >> d & 1)
    one_date = any_dow and not fields.both_restricted and not fields.dom_rules and len(dom_days) == 1
    if one_date and len(months) == 1:
        return f" on {_MONTHS[months[0] - 1]} {dom_days[0]}"  # @yearly: "on January 1"
    text = ""
    if fields.both_restricted:
        if not (any_dom or any_dow):  # one field allowing every day makes every day match
            text = f" {_dom_clause(dom_days, fields.dom_rules)} or {_dow_clause(fields, listed=True)}"
    elif not any_dom and not any_dow:
        text = f" {_dom_clause(dom_days, fields.dom_rules)}, but only {_dow_clause(fields, listed=True)}"
    elif not any_dom:
        text = " " + _dom_clause(dom_days, fields.dom_rules)
    elif not any_dow:
        dow = _dow_clause(fields, listed=False)
        text = dow if dow.startswith(",") else " " + dow
    if len(months) < 12:
        text += f", in {_cyclic(months, lambda m: _MONTHS[m - 1], 1, 12)}"
    return text


def _dom_clause(days: tuple[int, ...], rules: tuple[DayRule, ...]) -> str:
    """`on day 13 of the month`, `on days 1 and 15 of the month and on the last day of the month`."""
    clauses: list[str] = []
    step = _progression(days)
    if len(days) == 1:
        clauses.append(f"on day {days[0]} of the month")
    elif step > 1 and len(days) >= 3:
        clauses.append(f"on every {_ordinal(step)} day of the month from day {days[0]} through {days[-1]}")
    elif days:
        clauses.append(f"on days {_numbers(days)} of the month")
    clauses.extend(_dom_rule(rule) for rule in sorted(rules, key=_rule_order))
    return _join(clauses)


def _dom_rule(rule: DayRule) -> str:
    if rule.kind == LAST:
        return "on the last day of the month" + (f" minus {_count(rule.a, 'day')}" if rule.a else "")
    if rule.kind == NEAREST:
        return f"on the weekday nearest day {rule.a} of the month"
    if rule.kind == LAST_WEEKDAY:
        return "on the last weekday of the month"
    raise AssertionError(f"not a day-of-month rule: {rule.kind}")


def _dow_clause(fields: CronFields, *, listed: bool) -> str:
    """`, Monday through Friday` (or `on Monday through Friday` when `listed`), `on the second Friday ...`."""
    weekdays = tuple(w for w in range(7) if fields.dow_bits >> w & 1)
    clauses: list[str] = []
    if weekdays:
        block = _cyclic(weekdays, _WEEKDAYS.__getitem__, 0, 7, monday_first=True)
        if " through " in block and not listed and not fields.dow_rules:
            return f", {block}"
        clauses.append(f"on {block}")
    for rule in sorted(fields.dow_rules, key=_rule_order):
        if rule.kind == LAST_OF:
            clauses.append(f"on the last {_WEEKDAYS[rule.a]} of the month")
        else:
            clauses.append(f"on the {_NTH[rule.b]} {_WEEKDAYS[rule.a]} of the month")
    return _join(clauses)


def _cyclic(
    values: tuple[int, ...], name: Callable[[int], str], lowest: int, size: int, *, monday_first: bool = False
) -> str:
    """Names of weekdays or months; a block of three or more that may wrap (FRI-SAT,SUN-MON) as `a through b`."""
    present = set(values)
    if 3 <= len(present) < size:
        for start in values:
            block = [lowest + (start - lowest + k) % size for k in range(len(present))]
            if set(block) == present and (start - 1 - lowest) % size + lowest not in present:
                return f"{name(block[0])} through {name(block[-1])}"
    order = sorted(values, key=lambda v: (v - 1) % 7 if monday_first else v)
    return _join([name(v) for v in order])


def _rule_order(rule: DayRule) -> tuple[str, int, int]:
    return rule.kind, rule.a, rule.b


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" + ("" if number == 1 else "s")
