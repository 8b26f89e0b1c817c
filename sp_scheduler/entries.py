"""What beat's schedule should hold, and how that differs from what Redis holds: pure decisions.

`desired_entries` and `startup_jobs` are the two places that read a job's effective enabled state
(scheduler switch + YAML + override); `diff_entries` compares entries without touching Redis, and
sync.py carries the difference out.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sp_scheduler.catalog import Catalog, JobDefinition, effective_enabled
from sp_scheduler.cron import CronExpression
from sp_scheduler.messages import TASK_NAME
from sp_scheduler.schedule import TYPE_TAG as SCHEDULE_TYPE_TAG
from sp_scheduler.schedule import ScheduleEncoder

DEFINITION_CACHE = 65_536  # entry definitions kept (a spec is a few hundred bytes of text)


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """The desired RedBeat entry of one scheduled job."""

    job_name: str
    expression: str
    timezone: str
    queue: str
    timeout: float | None
    misfire_grace: float | None  # None: follow the period
    cron: CronExpression | None = field(default=None, compare=False, repr=False)  # parsed, when known

    def parsed(self) -> CronExpression:
        """The parsed expression: the catalogue's, or parsed now (the parse cache holds 4,096)."""
        return self.cron if self.cron is not None else CronExpression.parse(self.expression, self.timezone)

    def definition(self) -> str:
        """The entry's `definition` field, deterministic so changes are detected by comparison.

        Memoised per spec: a sync compares every entry, and at 10,000 entries building each one anew
        was most of the periodic re-sync's cost.
        """
        return _definition(self)


@functools.lru_cache(maxsize=DEFINITION_CACHE)
def _definition(spec: EntrySpec) -> str:
    # The schedule as ScheduleEncoder writes a CronSchedule (CronSchedule.to_json), without building
    # one: the same text, as the unit tests check.
    schedule = {"__type__": SCHEDULE_TYPE_TAG, "expression": spec.expression, "timezone": spec.timezone}
    body = {
        "name": spec.job_name,
        "task": TASK_NAME,
        "args": [],
        "kwargs": {"job_name": spec.job_name, "timeout": spec.timeout, "misfire_grace": spec.misfire_grace},
        "options": {"queue": spec.queue},
        "schedule": schedule,
        "enabled": True,
    }
    return json.dumps(body, sort_keys=True)


def desired_entries(catalog: Catalog, overrides: Mapping[str, bool]) -> dict[str, EntrySpec]:
    """Every job that should be on the live schedule: has a cron, is enabled (override wins)."""
    return {
        d.name: EntrySpec(d.name, d.schedule, d.timezone, d.queue, d.timeout, d.misfire_grace, d.cron)
        for d in catalog
        if d.cron is not None and effective_enabled(catalog, d, overrides.get(d.name)).value
    }


def startup_jobs(catalog: Catalog, overrides: Mapping[str, bool]) -> dict[str, JobDefinition]:
    """Jobs whose code says run_on_startup and whose YAML (and override) enables them."""
    return {
        d.name: d for d in catalog if d.run_on_startup and effective_enabled(catalog, d, overrides.get(d.name)).value
    }


@dataclass(frozen=True, slots=True)
class EntryDiff:
    """What a sync does: entries to add (new to Redis), to rewrite (definition changed), to remove."""

    adds: dict[str, EntrySpec] = field(default_factory=dict)
    updates: dict[str, EntrySpec] = field(default_factory=dict)
    removes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.adds or self.updates or self.removes)


def diff_entries(existing: Mapping[str, str | None], desired: Mapping[str, EntrySpec]) -> EntryDiff:
    """Compare Redis's entries (job name -> stored definition, None if its hash is gone) with the desired ones.

    An entry whose definition is unchanged is left alone, so its next due time and last slot survive.
    """
    adds = {name: spec for name, spec in desired.items() if name not in existing}
    updates = {name: spec for name, spec in desired.items() if name in existing and existing[name] != spec.definition()}
    removes = tuple(name for name in existing if name not in desired)
    return EntryDiff(adds, updates, removes)


@dataclass(slots=True)
class SentSlots:
    """What this beat published, kept in memory: a Redis that comes back empty (restarted without
    persistence) loses its entries, and without this the outage's slots would leave no row."""

    last: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # entry key -> (definition, last slot)
    broker_gap: set[str] = field(default_factory=set)  # jobs whose next missed slots fell in a broker outage


@functools.lru_cache(maxsize=1024)
def encode_meta(last_slot: datetime) -> str:
    """An entry's `meta` field: the last slot it fired (RedBeat's `last_run_at`); memoised, since the
    entries of one burst share their slot."""
    return json.dumps({"last_run_at": last_slot}, cls=ScheduleEncoder)
