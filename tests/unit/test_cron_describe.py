"""describe(): the plain-English reading of a cron expression, as `jobs show` and `cron next` print it."""

from __future__ import annotations

import ast
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_scheduler.cron import CronExpression
from sp_scheduler.cron_describe import describe
from sp_scheduler.cron_fields import parse_fields
from sp_scheduler.errors import InvalidCronExpression, NoFireTime

SENTENCES = [
    # seconds
    ("* * * * * *", "every second"),
    ("*/10 * * * * *", "every 10 seconds"),
    ("0/15 * * * * *", "every 15 seconds"),
    ("*/90 * * * * *", "every minute"),  # a step past the range is second 0 only
    ("*/7 * * * * *", "every 7 seconds from second 0 through 56, every minute"),
    ("10-40/10 * * * * *", "every 10 seconds from second 10 through 40, every minute"),
    ("5-9 * * * * *", "every second from second 5 through 9, every minute"),
    ("1,5 * * * * *", "at seconds 1 and 5, every minute"),
    ("30 * * * * *", "every minute, at second 30"),
    ("*/10 30 * * * *", "every 10 seconds, during minute 30 of every hour"),
    # minutes
    ("0 * * * * *", "every minute"),
    ("0 */5 * * * *", "every 5 minutes"),
    ("0 */30 * * * *", "every 30 minutes"),
    ("0 5/10 * * * *", "every 10 minutes from minute 5 through 55"),
    ("0 10-40/5 * * * *", "every 5 minutes from minute 10 through 40"),
    ("0 */7 * * * *", "every 7 minutes from minute 0 through 56"),
    ("0 0,15,45 * * * *", "at minutes 0, 15 and 45"),
    ("0 1-5,10,20-22/2 * * * *", "at minutes 1 through 5, 10, 20 and 22"),
    ("30 */5 * * * *", "every 5 minutes, at second 30"),
    ("0 30 * * * *", "every hour at minute 30"),
    ("15 30 * * * *", "every hour at minute 30, second 15"),
    # hours
    ("0 0 * * * *", "every hour"),
    ("0 0 */2 * * *", "every 2 hours"),
    ("0 30 */2 * * *", "every 2 hours from 00:30:00 through 22:30:00"),
    ("0 0 1-22/3 * * *", "every 3 hours from 01:00:00 through 22:00:00"),
    ("0 0 9-17 * * *", "every hour from 09:00:00 through 17:00:00"),
    ("0 0 3 * * *", "every day at 03:00:00"),
    ("0 0 7,19 * * *", "every day at 07:00:00 and 19:00:00"),
    ("0 0,30 9 * * *", "every day at 09:00:00 and 09:30:00"),
    ("0 */15 9-17 * * *", "every 15 minutes, between 09:00 and 17:59"),
    ("0 */15 9-11,14-16 * * *", "every 15 minutes, between 09:00 and 11:59 and between 14:00 and 16:59"),
    ("0 */5 */6 * * *", "every 5 minutes, during hours 0, 6, 12 and 18"),
    ("0 * 9 * * *", "every minute, between 09:00 and 09:59"),
    # macros
    ("@hourly", "every hour"),
    ("@daily", "every day at 00:00:00"),
    ("@midnight", "every day at 00:00:00"),
    ("@weekly", "at 00:00:00 on Sunday"),
    ("@monthly", "at 00:00:00 on day 1 of the month"),
    ("@yearly", "at 00:00:00 on January 1"),
    ("@Annually", "at 00:00:00 on January 1"),
    # day of month
    ("0 0 9 13 * *", "at 09:00:00 on day 13 of the month"),
    ("0 0 9 1,15 * *", "at 09:00:00 on days 1 and 15 of the month"),
    ("0 0 9 1-7 * *", "at 09:00:00 on days 1 through 7 of the month"),
    ("0 0 9 */10 * *", "at 09:00:00 on every 10th day of the month from day 1 through 31"),
    ("0 0 9 L * *", "at 09:00:00 on the last day of the month"),
    ("0 0 9 L-3 * *", "at 09:00:00 on the last day of the month minus 3 days"),
    ("0 0 9 L-1 * *", "at 09:00:00 on the last day of the month minus 1 day"),
    ("0 0 9 L-0 * *", "at 09:00:00 on the last day of the month"),
    ("0 0 9 15W * *", "at 09:00:00 on the weekday nearest day 15 of the month"),
    ("0 0 9 LW * *", "at 09:00:00 on the last weekday of the month"),
    ("0 0 9 lw * *", "at 09:00:00 on the last weekday of the month"),
    ("0 0 0 1,15,L * *", "at 00:00:00 on days 1 and 15 of the month and on the last day of the month"),
    # day of week
    ("30 0 2 * * MON-FRI", "at 02:00:30, Monday through Friday"),
    ("0 0 0 * * 1-5", "at 00:00:00, Monday through Friday"),
    ("0 0 12 * * FRI", "at 12:00:00 on Friday"),
    ("0 0 0 * * 0,6", "at 00:00:00 on Saturday and Sunday"),
    ("0 0 0 * * 7", "at 00:00:00 on Sunday"),
    ("0 0 0 * * MON-SUN", "every day at 00:00:00"),
    ("0 0 0 * * SUN-SAT", "every day at 00:00:00"),
    ("0 0 0 * * 0-7", "every day at 00:00:00"),
    ("0 0 0 * * 5-7", "at 00:00:00, Friday through Sunday"),
    ("0 0 0 * * FRI-0", "at 00:00:00, Friday through Sunday"),
    ("0 0 0 * * FRI-SAT,SUN-MON", "at 00:00:00, Friday through Monday"),
    ("0 0 0 * * MON-SUN/2", "at 00:00:00 on Monday, Wednesday, Friday and Sunday"),
    ("0 0 0 * * */2", "at 00:00:00 on Tuesday, Thursday, Saturday and Sunday"),
    ("0 0 12 * * FRI#2", "at 12:00:00 on the second Friday of the month"),
    ("0 0 12 * * 1#5", "at 12:00:00 on the fifth Monday of the month"),
    ("0 0 18 * * 5L", "at 18:00:00 on the last Friday of the month"),
    ("0 30 2 * * SUNL", "at 02:30:00 on the last Sunday of the month"),
    ("0 0 0 * * MON#1,FRIL", "at 00:00:00 on the first Monday of the month and on the last Friday of the month"),
    ("0 0 0 * * MON,FRI#2", "at 00:00:00 on Monday and on the second Friday of the month"),
    # both day fields restricted: either matches (Vixie)
    ("0 0 0 13 * FRI", "at 00:00:00 on day 13 of the month or on Friday"),
    ("0 0 0 L * FRI", "at 00:00:00 on the last day of the month or on Friday"),
    ("0 0 0 L * SAT#1", "at 00:00:00 on the last day of the month or on the first Saturday of the month"),
    ("0 0 0 1 * MON-FRI", "at 00:00:00 on day 1 of the month or on Monday through Friday"),
    ("0 0 0 1-31 * MON", "every day at 00:00:00"),  # every day of the month matches on its own
    ("0 0 0 L * 0-7", "every day at 00:00:00"),
    ("0 0 0 1 1 0-7", "every day at 00:00:00, in January"),  # not "on January 1": 0-7 is every weekday
    ("0 0 0 31 2 MON", "at 00:00:00 on day 31 of the month or on Monday, in February"),
    # one day field `*`-led: both must match
    ("0 0 0 */2 * MON", "at 00:00:00 on every 2nd day of the month from day 1 through 31, but only on Monday"),
    (
        "0 0 0 */2 * FRIL",
        "at 00:00:00 on every 2nd day of the month from day 1 through 31, but only on the last Friday of the month",
    ),
    ("0 0 0 * * MON", "at 00:00:00 on Monday"),
    ("0 0 0 13 * *", "at 00:00:00 on day 13 of the month"),
    # months
    ("0 0 0 * JAN *", "every day at 00:00:00, in January"),
    ("0 0 0 1 */3 *", "at 00:00:00 on day 1 of the month, in January, April, July and October"),
    ("0 0 0 * jan-mar/2 *", "every day at 00:00:00, in January and March"),
    ("0 0 0 * 1-3 *", "every day at 00:00:00, in January through March"),
    ("0 0 0 * NOV-DEC,JAN-MAR *", "every day at 00:00:00, in November through March"),
    ("0 0 0 L 2 *", "at 00:00:00 on the last day of the month, in February"),
    ("0 0 0 29 2 *", "at 00:00:00 on February 29"),
    ("5 4 3 2 1 *", "at 03:04:05 on January 2"),
    ("0 */5 * * 6-8 MON-FRI", "every 5 minutes, Monday through Friday, in June through August"),
    ("  0 */5 * * * *  ", "every 5 minutes"),
]


