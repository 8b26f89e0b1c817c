"""The job API: what an extension author writes against.

Pure Python: importing this module never imports celery, redis or psycopg, so job code and its
unit tests stay light. The worker supplies the database pool at run time.
"""

from __future__ import annotations

import logging
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from sp_scheduler.errors import JobNotAvailable
from sp_scheduler.params import Param, convert_text
from sp_scheduler.settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

Trigger = Literal["schedule", "startup", "manual", "backfill"]
TRIGGERS: tuple[Trigger, ...] = ("schedule", "startup", "manual", "backfill")
# Runs that stand for one cron slot: at most one row of these per (job, scheduled_for), whoever writes it.
SLOT_TRIGGERS: tuple[Trigger, ...] = ("schedule", "backfill")

_T = TypeVar("_T")


class _SuccessAttribute:
    """`JobResult.success()` builds a result; `result.success` reads its flag (both spellings are the seeds')."""

    @overload
    def __get__(self, obj: None, owner: type[JobResult]) -> Callable[[], JobResult]: ...

    @overload
    def __get__(self, obj: JobResult, owner: type[JobResult]) -> bool: ...

    def __get__(self, obj: JobResult | None, owner: type[JobResult]) -> Callable[[], JobResult] | bool:
        if obj is None:
            return owner.succeeded
        return obj.ok


@dataclass(frozen=True, slots=True)
class JobResult:
    """The outcome of one `execute()`: immutable, built with the seeds' builder methods.

    >>> JobResult.success().with_stats(42, 0).with_message("Processed 42 items").success
    True
    """

    ok: bool
    message: str | None = None
    items_processed: int = 0
    items_failed: int = 0
    duration_ms: int | None = None

    success: ClassVar[_SuccessAttribute] = _SuccessAttribute()

    @classmethod
    def succeeded(cls) -> JobResult:
        """A successful result with no details (also spelled `JobResult.success()`)."""
        return cls(ok=True)

    @classmethod
    def failure(cls, message: str) -> JobResult:
        """A recoverable failure: recorded as a failed run with this message, never retried."""
        return cls(ok=False, message=message)

    def with_stats(self, processed: int, errors: int) -> JobResult:
        """Items processed and items that failed."""
        if processed < 0 or errors < 0:
            raise ValueError("item counts cannot be negative")
        return replace(self, items_processed=processed, items_failed=errors)

    def with_duration(self, ms: int) -> JobResult:
        """Execution time in milliseconds; the runner fills it in when the job does not."""
        return replace(self, duration_ms=int(ms))

    def with_message(self, message: str) -> JobResult:
        """A human-readable summary shown in history and by `jobs run --wait`."""
        return replace(self, message=message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping using the seeds' field names."""
        return {
            "success": self.ok,
            "message": self.message,
            "items_processed": self.items_processed,
            "items_failed": self.items_failed,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class JobContext:
    """Everything one run of a job gets: its identity, parameters, logger, paths and database."""

    job_name: str
    run_id: str
    trigger: Trigger
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    scheduled_for: datetime | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    services_dir: Path = Path("services")
    output_dir: Path = Path("web/dist")
    settings: Settings | None = None  # the process's settings (None in unit tests that build a context)
    pool: AsyncConnectionPool[Any] | None = None

    @property
    def db_pool(self) -> AsyncConnectionPool[Any]:
        """The worker process's psycopg `AsyncConnectionPool`; raises when this process has none."""
        if self.pool is None:
            raise JobNotAvailable(
                f"job {self.job_name!r} asked for the database, but this process has no database pool "
                "(set SP_DATABASE_URL, or run the job on a worker)"
            )
        return self.pool

    def param(self, name: str) -> Any:
        """The typed value of a declared parameter (its default when not given).

        The worker checks every value against `Job.parameters` before `execute`, so a job reads
        `ctx.param("days")` as an int, a path parameter as a `Path`, an instant as a `datetime`.
        """
        try:
            return self.parameters[name]
        except KeyError:
            raise KeyError(f"job {self.job_name!r} has no parameter {name!r} in this run") from None

    @overload
    def get_parameter(self, key: str) -> Any: ...

    @overload
    def get_parameter(self, key: str, default: _T) -> _T: ...

    def get_parameter(self, key: str, default: Any = None) -> Any:
        """A parameter from YAML `params` or `jobs run -p K=V` (for jobs that declare none).

        CLI values arrive as text; when `default` is a bool, int or float, text is converted to that
        type so `ctx.get_parameter("days", 30)` is an int whichever way the value came in.
        """
        if key not in self.parameters:
            return default
        value = self.parameters[key]
        if value is None:
            return default
        if isinstance(value, str) and default is not None and not isinstance(default, str):
            return convert_text(key, value, type(default))
        return value


class Job(ABC):
    """A unit of background work. Subclasses set the class attributes and implement `execute`.

    `schedule` is the default six-field cron expression (seconds first); the YAML config overrides
    it, and "" means the job only runs when triggered by hand.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    schedule: ClassVar[str] = ""
    run_on_startup: ClassVar[bool] = False
    # The parameters the job accepts, checked before it runs; () means "takes none". None (the
    # default, and what jobs written before declarations existed have) means undeclared: values
    # pass to the job unchecked and it reads them with `ctx.get_parameter`.
    parameters: ClassVar[tuple[Param, ...] | None] = None

    @abstractmethod
    async def execute(self, ctx: JobContext) -> JobResult:
        """Do the work. Return `JobResult.failure(...)` for expected failures; raise for the rest."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True, slots=True)
class Extension:
    """A named group of jobs, published under the `sp_scheduler.extensions` entry-point group."""

    name: str
    job_list: Sequence[Job] = ()

    def jobs(self) -> Sequence[Job]:
        """The jobs this extension provides."""
        return tuple(self.job_list)


@dataclass(slots=True)
class PipelineStats:
    """Runs the independent steps of a pipeline job, catching and logging each step's failure.

    ``await stats.step("sitemap", build_sitemap)`` runs one step; ``stats.result()`` reports how many
    succeeded and failed. One broken step never stops the ones after it.
    """

    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    succeeded: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    async def step(self, name: str, run: Callable[[], Awaitable[object]]) -> bool:
        """Run one step; return whether it succeeded. Exceptions are logged with their traceback."""
        began = time.monotonic()
        try:
            await run()
        except Exception as exc:  # each step is isolated by design; the failure is recorded below
            self.failed += 1
            self.failures.append((name, f"{type(exc).__name__}: {exc}"))
            self.logger.error(
                "pipeline step failed",
                extra={"step": name, "error": str(exc), "traceback": traceback.format_exc()},
            )
            return False
        self.succeeded += 1
        self.logger.info("pipeline step done", extra={"step": name, "ms": int((time.monotonic() - began) * 1000)})
        return True

    def result(self) -> JobResult:
        """Success when every step succeeded; stats are (steps succeeded, steps failed)."""
        total = self.succeeded + self.failed
        message = f"{self.succeeded} of {total} steps succeeded"
        if self.failures:
            message += "; failed: " + "; ".join(f"{name} ({why})" for name, why in self.failures)
        base = JobResult.succeeded() if not self.failed else JobResult.failure(message)
        return (
            base.with_stats(self.succeeded, self.failed)
            .with_message(message)
            .with_duration(int((time.monotonic() - self.started) * 1000))
        )
