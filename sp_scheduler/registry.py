"""Discover extensions and resolve `(extension, job)` pairs from the config to Job instances.

Extensions are published under the `sp_scheduler.extensions` entry-point group; config may also
name `module:attribute` import paths for code that is not packaged. Nothing here is global: each
call builds a fresh, immutable Registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType

from sp_scheduler.errors import ExtensionError, Problem
from sp_scheduler.jobs import Job

ENTRY_POINT_GROUP = "sp_scheduler.extensions"


@dataclass(frozen=True, slots=True)
class RegisteredJob:
    """A job instance and the extension that provides it."""

    extension: str
    job: Job


@dataclass(frozen=True, slots=True)
class Registry:
    """Every job every loaded extension provides, by extension and job name."""

    jobs: Mapping[tuple[str, str], RegisteredJob]
    extensions: tuple[str, ...]

    def resolve(self, extension: str, job: str) -> Job | None:
        """The job `job` of extension `extension`, or None."""
        found = self.jobs.get((extension, job))
        return found.job if found else None

    def by_name(self, job: str) -> list[RegisteredJob]:
        """Every registered job called `job` (one, unless the registry was built with problems)."""
        return [entry for (_, name), entry in self.jobs.items() if name == job]

    def __iter__(self) -> Iterator[RegisteredJob]:
        return iter(self.jobs.values())


def _import_object(path: str) -> object:
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    target: object = module
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _as_jobs(source: str, extension: object, problems: list[Problem]) -> tuple[str, list[Job]] | None:
    name = getattr(extension, "name", None)
    jobs_method = getattr(extension, "jobs", None)
    if not isinstance(name, str) or not name or not callable(jobs_method):
        problems.append(Problem(source, None, "an extension needs a `name` string and a `jobs()` method"))
        return None
    jobs: list[Job] = []
    for item in jobs_method():
        job = item() if isinstance(item, type) and issubclass(item, Job) else item
        if not isinstance(job, Job):
            problems.append(Problem(source, None, f"extension {name!r}: {item!r} is not a Job"))
            continue
        if not isinstance(getattr(job, "name", None), str) or not job.name:
            problems.append(Problem(source, None, f"extension {name!r}: {type(job).__name__} has no `name`"))
            continue
        jobs.append(job)
    return name, jobs


def discover(
    import_paths: Sequence[str] = (),
    *,
    group: str = ENTRY_POINT_GROUP,
    points: Iterable[EntryPoint] | None = None,
) -> tuple[Registry, list[Problem]]:
    """Load every extension; return the registry of what loaded and the problems of what did not."""
    problems: list[Problem] = []
    loaded: list[tuple[str, object]] = []
    for point in points if points is not None else entry_points(group=group):
        try:
            loaded.append((f"entry point {point.name} = {point.value}", point.load()))
        except Exception as exc:  # any import-time error of third-party code becomes a reported problem
            problems.append(Problem(f"entry point {point.name} = {point.value}", None, f"cannot load: {exc!r}"))
    for path in import_paths:
        try:
            loaded.append((f"extension {path}", _import_object(path)))
        except Exception as exc:  # likewise for import paths named in config
            problems.append(Problem(f"extension {path}", None, f"cannot import: {exc!r}"))

    jobs: dict[tuple[str, str], RegisteredJob] = {}
    owners: dict[str, str] = {}
    extensions: list[str] = []
    for source, extension in loaded:
        resolved = _as_jobs(source, extension, problems)
        if resolved is None:
            continue
        ext_name, ext_jobs = resolved
        if ext_name in extensions:
            problems.append(Problem(source, None, f"extension name {ext_name!r} is registered twice"))
            continue
        extensions.append(ext_name)
        for job in ext_jobs:
            if job.name in owners:
                problems.append(
                    Problem(
                        source,
                        job.name,
                        f"job name is provided by both extension {owners[job.name]!r} and {ext_name!r}",
                    )
                )
                continue
            owners[job.name] = ext_name
            jobs[(ext_name, job.name)] = RegisteredJob(ext_name, job)
    return Registry(MappingProxyType(jobs), tuple(extensions)), problems


def load_registry(import_paths: Sequence[str] = ()) -> Registry:
    """Discover extensions; raise ExtensionError listing every problem."""
    registry, problems = discover(import_paths)
    if problems:
        raise ExtensionError("; ".join(str(problem) for problem in problems))
    return registry
