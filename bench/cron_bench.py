"""Next-fire throughput of sp_scheduler.cron against croniter, on the same machine.

    python bench/cron_bench.py [--tz Europe/Berlin] [--budget 0.1]

Each engine walks forward from a fixed start, feeding every result back in as the next `after`, as the
scheduler does. croniter is timed two ways: a new croniter per call (`croniter(expr, prev).get_next`,
what a stateless scheduler does) and one reused iterator (its best case). The exit status is non-zero
when ours is not at least 5x faster than croniter's best case, overall or on any one expression.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime

from sp_scheduler.cron import CronExpression, load_zone

try:
    from croniter import croniter
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("croniter is not installed: pip install -e '.[bench]'")

SEEDS = [
    "0 0 * * * *",
    "0 */15 * * * *",
    "0 */30 * * * *",
    "0 0 3 * * *",
    "0 0 7,19 * * *",
    "0 0 18 * * *",
    "0 0 0 * * 0",
    "0 0 0 1 * *",
    "0 0 */2 * * *",
    "0 30 2 * * *",
    "0 0 0 * * 1",
    "0 0 0 * * *",
]
# The month-dependent forms, each with the croniter expression it is timed against. croniter
# spells "last Friday" L5 and has no L-n or LW: those are timed against its nearest form (marked `~`)
# and not checked for equal results.
MONTH_RULES: list[tuple[str, str, bool]] = [
    ("0 0 0 L * *", "0 0 L * * 0", True),
    ("0 0 0 L-3 * *", "0 0 L * * 0", False),
    ("0 0 0 * * 5L", "0 0 * * L5 0", True),
    ("0 0 9 * * MON#1", "0 9 * * mon#1 0", True),
    ("0 0 0 15W * *", "0 0 15W * * 0", True),
    ("0 0 0 LW * *", "0 0 L * * 0", False),
    ("0 0 0 L * FRI", "0 0 L * fri 0", True),
    ("0 0 0 * * MON-SUN", "0 0 * * mon-sun 0", True),
]
CHUNK = 500  # calls per walk from the start, so monthly expressions stay far from year 9999
REQUIRED_SPEEDUP = 5.0


def croniter_form(expr: str) -> str:
    """Ours is `sec min hour dom month dow`; croniter takes the seconds as a sixth field at the end."""
    fields = expr.split()
    return " ".join([*fields[1:], fields[0]])


def per_call_seconds(walk: Callable[[int], None], budget: float) -> float:
    """Best-of-3 seconds per call of `walk(n)` (n calls), with n grown until one run takes `budget`."""
    calls = CHUNK
    while True:
        started = time.perf_counter()
        walk(calls)
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            break
        calls *= 2
    best = elapsed
    for _ in range(2):
        started = time.perf_counter()
        walk(calls)
        best = min(best, time.perf_counter() - started)
    return best / calls


def ours(cron: CronExpression, start: datetime) -> Callable[[int], None]:
    def walk(calls: int) -> None:
        for _ in range(calls // CHUNK):
            after = start
            for _ in range(CHUNK):
                after = cron.next_after(after)

    return walk


def croniter_new_per_call(expr: str, start: datetime) -> Callable[[int], None]:
    def walk(calls: int) -> None:
        for _ in range(calls // CHUNK):
            after = start
            for _ in range(CHUNK):
                after = croniter(expr, after).get_next(datetime)

    return walk


def croniter_reused(expr: str, start: datetime) -> Callable[[int], None]:
    def walk(calls: int) -> None:
        for _ in range(calls // CHUNK):
            iterator = croniter(expr, start)
            for _ in range(CHUNK):
                iterator.get_next(datetime)

    return walk


def check_same_results(cron: CronExpression, expr: str, start: datetime) -> None:
    """Guard against benchmarking two different schedules."""
    iterator, after = croniter(expr, start), start
    for _ in range(50):
        after = cron.next_after(after)
        theirs = iterator.get_next(datetime)
        if after.timestamp() != theirs.timestamp():
            sys.exit(f"{cron.source!r}: ours gives {after.isoformat()}, croniter {theirs.isoformat()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tz", default="UTC", help="time zone of the expressions (default UTC)")
    parser.add_argument("--budget", type=float, default=0.1, help="seconds per timed run (default 0.1)")
    args = parser.parse_args()
    zone = load_zone(args.tz)
    start = datetime(2026, 5, 13, 10, 7, 23, tzinfo=zone)
    print(f"Python {sys.version.split()[0]}, zone {args.tz}, start {start.isoformat()}")
    print(
        f"{'expression':<19} {'ours µs':>8} {'calls/s':>11} {'croniter µs':>12} {'calls/s':>9} {'speed-up':>9}"
        f" {'reused µs':>10} {'speed-up':>9}"
    )
    totals = [0.0, 0.0, 0.0]
    ratios = []
    cases = [(source, croniter_form(source), True) for source in SEEDS] + MONTH_RULES
    for source, theirs, same in cases:
        cron = CronExpression.parse(source, zone)
        if same:
            check_same_results(cron, theirs, start)
        timings = [
            per_call_seconds(ours(cron, start), args.budget),
            per_call_seconds(croniter_new_per_call(theirs, start), args.budget),
            per_call_seconds(croniter_reused(theirs, start), args.budget),
        ]
        ours_s, new_s, reused_s = timings
        totals = [total + t for total, t in zip(totals, timings, strict=True)]
        ratios.append(reused_s / ours_s)
        label = source if same else f"{source} ~"
        print(
            f"{label:<19} {ours_s * 1e6:8.2f} {1 / ours_s:11,.0f} {new_s * 1e6:12.1f} {1 / new_s:9,.0f}"
            f" {new_s / ours_s:8.0f}x {reused_s * 1e6:10.1f} {reused_s / ours_s:8.0f}x"
        )
    ours_total, new_total, reused_total = totals
    overall = reused_total / ours_total
    geometric = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(
        f"summary: ours {ours_total / len(cases) * 1e6:.2f} µs/call on average; croniter "
        f"{new_total / len(cases) * 1e6:.1f} µs new per call ({new_total / ours_total:.0f}x), "
        f"{reused_total / len(cases) * 1e6:.1f} µs reused ({overall:.0f}x overall, {geometric:.0f}x geometric mean)"
    )
    if overall < REQUIRED_SPEEDUP:
        print(f"FAIL: ours is only {overall:.1f}x faster than croniter's best case (need {REQUIRED_SPEEDUP:.0f}x)")
        return 1
    slow = [source for (source, _, _), ratio in zip(cases, ratios, strict=True) if ratio < REQUIRED_SPEEDUP]
    if slow:
        print(f"FAIL: under {REQUIRED_SPEEDUP:.0f}x croniter's best case: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
