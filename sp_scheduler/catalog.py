"""The effective job catalogue: registered Job classes joined with their YAML entries.

Every process (CLI, beat, worker) asks the same question: "which jobs exist, how are they scheduled
and with what options?". This module answers it once, from a config and a registry, purely.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sp_scheduler.config import DEFAULT_QUEUE, JobConfig, Overlap, SchedulerConfig, read_config
from sp_scheduler.cron import CronExpression, parse_schedule
from sp_scheduler.errors import ConfigError, InvalidCronExpression, Problem, UnknownJob
from sp_scheduler.jobs import Job
from sp_scheduler.params import ParamError, check_params
from sp_scheduler.registry import Registry, discover
from sp_scheduler.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """One job as every process sees it: its code, its YAML entry (if any) and derived options."""

    name: str
    extension: str
    job: Job
    entry: JobConfig | None = None
    cron: CronExpression | None = None

    @property
    def configured(self) -> bool:
        """Listed in config.yaml (or added by the profile)."""
        return self.entry is not None

    @property
    def schedule(self) -> str:
        """The schedule in force: the YAML one; "" (manual only) when the job is not configured."""
        return self.entry.schedule if self.entry else ""

    @property
    def code_schedule(self) -> str:
        """The default schedule the job's code declares."""
        return self.job.schedule

    @property
    def yaml_enabled(self) -> bool:
        """`enabled:` from the YAML; unconfigured jobs are not scheduled."""
        return self.entry.enabled if self.entry else False

    @property
    def timezone(self) -> str:
        return self.entry.timezone if self.entry else "UTC"

    @property
    def params(self) -> Mapping[str, Any]:
        return self.entry.params if self.entry else {}

    @property
    def timeout(self) -> float | None:
        return self.entry.timeout if self.entry else None

    @property
    def overlap(self) -> Overlap:
        return self.entry.overlap if self.entry else "skip"

    @property
    def misfire_grace(self) -> float | None:
        """Seconds a missed slot may still run late; None follows the job's period (see slots.py)."""
        return self.entry.misfire_grace if self.entry else None

    @property
    def queue(self) -> str:
        return self.entry.queue if self.entry else DEFAULT_QUEUE

    @property
    def run_on_startup(self) -> bool:
        """Both layers must agree (seeds): the code opts in and the YAML enables the job."""
        return bool(self.job.run_on_startup) and self.yaml_enabled


class OverrideLike(Protocol):
    """An operator's enable/disable (store.Override satisfies it); catalog.py must not import the store."""

    @property
    def enabled(self) -> bool: ...

    @property
    def expires_at(self) -> datetime | None: ...


EnabledSource = Literal["override", "config", "not configured"]


@dataclass(frozen=True, slots=True)
class EnabledState:
    """Whether a job is enabled and why: the one rule every process applies.

    `job` is the job's own state (an unexpired override wins over the YAML, profile included; an
    unconfigured job is off); `value` also needs the scheduler-wide switch, and is what schedules it.
    """

    value: bool
    job: bool
    source: EnabledSource
    scheduler: bool


def effective_enabled(
    catalog: Catalog,
    definition: JobDefinition,
    override: bool | OverrideLike | None = None,
    *,
    now: datetime | None = None,
) -> EnabledState:
    """The enabled state of `definition`: scheduler switch, then override (unless expired by `now`), then YAML.

    `override` is a bare flag (already filtered for expiry by the caller) or a record with `expires_at`;
    with `now`, a record whose expiry has passed no longer counts.
    """
    flag: bool | None
    source: EnabledSource
    if override is None or isinstance(override, bool):
        flag = override
    elif now is not None and override.expires_at is not None and override.expires_at <= now:
        flag = None
    else:
        flag = override.enabled
    if flag is not None:
        job, source = flag, "override"
    elif definition.entry is not None:
        job, source = definition.entry.enabled, "config"
    else:
        job, source = False, "not configured"
    scheduler = catalog.scheduler_enabled
    return EnabledState(value=scheduler and job, job=job, source=source, scheduler=scheduler)