@pytest.mark.parametrize(("expression", "sentence"), SENTENCES)
def test_sentence(expression: str, sentence: str) -> None:
    assert describe(expression) == sentence


def test_the_time_zone_is_not_part_of_the_sentence() -> None:
    assert "UTC" not in describe("0 0 3 * * *") and "(" not in describe("0 0 3 * * *")


@pytest.mark.parametrize("expression", ["", "   ", "*/5 * * * *", "0 61 * * * *", "@often", "0 0 0 31 2 *"])
def test_invalid_expressions_raise_the_engines_error(expression: str) -> None:
    with pytest.raises(InvalidCronExpression):
        describe(expression)


def first_days(expression: str, count: int) -> list[int]:
    """Days of the first `count` fires after 2026-01-01 (UTC), to check what a sentence claims."""
    cron = CronExpression.parse(expression)
    moment = datetime(2026, 1, 1)
    days = []
    for _ in range(count):
        fire = cron.next_after(moment)
        days.append(fire.day)
        moment = fire.replace(tzinfo=None)
    return days


def test_every_day_and_either_claims_agree_with_the_engine() -> None:
    # "every day": the engine fires on consecutive days.
    assert first_days("0 0 0 1-31 * MON", 5) == [2, 3, 4, 5, 6]
    # "on day 13 of the month or on Friday": Fridays of January 2026 and the 13th (a Tuesday).
    assert first_days("0 0 0 13 * FRI", 4) == [2, 9, 13, 16]
    # "on every 2nd day ... but only on Monday": Mondays on odd dates (Jan 5, 19; Feb 9, 23).
    assert first_days("0 0 0 */2 * MON", 4) == [5, 19, 9, 23]


