"""What each page shows, read from the catalogue and the ledger in one worker-thread call per page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from markupsafe import Markup

from sp_scheduler.catalog import Catalog, effective_enabled
from sp_scheduler.cron import load_zone
from sp_scheduler.cron_describe import describe
from sp_scheduler.documents.jobs import enabled_source, read_job_details, short_source
from sp_scheduler.documents.runs import RunFilter, encode_cursor, read_runs, run_logs
from sp_scheduler.documents.status import health_of_runs
from sp_scheduler.run_status import FAILED_STATUSES, RUN_STATUSES, RunStatus
from sp_scheduler.status import LATENESS_TRIGGERS
from sp_scheduler.store import (
    Override,
    RunRecord,
    get_overrides,
    get_run,
    last_with_status,
    recent_statuses,
)

STRIP_SLOTS = 20  # runs in a job's status strip on the jobs page
NEXT_FIRES = 10
# One fixed fragment per status: a thousand jobs make twenty thousand marks, built by a join, not a
# template loop (the statuses are the ledger's fixed set, so nothing here needs escaping).
_MARKS = {status: f'<i class="mark {status}" data-status="{status}"></i>' for status in RUN_STATUSES}


def strip_markup(statuses: list[RunStatus]) -> Markup:
    """A job's last runs (given newest first) as coloured marks, oldest first."""
    return Markup("".join(_MARKS[status] for status in reversed(statuses) if status in _MARKS))


@dataclass(frozen=True, slots=True)
class JobRow:
    """One line of the jobs page."""

    name: str
    schedule: str
    schedule_text: str | None  # the schedule in words (cron_describe), None when manual-only
    configured: bool
    timezone: str
    next_run: datetime | None
    enabled: bool
    source: str
    last_success: datetime | None
    last_failure: datetime | None
    late: bool
    strip: Markup  # oldest first, as the eye reads a timeline


@dataclass(frozen=True, slots=True)
class LedgerFacts:
    """What the jobs page reads from the ledger, each read on a connection of its own (they run at once)."""

    overrides: dict[str, Override]
    successes: dict[str, RunRecord]
    failures: dict[str, RunRecord]
    marks: dict[str, list[RunStatus]]


def ledger_reads(names: list[str]) -> list[Callable[[psycopg.Connection[Any]], Any]]:
    """The jobs page's four reads, in `LedgerFacts` order: each one index probe per job."""
    return [
        get_overrides,
        lambda conn: last_with_status(conn, ["succeeded"], names, triggers=LATENESS_TRIGGERS),
        lambda conn: last_with_status(conn, FAILED_STATUSES, names, triggers=LATENESS_TRIGGERS),
        lambda conn: recent_statuses(conn, names, STRIP_SLOTS),
    ]


def jobs_rows(catalog: Catalog, facts: LedgerFacts, now: datetime) -> list[JobRow]:
    """Every job with its state, last success and failure, late flag (`status.job_health`) and strip."""
    overrides = facts.overrides
    enabled_overrides = {name: override.enabled for name, override in overrides.items()}
    health = health_of_runs(catalog, enabled_overrides, facts.successes, facts.failures, now)
    rows = []
    for definition, job in zip(catalog, health, strict=True):
        override = overrides.get(definition.name)
        enabled = effective_enabled(catalog, definition, override, now=now)
        fire = job.next_run  # worked out (and cached) by job_health: the same as documents.jobs.next_fire
        rows.append(
            JobRow(
                name=definition.name,
                schedule=definition.schedule,
                schedule_text=describe(definition.schedule) if definition.cron is not None else None,
                configured=definition.configured,
                timezone=definition.timezone,
                next_run=fire.astimezone(load_zone(definition.timezone)) if fire else None,
                enabled=enabled.job,
                source=short_source(enabled_source(definition, enabled, override)),
                last_success=job.last_success,
                last_failure=job.last_failure,
                late=job.late,
                strip=strip_markup(facts.marks.get(definition.name, [])),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class JobPage:
    details: dict[str, Any]
    runs: list[RunRecord]
    next_cursor: str | None


def job_page(catalog: Catalog, name: str, runs: RunFilter, conn: psycopg.Connection[Any], now: datetime) -> JobPage:
    """The job's document (ten fire times) and one page of its runs under the page's filters."""
    details = read_job_details(catalog, name, conn, now, NEXT_FIRES)
    records, following = read_runs(conn, runs)
    return JobPage(details, records, encode_cursor(following) if following else None)


def run_page(conn: psycopg.Connection[Any], run_id: str) -> tuple[RunRecord, dict[str, Any]]:
    """The run and its first page of log lines (the page follows the rest through the API)."""
    return get_run(conn, run_id), run_logs(conn, run_id)
