"""Which past slots `jobs backfill` covers, and what it reports: pure, so the rules are tested with a
given `now` and no services.

A range is [start, end], both ends included, in the past. Its slots are the job's cron fire times in
it, by the schedule in force now and in the job's time zone. A range with more slots than the
operator's `--max` is refused before anything is written; counting stops at `COUNT_LIMIT`, so a typo
such as a year of a per-second job is refused at once rather than after minutes of counting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sp_scheduler.errors import UsageError

if TYPE_CHECKING:
    from sp_scheduler.cron import CronExpression
    from sp_scheduler.store import RunRecord

DEFAULT_MAX_SLOTS = 1_000
COUNT_LIMIT = 100_000  # the most slots counted (and the highest --max): beyond, the count reads "more than"


class TooManySlots(UsageError):
    """The range holds more slots than the operator allowed; nothing was enqueued."""

    def __init__(self, count: int, limit: int, counted_all: bool) -> None:
        self.count = count
        amount = f"{count:,}" if counted_all else f"more than {COUNT_LIMIT:,}"
        super().__init__(
            f"the range holds {amount} slots, more than --max {limit:,}; nothing enqueued"
            " (narrow --from/--to, or raise --max)"
        )


def check_range(start: datetime, end: datetime, now: datetime) -> None:
    """Refuse a range that ends after `now` or starts after it ends (one line, exit 2)."""
    if start > end:
        raise UsageError(f"--from {_iso(start)} is after --to {_iso(end)}")
    if end > now:
        raise UsageError(
            f"--to {_iso(end)} is in the future (now {_iso(now)}): backfill runs past slots only, beat runs the rest"
        )


def retention_note(start: datetime, runs_kept: timedelta, now: datetime) -> str | None:
    """A warning when the range starts before the runs retention: a backfill run lives in its slot's
    weekly partition (migration 0011), so the next retention pass may drop it with that week."""
    cutoff = now - runs_kept
    if start >= cutoff:
        return None
    return (
        f"note: slots before {_iso(cutoff.replace(microsecond=0))} are older than the runs retention"
        f" ({runs_kept.days} days): their runs are kept as their slots' week is, so a retention pass may"
        " remove them soon (all but the job's newest min_runs)"
    )


def range_slots(cron: CronExpression, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The cron's fire times in [start, end], in UTC, oldest first; `TooManySlots` past `limit`."""
    slots: list[datetime] = []
    counted_all = True
    # next_after is strictly after, to the whole second: one second back finds a slot at `start` itself.
    for fire in cron.iter_after(start - timedelta(seconds=1)):
        if fire > end:
            break
        if fire < start:  # `start` had a fraction of a second past a fire time
            continue
        slots.append(fire.astimezone(UTC))
        if len(slots) > COUNT_LIMIT:  # more than any --max allows: stop counting
            counted_all = False
            break
    if len(slots) > limit:
        raise TooManySlots(len(slots), limit, counted_all)
    return slots


@dataclass(frozen=True, slots=True)
class SlotReport:
    """One slot of a backfill: queued (or, in a dry run, to be queued), or skipped because a run holds it."""

    slot: datetime
    run_id: str
    holder: RunRecord | None = None  # the scheduled or backfill row that holds the slot already

    @property
    def skipped(self) -> bool:
        return self.holder is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scheduled_for": _iso(self.slot), "run_id": self.run_id}
        if self.holder is not None:
            out.update(run_id=self.holder.id, trigger=self.holder.trigger, status=self.holder.status)
        return out


def slot_reports(
    slots: Sequence[datetime], queued: Mapping[datetime, str], holders: Mapping[datetime, RunRecord]
) -> list[SlotReport]:
    """Each slot as queued (its run id in `queued`) or skipped (its row in `holders`), oldest first."""
    reports = []
    for slot in slots:
        holder = holders.get(slot)
        if slot in queued:
            reports.append(SlotReport(slot, queued[slot]))
        elif holder is not None:
            reports.append(SlotReport(slot, holder.id, holder))
    return reports


def render_text(job: str, reports: Sequence[SlotReport], *, dry_run: bool, zone: tzinfo) -> list[str]:
    """The lines `jobs backfill` prints: one per slot (in the job's zone), then the counts."""
    verb = "would queue" if dry_run else "queued"
    lines = []
    for report in reports:
        holder = report.holder
        slot = _iso(report.slot.astimezone(zone))
        if holder is None:
            lines.append(f"{verb:<11}  {slot}  run {report.run_id}")
        else:
            lines.append(f"{'skipped':<11}  {slot}  already {holder.status} ({holder.trigger} run {holder.id})")
    queued = sum(1 for r in reports if not r.skipped)
    skipped = len(reports) - queued
    summary = f"{job}: {verb} {queued}, skipped {skipped} already in the ledger (times in {zone})"
    lines.append(f"{summary}; dry run, nothing enqueued" if dry_run else summary)
    return lines


def render_json(job: str, start: datetime, end: datetime, reports: Sequence[SlotReport], *, dry_run: bool) -> Any:
    """`--json`: the range, and the slots queued and skipped (times in UTC, as `jobs history --json`)."""
    return {
        "job": job,
        "from": _iso(start),
        "to": _iso(end),
        "dry_run": dry_run,
        "queued": [r.to_dict() for r in reports if not r.skipped],
        "skipped": [r.to_dict() for r in reports if r.skipped],
    }


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds") if at.microsecond == 0 else at.isoformat()