@dataclass(frozen=True, slots=True)
class Catalog:
    """All job definitions, by name, plus whether the scheduler as a whole is enabled."""

    scheduler_enabled: bool
    definitions: tuple[JobDefinition, ...]
    config: SchedulerConfig | None = None
    registry: Registry | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[JobDefinition]:
        return iter(self.definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    def names(self) -> list[str]:
        return [definition.name for definition in self.definitions]

    def find(self, name: str) -> JobDefinition | None:
        return next((d for d in self.definitions if d.name == name), None)

    def get(self, name: str) -> JobDefinition:
        """The definition named `name`, or UnknownJob with a did-you-mean hint."""
        found = self.find(name)
        if found is None:
            raise UnknownJob(name, self.names())
        return found


def build_catalog(config: SchedulerConfig, registry: Registry) -> tuple[Catalog, list[Problem]]:
    """Join config and registry; report YAML entries naming unknown extensions or jobs."""
    problems: list[Problem] = []
    definitions: list[JobDefinition] = []
    referenced: set[tuple[str, str]] = set()
    for entry in config.jobs:
        job = registry.resolve(entry.extension, entry.job)
        if job is None:
            if entry.extension not in registry.extensions:
                known = ", ".join(registry.extensions) or "none"
                reason = f"unknown extension {entry.extension!r} (loaded extensions: {known})"
            else:
                names = sorted(name for ext, name in registry.jobs if ext == entry.extension)
                reason = f"extension {entry.extension!r} has no job {entry.job!r} (it has: {', '.join(names)})"
            problems.append(Problem(entry.source, entry.name, reason))
            continue
        referenced.add((entry.extension, entry.job))
        try:
            cron = parse_schedule(entry.schedule, entry.timezone)
        except InvalidCronExpression as exc:  # already reported by config validation
            problems.append(Problem(entry.source, entry.name, f"schedule: {exc.reason}"))
            continue
        definitions.append(JobDefinition(entry.name, entry.extension, job, entry, cron))
    taken = {definition.name for definition in definitions}
    for (extension, name), registered in registry.jobs.items():
        if (extension, name) in referenced or name in taken:
            continue
        definitions.append(JobDefinition(name, extension, registered.job))
    catalog = Catalog(config.enabled, tuple(definitions), config, registry)
    return catalog, problems


def check_job_params(catalog: Catalog, roots: Mapping[str, Any] | None) -> tuple[list[Problem], list[Problem]]:
    """Each configured job's `params` against what its code declares: (problems, warnings).

    A job that declares no parameters but is given some is warned about once: its values pass unchecked.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for definition in catalog:
        entry = definition.entry
        if entry is None or not entry.params:
            continue
        declared = definition.job.parameters
        if declared is None:
            warnings.append(
                Problem(
                    entry.source,
                    entry.name,
                    f"job {definition.job.name!r} declares no parameters: params "
                    f"{', '.join(entry.params)} are passed to it unchecked",
                )
            )
            continue
        try:
            check_params(definition.name, declared, entry.params, roots)
        except ParamError as exc:
            problems.append(Problem(entry.source, entry.name, exc.reason))
    return problems, warnings


def check_catalog(settings: Settings) -> tuple[Catalog, list[Problem], list[Problem]]:
    """Read config, discover extensions and join them: (catalog, problems, warnings)."""
    report = read_config(settings.config_path, settings.profile_path)
    registry, registry_problems = discover(report.config.extensions)
    catalog, catalog_problems = build_catalog(report.config, registry)
    param_problems, param_warnings = check_job_params(catalog, settings.param_roots())
    problems = [*report.problems, *registry_problems, *catalog_problems, *param_problems]
    return catalog, problems, [*report.warnings, *param_warnings]


def load_catalog(settings: Settings) -> Catalog:
    """The catalogue, or ConfigError listing every problem in config and extensions."""
    catalog, problems, _ = check_catalog(settings)
    if problems:
        raise ConfigError(problems)
    return catalog


class CatalogWatch:
    """The catalogue, reloaded when config or profile files change; a broken reload keeps the last good one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stamp: tuple[tuple[int, int], ...] | None = None
        self._catalog: Catalog | None = None
        self._loads = 0

    def _current_stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in (self.settings.config_path, self.settings.profile_path):
            try:
                info = path.stat() if path is not None else None
            except OSError:
                info = None
            stamps.append((info.st_mtime_ns, info.st_size) if info else (-1, -1))
        return tuple(stamps)

    @property
    def reloaded(self) -> int:
        """How many times a new catalogue was loaded (callers compare it to notice changes)."""
        return self._loads

    def catalog(self) -> Catalog:
        stamp = self._current_stamp()
        if self._catalog is None or stamp != self._stamp:
            try:
                self._catalog = load_catalog(self.settings)
                self._loads += 1
            except ConfigError as exc:
                if self._catalog is None:
                    raise
                for problem in exc.problems:
                    log.error("config problem", extra={"problem": str(problem)})
                log.error("config reload failed; keeping the last good config", extra={"problems": len(exc.problems)})
            self._stamp = stamp
        return self._catalog