def cron_strings_in_tests() -> list[str]:
    """Every string literal in tests/unit that the engine accepts as an expression: the suite's cron tables."""
    found: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
                text = node.value.strip()
                if not (text.startswith("@") or len(text.split()) == 6):
                    continue
                try:
                    parse_fields(text)
                except InvalidCronExpression:
                    continue
                found.add(text)
    return sorted(found)


def test_every_expression_in_the_suites_tables_describes() -> None:
    expressions = cron_strings_in_tests()
    assert len(expressions) > 150  # the collection itself works: the cron tests hold hundreds
    for expression in expressions:
        sentence = describe(expression)
        assert sentence and sentence == sentence.strip() and "  " not in sentence, expression


_DOM_ITEMS = st.sampled_from(["*", "*/2", "*/10", "1", "15", "31", "1-7", "10-20/3", "L", "L-3", "LW", "15W", "1W"])
_DOW_ITEMS = st.sampled_from(["*", "*/2", "MON", "0", "7", "MON-FRI", "5-7", "FRI-SUN", "FRIL", "5L", "MON#1", "2#5"])


def _field(items: st.SearchStrategy[str], lowest: int, highest: int) -> st.SearchStrategy[str]:
    number = st.integers(lowest, highest)
    plain = st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, st.integers(1, highest + 5)).map(lambda t: f"*/{t[1]}" if t[0] % 2 else f"{t[0]}/{t[1]}"),
        st.tuples(number, number).map(lambda t: f"{min(t)}-{max(t)}"),
    )
    return st.lists(st.one_of(plain, items), min_size=1, max_size=3).map(",".join)


@settings(max_examples=400, deadline=None)
@given(
    second=_field(st.nothing(), 0, 59),
    minute=_field(st.nothing(), 0, 59),
    hour=_field(st.nothing(), 0, 23),
    dom=_field(_DOM_ITEMS, 1, 31),
    month=_field(st.sampled_from(["JAN", "FEB-APR", "*/3"]), 1, 12),
    dow=_field(_DOW_ITEMS, 0, 7),
)
def test_every_valid_expression_describes(second: str, minute: str, hour: str, dom: str, month: str, dow: str) -> None:
    expression = f"{second} {minute} {hour} {dom} {month} {dow}"
    try:
        parse_fields(expression)
    except InvalidCronExpression:
        return  # e.g. day 31 in February only: the engine rejects it, so there is nothing to describe
    sentence = describe(expression)
    assert sentence and "  " not in sentence and not sentence.endswith((",", " "))
    if sentence.startswith("every day at ") and ", in " not in sentence:  # the claim, checked on the engine
        cron = CronExpression.parse(expression)
        for day in range(2, 6):
            assert cron.next_after(datetime(2026, 1, day) - timedelta(seconds=1)).day == day, sentence


def test_the_table_in_docs_cron_md_matches() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cron.md").read_text()
    section = docs.split("## Reading an expression in words", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` *\| (.+?) *\|$", section, flags=re.MULTILINE)
    assert len(rows) >= 15
    for expression, reading in rows:
        assert describe(expression) == re.sub(r" \(.*\)$", "", reading), expression


@settings(max_examples=300, deadline=None)
@given(dom=_field(_DOM_ITEMS, 1, 31), dow=_field(_DOW_ITEMS, 0, 7))
def test_day_fields_read_every_day_only_when_every_day_fires(dom: str, dow: str) -> None:
    expression = f"0 0 3 {dom} * {dow}"
    sentence = describe(expression)
    cron = CronExpression.parse(expression)
    try:
        fires = [cron.next_after(datetime(2026, 1, 1) + timedelta(days=k, seconds=-1)) for k in range(62)]
    except NoFireTime:  # e.g. `*/16` (days 1 and 17) with `FRIL` (day 22 or later): both must match, never do
        assert sentence != "every day at 03:00:00", expression
        return
    every_day = all(
        fire.timetuple()[:3] == (datetime(2026, 1, 1) + timedelta(days=k)).timetuple()[:3]
        for k, fire in enumerate(fires)
    )
    if sentence == "every day at 03:00:00":
        assert every_day, expression
    else:
        assert sentence.startswith("at 03:00:00 on ") or sentence.startswith("at 03:00:00, "), sentence
