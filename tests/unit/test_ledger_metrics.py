"""The ledger timestamp collector: leader only, one series per job, and a scrape that survives Postgres."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sp_scheduler.cron import CronExpression
from sp_scheduler.ledger_metrics import LastRuns, ScheduledJob
from sp_scheduler.metrics import LedgerTimestamps

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)  # a Sunday
FRIDAY_RUN = datetime(2026, 12, 4, 9, 0, 4, tzinfo=UTC)
JOBS = {
    "weekday": ScheduledJob(CronExpression.parse("0 0 9 * * MON-FRI"), None),
    "broken": ScheduledJob(CronExpression.parse("0 0 * * * *"), None),
}


def exposition(collector: LedgerTimestamps) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, sample.labels.get("job_name", "")] = sample.value
    return found


def test_the_leader_exports_each_job_once_with_the_slot_due() -> None:
    asked: list[Sequence[str]] = []

    def read(names: Sequence[str]) -> LastRuns:
        asked.append(names)
        return {"weekday": FRIDAY_RUN}, {"broken": NOW}

    found = samples(exposition(LedgerTimestamps(read, lambda: JOBS, lambda: True, lambda: NOW)))
    assert asked == [["broken", "weekday"]]
    friday_slot = datetime(2026, 12, 4, 9, tzinfo=UTC).timestamp()
    assert found == {
        ("sp_scheduler_ledger_read_up", ""): 1,
        ("sp_scheduler_job_last_success_timestamp_seconds", "weekday"): FRIDAY_RUN.timestamp(),
        ("sp_scheduler_job_last_failure_timestamp_seconds", "broken"): NOW.timestamp(),
        ("sp_scheduler_job_success_due_timestamp_seconds", "weekday"): friday_slot,
        ("sp_scheduler_job_success_due_timestamp_seconds", "broken"): datetime(2026, 12, 6, 10, tzinfo=UTC).timestamp(),
    }


def test_a_standby_exports_nothing_and_does_not_query() -> None:
    def read(names: Sequence[str]) -> LastRuns:
        raise AssertionError("a standby must not query the ledger")

    assert exposition(LedgerTimestamps(read, lambda: JOBS, lambda: False, lambda: NOW)) == ""


def test_an_unreachable_ledger_still_answers_the_scrape() -> None:
    def read(names: Sequence[str]) -> LastRuns:
        raise OSError("connection refused")

    assert samples(exposition(LedgerTimestamps(read, lambda: JOBS, lambda: True, lambda: NOW))) == {
        ("sp_scheduler_ledger_read_up", ""): 0
    }
