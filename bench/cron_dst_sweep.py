"""Walk every DST transition of every IANA zone (2020-2035) and check the fixed-hour rule of docs/cron.md.

    python bench/cron_dst_sweep.py [--first 2020] [--last 2035] [--zone Europe/Berlin ...]

For each transition and each expression in EXPRESSIONS (one fire per matching day, fixed hour), the
fires from three local days before to three after must fall exactly once on each matching local day:
a time skipped by spring-forward fires once at the gap's end, a repeated time once on its first
occurrence. The suite runs the same check on a handful of zones (tests/unit/test_cron_month_rules.py);
this script is the full sweep, too slow for every test run. Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import sys
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sp_scheduler.cron import CronExpression

# (expression, which local days it fires on); the day tests are written without the engine.
EXPRESSIONS: list[tuple[str, Callable[[date], bool]]] = [
    ("0 30 2 * * *", lambda d: True),
    ("0 0 0 * * *", lambda d: True),
    ("0 30 1 * * SUNL", lambda d: d.isoweekday() == 7 and (d + timedelta(days=7)).month != d.month),
    ("0 30 2 * * SUN#2", lambda d: d.isoweekday() == 7 and 8 <= d.day <= 14),
    ("0 0 3 L * *", lambda d: (d + timedelta(days=1)).month != d.month),
    ("0 15 2 LW * MON-SUN", lambda d: True),  # both restricted: every day via MON-SUN
]
DAY = 86400


def transitions(tz: ZoneInfo, first_year: int, last_year: int) -> list[int]:
    """POSIX seconds at which tz's UTC offset changes (6-hour scan, then bisection)."""
    found = []
    start = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    stop = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    step = 6 * 3600
    offset = datetime.fromtimestamp(start, tz).utcoffset()
    for t in range(start, stop, step):
        following = datetime.fromtimestamp(t + step, tz).utcoffset()
        if following != offset:
            low, high = t, t + step
            while high - low > 1:
                middle = (low + high) // 2
                if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = following
    return found


def check_transition(tz: ZoneInfo, change: int, expressions: Iterable[tuple[str, Callable[[date], bool]]]) -> list[str]:
    """Violations of the once-a-matching-day rule around one transition, as readable lines."""
    problems = []
    first_day = datetime.fromtimestamp(change - 3 * DAY, tz).date() + timedelta(days=1)
    last_day = datetime.fromtimestamp(change + 3 * DAY, tz).date() - timedelta(days=1)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=tz) - timedelta(seconds=1)
    for source, fires_on in expressions:
        cron = CronExpression.parse(source, tz)
        seen: Counter[date] = Counter()
        moment = cron.next_after(start.astimezone(UTC))
        while moment.date() <= last_day:
            seen[moment.date()] += 1
            moment = cron.next_after(moment)
        day = first_day
        while day <= last_day:
            expected = 1 if fires_on(day) else 0
            if seen[day] != expected:
                problems.append(f"{tz.key} {source!r} on {day}: {seen[day]} fires, expected {expected}")
            day += timedelta(days=1)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--first", type=int, default=2020)
    parser.add_argument("--last", type=int, default=2035)
    parser.add_argument("--zone", action="append", help="only these zones (default: every IANA zone)")
    args = parser.parse_args()
    started = time.perf_counter()
    zones = args.zone or sorted(zoneinfo.available_timezones())
    count, problems = 0, []
    for name in zones:
        tz = ZoneInfo(name)
        for change in transitions(tz, args.first, args.last):
            count += 1
            problems += check_transition(tz, change, EXPRESSIONS)
    for line in problems:
        print(line)
    print(
        f"{len(zones)} zones, {count} transitions {args.first}-{args.last}, {len(EXPRESSIONS)} expressions: "
        f"{len(problems)} violations ({time.perf_counter() - started:.0f} s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
