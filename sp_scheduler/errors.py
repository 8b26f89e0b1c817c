"""One exception tree for sp-scheduler; the CLI maps each class to a named exit code."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes the CLI uses, named so scripts can rely on them."""

    OK = 0
    FAILURE = 1  # a job ran and failed, or a generic expected error
    INVALID = 2  # bad configuration, bad arguments, bad cron expression
    NOT_FOUND = 3  # unknown job or run
    REFUSED = 4  # the request is valid but refused (job disabled, schema too old)
    UNAVAILABLE = 69  # a service (Postgres, Redis) cannot be reached (sysexits EX_UNAVAILABLE)
    TIMEOUT = 75  # waited for a result that did not come in time (sysexits EX_TEMPFAIL)


class SchedulerError(Exception):
    """Base of every error sp-scheduler raises on purpose; `str()` is the one-line message."""

    exit_code: ExitCode = ExitCode.FAILURE


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: where it is and what is wrong."""

    file: str
    job: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: job {self.job!r}" if self.job else self.file
        return f"{where}: {self.reason}"


class ConfigError(SchedulerError):
    """The configuration is invalid; carries every problem found, not just the first."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid configuration"
        more = len(self.problems) - 1
        super().__init__(first if more <= 0 else f"{first} (and {more} more problem(s))")


class CronError(SchedulerError, ValueError):
    """The cron engine's errors; a ValueError too, so callers that predate the tree still catch them."""

    exit_code = ExitCode.INVALID


class InvalidCronExpression(CronError):
    """A cron expression that cannot be parsed or never fires."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(f"invalid cron expression {expression!r}: {reason}")


class NoFireTime(CronError):
    """A valid expression with no fire time in the range searched (year 1 to year 9999)."""

    def __init__(self, expression: str, limit: str) -> None:
        self.expression = expression
        super().__init__(f"cron expression {expression!r} has no fire time before {limit}")


class InvalidTimeZone(SchedulerError, ValueError):
    """A time zone name that the system's tz database does not know."""

    exit_code = ExitCode.INVALID

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')")


class UsageError(SchedulerError):
    """An argument the user gave is malformed."""

    exit_code = ExitCode.INVALID


class ExtensionError(SchedulerError):
    """An extension could not be loaded, or it registers jobs inconsistently."""

    exit_code = ExitCode.INVALID


class UnknownJob(SchedulerError):
    """A job name that no extension registers and no config entry names."""

    exit_code = ExitCode.NOT_FOUND

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        hint = ""
        if known:
            close = difflib.get_close_matches(name, known, n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        super().__init__(f"unknown job {name!r}{hint}; `sp-scheduler jobs list` shows the known jobs")


class UnknownRun(SchedulerError):
    """A run id that the ledger does not hold."""

    exit_code = ExitCode.NOT_FOUND


class JobDisabled(SchedulerError):
    """A manual run of a disabled job was asked for without --force."""

    exit_code = ExitCode.REFUSED


class ServiceUnavailable(SchedulerError):
    """Postgres or Redis cannot be reached; the message names which and where."""

    exit_code = ExitCode.UNAVAILABLE


class DatabaseUnavailable(ServiceUnavailable):
    """Postgres cannot be reached."""


class BrokerUnavailable(ServiceUnavailable):
    """Redis (the broker and schedule store) cannot be reached."""


class SchemaOutOfDate(SchedulerError):
    """The database schema is older than this code; `sp-scheduler db migrate` fixes it."""

    exit_code = ExitCode.REFUSED


class WaitTimedOut(SchedulerError):
    """`jobs run --wait` gave up before the run finished (the run itself goes on)."""

    exit_code = ExitCode.TIMEOUT


class JobNotAvailable(SchedulerError):
    """A job asked its context for a resource this process does not provide (such as the database)."""
