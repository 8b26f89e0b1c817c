"""Every slot of a per-second job accounted for: from the ledger and from the job's own journal.

The ledger holds at most one row per slot (a unique index), so "ran twice" is checked where the
runs leave their own trace: the `slot_journal` job appends its slot to a file on every execution.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

FINAL = {"succeeded", "failed", "timeout", "lost", "skipped", "missed"}


def journal_entry(journal: Path, name: str = "journal") -> dict[str, object]:
    """A config entry running `slot_journal` every second, side by side, writing to `journal`."""
    return {
        "name": name,
        "extension": "testing",
        "job": "slot_journal",
        "schedule": "* * * * * *",
        "enabled": True,
        "overlap": "allow",
        "params": {"journal": str(journal)},
    }


@dataclass(frozen=True)
class SlotAudit:
    """What became of each second of [start, end]."""

    rows: dict[datetime, tuple[str, str | None]]  # slot -> (status, message)
    executions: Counter[datetime]  # slot -> times the job ran it (journal)
    slots: list[datetime]

    @property
    def absent(self) -> list[datetime]:
        """Slots with no ledger row at all."""
        return [slot for slot in self.slots if slot not in self.rows]

    @property
    def unfinished(self) -> list[datetime]:
        return [slot for slot in self.slots if slot in self.rows and self.rows[slot][0] not in FINAL]

    @property
    def duplicates(self) -> list[datetime]:
        """Slots the job executed more than once."""
        return sorted(slot for slot, times in self.executions.items() if times > 1)

    @property
    def missed_without_reason(self) -> list[datetime]:
        return [slot for slot, (status, message) in self.rows.items() if status == "missed" and not message]

    @property
    def ran_unrecorded(self) -> list[datetime]:
        """Slots the job executed that the ledger does not record as succeeded."""
        return sorted(slot for slot in self.executions if self.rows.get(slot, ("", None))[0] != "succeeded")

    def count(self, status: str) -> int:
        return sum(1 for slot in self.slots if self.rows.get(slot, ("", None))[0] == status)

    @property
    def complete(self) -> bool:
        """Every slot has a final row, no slot ran twice, every run is recorded, every miss has a reason."""
        return not (self.absent or self.unfinished or self.duplicates or self.missed_without_reason) and not (
            self.ran_unrecorded
        )

    def summary(self) -> str:
        return (
            f"{len(self.slots)} slots: {self.count('succeeded')} ran, {self.count('missed')} missed, "
            f"absent {self.absent}, unfinished {self.unfinished}, duplicates {self.duplicates}, "
            f"missed without reason {self.missed_without_reason}, ran unrecorded {self.ran_unrecorded}"
        )


def read_journal(path: Path) -> Counter[datetime]:
    """Executions per slot, as the `slot_journal` job wrote them."""
    if not path.exists():
        return Counter()
    slots = (line.split()[0] for line in path.read_text().splitlines() if line.strip())
    return Counter(datetime.fromisoformat(slot) for slot in slots if slot != "manual")


def first_run_after(path: Path, instant: float) -> float | None:
    """The wall-clock time of the first execution (of any slot) after `instant`, from the journal."""
    if not path.exists():
        return None
    times = [float(line.split()[2]) for line in path.read_text().splitlines() if len(line.split()) == 3]
    later = [at for at in times if at > instant]
    return min(later) if later else None


def audit_slots(database_url: str, job: str, journal: Path, start: datetime, end: datetime) -> SlotAudit:
    """The ledger rows and journal entries of `job`'s per-second slots from `start` to `end` (whole seconds)."""
    first = start.replace(microsecond=0) + (timedelta(seconds=1) if start.microsecond else timedelta(0))
    slots = [first + timedelta(seconds=n) for n in range(int((end - first).total_seconds()) + 1)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        fetched = conn.execute(
            "SELECT scheduled_for, status, message FROM sp_job_runs"
            " WHERE job_name = %s AND trigger = 'schedule' AND scheduled_for BETWEEN %s AND %s",
            (job, first, end),
        ).fetchall()
    rows = {slot.astimezone(UTC): (status, message) for slot, status, message in fetched}
    executions = Counter({slot: n for slot, n in read_journal(journal).items() if first <= slot <= end})
    return SlotAudit(rows, executions, slots)
