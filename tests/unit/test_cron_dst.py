"""DST rules, one named case each, in Europe/Berlin and America/New_York (transitions of 2026).

Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (gap 02:00-02:59), 2026-10-25 03:00 CEST -> 02:00 CET
(fold 02:00-02:59). New York: 2026-03-08 02:00 EST -> 03:00 EDT (gap 02:00-02:59), 2026-11-01
02:00 EDT -> 01:00 EST (fold 01:00-01:59).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise, takewhile
from zoneinfo import ZoneInfo

import pytest

from sp_scheduler.cron import CronExpression

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
CET, CEST = timedelta(hours=1), timedelta(hours=2)
EST, EDT = timedelta(hours=-5), timedelta(hours=-4)


def at(tz: ZoneInfo, offset: timedelta, *wall: int) -> datetime:
    """A wall time with an explicit offset, so each case states which pass of a fold it means."""
    year, month, day, *rest = wall
    hour, minute, second = (*rest, 0, 0, 0)[:3]
    moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    for fold in (0, 1):
        candidate = moment.replace(fold=fold)
        if candidate.utcoffset() == offset:
            return candidate
    raise AssertionError(f"{moment} never has offset {offset}")


def fires(expr: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    return list(islice(CronExpression.parse(expr, tz).iter_after(after), count))


def same_instants(actual: list[datetime], expected: list[datetime]) -> None:
    """Compare instants AND wall clocks (== on same-zone datetimes ignores the fold)."""
    assert [(t.timestamp(), t.isoformat()) for t in actual] == [(t.timestamp(), t.isoformat()) for t in expected]


# --- spring forward: the gap --------------------------------------------------------------------


def test_berlin_gap_fixed_hour_fires_at_gap_end() -> None:
    actual = fires("0 30 2 * * *", BERLIN, datetime(2026, 3, 28, 3), 3)
    same_instants(
        actual,
        [at(BERLIN, CEST, 2026, 3, 29, 3), at(BERLIN, CEST, 2026, 3, 30, 2, 30), at(BERLIN, CEST, 2026, 3, 31, 2, 30)],
    )
    assert actual[0].utcoffset() == CEST
    assert actual[0].astimezone(UTC) == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_new_york_gap_fixed_hour_fires_at_gap_end() -> None:
    actual = fires("0 30 2 * * *", NEW_YORK, datetime(2026, 3, 7, 3), 3)
    same_instants(
        actual,
        [at(NEW_YORK, EDT, 2026, 3, 8, 3), at(NEW_YORK, EDT, 2026, 3, 9, 2, 30), at(NEW_YORK, EDT, 2026, 3, 10, 2, 30)],
    )
    assert actual[0].astimezone(UTC) == datetime(2026, 3, 8, 7, tzinfo=UTC)


def test_berlin_gap_exact_case_every_15_minutes() -> None:
    actual = fires("0 */15 * * * *", BERLIN, datetime(2026, 3, 29, 1, 50), 4)
    same_instants(actual, [at(BERLIN, CEST, 2026, 3, 29, 3, m) for m in (0, 15, 30, 45)])


def test_new_york_gap_every_15_minutes() -> None:
    actual = fires("0 */15 * * * *", NEW_YORK, datetime(2026, 3, 8, 1, 40), 5)
    expected = [at(NEW_YORK, EST, 2026, 3, 8, 1, 45)] + [at(NEW_YORK, EDT, 2026, 3, 8, 3, m) for m in (0, 15, 30, 45)]
    same_instants(actual, expected)


def test_gap_matches_and_gap_end_match_collapse_into_one_fire() -> None:
    # 02:00, 02:30 (skipped) and 03:00 (real) all land on 03:00 CEST: one fire.
    actual = fires("0 0,30 2,3 * * *", BERLIN, datetime(2026, 3, 29, 1), 3)
    same_instants(actual, [at(BERLIN, CEST, 2026, 3, 29, 3), at(BERLIN, CEST, 2026, 3, 29, 3, 30), *actual[2:]])
    assert actual[2] == at(BERLIN, CEST, 2026, 3, 30, 2)


@pytest.mark.parametrize(
    ("tz", "before", "offset_after"),
    [(BERLIN, datetime(2026, 3, 29, 1, 59, 58), CEST), (NEW_YORK, datetime(2026, 3, 8, 1, 59, 58), EDT)],
)
def test_per_second_gap_fires_once_at_its_end(tz: ZoneInfo, before: datetime, offset_after: timedelta) -> None:
    actual = fires("* * * * * *", tz, before, 4)
    gap_end = at(tz, offset_after, 2026, before.month, before.day, 3)
    assert actual[0].replace(tzinfo=None) == before + timedelta(seconds=1)
    same_instants(actual[1:], [gap_end, gap_end + timedelta(seconds=1), gap_end + timedelta(seconds=2)])
    assert [b.timestamp() - a.timestamp() for a, b in pairwise(actual)] == [1, 1, 1]


def test_per_second_in_the_gap_hour_fires_once() -> None:
    # Every second of 02:xx is skipped; the whole hour collapses into 03:00:00 CEST, then 02:00 next day.
    actual = fires("* * 2 * * *", BERLIN, datetime(2026, 3, 29, 1), 3)
    same_instants(
        actual,
        [
            at(BERLIN, CEST, 2026, 3, 29, 3),
            at(BERLIN, CEST, 2026, 3, 30, 2),
            at(BERLIN, CEST, 2026, 3, 30, 2, 0, 1),
        ],
    )


def test_hour_star_step_in_the_gap() -> None:
    actual = fires("0 0 */2 * * *", BERLIN, datetime(2026, 3, 29, 0, 30), 3)
    same_instants(actual, [at(BERLIN, CEST, 2026, 3, 29, 3), at(BERLIN, CEST, 2026, 3, 29, 4), *actual[2:]])
    assert actual[2] == at(BERLIN, CEST, 2026, 3, 29, 6)


def test_naive_after_inside_the_gap_uses_the_old_offset() -> None:
    # Naive 02:30 is read with fold=0 (the offset before the gap): 01:30 UTC, i.e. 03:30 CEST.
    actual = fires("0 */15 * * * *", BERLIN, datetime(2026, 3, 29, 2, 30), 2)
    same_instants(actual, [at(BERLIN, CEST, 2026, 3, 29, 3, 45), at(BERLIN, CEST, 2026, 3, 29, 4)])


def test_aware_after_just_before_the_gap_end() -> None:
    gap_end = at(BERLIN, CEST, 2026, 3, 29, 3)
    cron = CronExpression.parse("0 30 2 * * *", BERLIN)
    same_instants([cron.next_after(datetime.fromtimestamp(gap_end.timestamp() - 1, BERLIN))], [gap_end])
    same_instants([cron.next_after(gap_end)], [at(BERLIN, CEST, 2026, 3, 30, 2, 30)])
    same_instants([cron.next_after(gap_end.astimezone(UTC) - timedelta(seconds=1))], [gap_end])


# --- fall back: the fold ------------------------------------------------------------------------


def test_berlin_fold_fixed_hour_fires_on_first_occurrence_only() -> None:
    actual = fires("0 30 2 * * *", BERLIN, datetime(2026, 10, 24, 3), 3)
    same_instants(
        actual,
        [
            at(BERLIN, CEST, 2026, 10, 25, 2, 30),
            at(BERLIN, CET, 2026, 10, 26, 2, 30),
            at(BERLIN, CET, 2026, 10, 27, 2, 30),
        ],
    )
    assert actual[0].fold == 0


def test_new_york_fold_fixed_hour_fires_on_first_occurrence_only() -> None:
    actual = fires("0 30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 3), 3)
    same_instants(
        actual,
        [
            at(NEW_YORK, EDT, 2026, 11, 1, 1, 30),
            at(NEW_YORK, EST, 2026, 11, 2, 1, 30),
            at(NEW_YORK, EST, 2026, 11, 3, 1, 30),
        ],
    )
    assert actual[0].utcoffset() == EDT


def test_berlin_fold_every_15_minutes_fires_in_both_passes() -> None:
    actual = fires("0 */15 * * * *", BERLIN, datetime(2026, 10, 25, 1, 50), 9)
    expected = [at(BERLIN, CEST, 2026, 10, 25, 2, m) for m in (0, 15, 30, 45)]
    expected += [at(BERLIN, CET, 2026, 10, 25, 2, m) for m in (0, 15, 30, 45)]
    expected += [at(BERLIN, CET, 2026, 10, 25, 3)]
    same_instants(actual, expected)
    assert [t.fold for t in actual] == [0, 0, 0, 0, 1, 1, 1, 1, 0]


def test_new_york_fold_every_15_minutes_fires_in_both_passes() -> None:
    actual = fires("0 */15 * * * *", NEW_YORK, datetime(2026, 11, 1, 0, 50), 9)
    expected = [at(NEW_YORK, EDT, 2026, 11, 1, 1, m) for m in (0, 15, 30, 45)]
    expected += [at(NEW_YORK, EST, 2026, 11, 1, 1, m) for m in (0, 15, 30, 45)]
    expected += [at(NEW_YORK, EST, 2026, 11, 1, 2)]
    same_instants(actual, expected)


def test_hour_star_step_fires_in_both_passes() -> None:
    # Decision: an hour field starting with `*` (here `*/2`) follows real time, like Vixie's HR_STAR.
    actual = fires("0 0 */2 * * *", BERLIN, datetime(2026, 10, 25, 0, 30), 3)
    same_instants(actual, [at(BERLIN, CEST, 2026, 10, 25, 2), at(BERLIN, CET, 2026, 10, 25, 2), *actual[2:]])
    assert actual[2] == at(BERLIN, CET, 2026, 10, 25, 4)


def test_hourly_macro_fires_in_both_passes() -> None:
    actual = fires("@hourly", NEW_YORK, datetime(2026, 11, 1, 0, 30), 3)
    same_instants(actual, [at(NEW_YORK, EDT, 2026, 11, 1, 1), at(NEW_YORK, EST, 2026, 11, 1, 1), *actual[2:]])
    assert actual[2] == at(NEW_YORK, EST, 2026, 11, 1, 2)


@pytest.mark.parametrize(
    ("tz", "start", "first_pass", "second_pass"),
    [
        (BERLIN, datetime(2026, 10, 25, 1, 59, 59), CEST, CET),
        (NEW_YORK, datetime(2026, 11, 1, 0, 59, 59), EDT, EST),
    ],
)
def test_per_second_fold_fires_7200_distinct_seconds(
    tz: ZoneInfo, start: datetime, first_pass: timedelta, second_pass: timedelta
) -> None:
    # From the second before the fold to the end of its second pass: two real hours, every second once.
    fold_hour = start.hour + 1
    cron = CronExpression.parse("* * * * * *", tz)
    end = at(tz, second_pass, 2026, start.month, start.day, fold_hour + 1)
    actual = list(takewhile(lambda t: t.timestamp() < end.timestamp(), cron.iter_after(start)))
    assert len(actual) == 7200
    assert len({t.timestamp() for t in actual}) == 7200
    assert [b.timestamp() - a.timestamp() for a, b in pairwise(actual)] == [1] * 7199
    assert actual[0].utcoffset() == first_pass
    assert actual[3599].utcoffset() == first_pass
    assert actual[3600].utcoffset() == second_pass
    assert actual[3600].replace(tzinfo=None) == actual[0].replace(tzinfo=None)
    assert cron.next_after(actual[-1]).timestamp() == end.timestamp()


def test_per_second_with_fixed_hour_fires_in_the_first_pass_only() -> None:
    actual = list(islice(CronExpression.parse("* * 2 * * *", BERLIN).iter_after(datetime(2026, 10, 25, 1)), 3601))
    assert all(t.utcoffset() == CEST for t in actual[:3600])
    assert len({t.timestamp() for t in actual}) == 3601
    same_instants([actual[3600]], [at(BERLIN, CET, 2026, 10, 26, 2)])


def test_after_in_the_second_pass() -> None:
    second_pass = at(BERLIN, CET, 2026, 10, 25, 2, 10)
    # Fixed hour: 02:30 already fired in the first pass (before `after`); next is tomorrow.
    same_instants(
        [CronExpression.parse("0 30 2 * * *", BERLIN).next_after(second_pass)], [at(BERLIN, CET, 2026, 10, 26, 2, 30)]
    )
    # Hour `*`: follows real time, 02:15 of the second pass.
    same_instants(
        [CronExpression.parse("0 */15 * * * *", BERLIN).next_after(second_pass)], [at(BERLIN, CET, 2026, 10, 25, 2, 15)]
    )
    # The same instant given in UTC.
    same_instants(
        [CronExpression.parse("0 */15 * * * *", BERLIN).next_after(second_pass.astimezone(UTC))],
        [at(BERLIN, CET, 2026, 10, 25, 2, 15)],
    )


def test_after_at_the_end_of_the_first_pass() -> None:
    first_pass = at(BERLIN, CEST, 2026, 10, 25, 2, 50)
    same_instants(
        [CronExpression.parse("0 */15 * * * *", BERLIN).next_after(first_pass)], [at(BERLIN, CET, 2026, 10, 25, 2)]
    )
    same_instants(
        [CronExpression.parse("0 0 3 * * *", BERLIN).next_after(first_pass)], [at(BERLIN, CET, 2026, 10, 25, 3)]
    )
    # Hour `*` but no match left in the fold's second pass: the first match after the fold.
    same_instants(
        [CronExpression.parse("0 0 * * * *", BERLIN).next_after(first_pass)], [at(BERLIN, CET, 2026, 10, 25, 2)]
    )
    same_instants(
        [CronExpression.parse("0 55 */3 * * *", BERLIN).next_after(at(BERLIN, CEST, 2026, 10, 25, 1, 58))],
        [at(BERLIN, CET, 2026, 10, 25, 3, 55)],
    )


def test_naive_after_inside_the_fold_means_the_first_pass() -> None:
    actual = fires("0 */15 * * * *", BERLIN, datetime(2026, 10, 25, 2, 50), 2)
    same_instants(actual, [at(BERLIN, CET, 2026, 10, 25, 2), at(BERLIN, CET, 2026, 10, 25, 2, 15)])


def test_matches_ignores_dst_rules() -> None:
    cron = CronExpression.parse("0 30 2 * * *", BERLIN)
    assert cron.matches(at(BERLIN, CEST, 2026, 10, 25, 2, 30))
    assert cron.matches(at(BERLIN, CET, 2026, 10, 25, 2, 30))  # wall clock matches; next_after skips it
    assert not cron.matches(at(BERLIN, CEST, 2026, 3, 29, 3))  # the gap's end fires but does not match


# --- monotonic and unique across every transition ------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * * *",
        "*/7 * * * * *",
        "0 * * * * *",
        "0 */15 * * * *",
        "0 0 * * * *",
        "0 0 */2 * * *",
        "0 30 2 * * *",
        "0 30 1 * * *",
        "* * 2 * * *",
        "* 30 1,2 * * *",
        "0 0,30 1-3 * * *",
        "0 0 3 * * *",
    ],
)
@pytest.mark.parametrize(
    ("tz", "start"),
    [
        (BERLIN, datetime(2026, 3, 28, 23)),
        (BERLIN, datetime(2026, 10, 24, 23)),
        (NEW_YORK, datetime(2026, 3, 7, 23)),
        (NEW_YORK, datetime(2026, 10, 31, 23)),
    ],
)
def test_strictly_increasing_and_unique_across_transitions(expr: str, tz: ZoneInfo, start: datetime) -> None:
    cron = CronExpression.parse(expr, tz)
    end = start.replace(tzinfo=tz).timestamp() + 6 * 3600
    stamps = [t.timestamp() for t in takewhile(lambda t: t.timestamp() < end, cron.iter_after(start))]
    assert stamps
    assert all(a < b for a, b in pairwise(stamps))


# --- prev_before: the same rules, looking back ---------------------------------------------------


def test_prev_before_the_gap_end_fire() -> None:
    cron = CronExpression.parse("0 30 2 * * *", BERLIN)
    same_instants([cron.prev_before(at(BERLIN, CEST, 2026, 3, 29, 4))], [at(BERLIN, CEST, 2026, 3, 29, 3)])


def test_prev_before_in_the_second_pass_is_the_first_pass_fire() -> None:
    cron = CronExpression.parse("0 30 2 * * *", BERLIN)
    found = cron.prev_before(at(BERLIN, CET, 2026, 10, 25, 2, 45))
    same_instants([found], [at(BERLIN, CEST, 2026, 10, 25, 2, 30)])


def test_prev_before_every_15_minutes_walks_back_through_both_passes() -> None:
    cron = CronExpression.parse("0 */15 * * * *", NEW_YORK)
    moment = at(NEW_YORK, EST, 2026, 11, 1, 2, 0)
    back = []
    for _ in range(8):
        moment = cron.prev_before(moment)
        back.append(moment)
    expected = [at(NEW_YORK, EST, 2026, 11, 1, 1, m) for m in (45, 30, 15, 0)]
    expected += [at(NEW_YORK, EDT, 2026, 11, 1, 1, m) for m in (45, 30, 15, 0)]
    same_instants(back, expected)
