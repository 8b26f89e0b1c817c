"""Parameters the web jobs share: text, a reference instant, paths. Bad values are the run's failure."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sp_scheduler import JobContext
from sp_scheduler.errors import UsageError


def text_parameter(ctx: JobContext, key: str, default: str) -> str:
    """A non-empty text parameter."""
    value = ctx.get_parameter(key, default)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"parameter {key!r}: {value!r} is not a non-empty text")
    return value.strip()


def float_parameter(ctx: JobContext, key: str, default: float, *, minimum: float = 0.0) -> float:
    """A number of at least `minimum` (seconds, factors)."""
    try:
        value = ctx.get_parameter(key, default)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise UsageError(f"parameter {key!r}: {value!r} is not a number of at least {minimum:g}")
    return float(value)


def now_parameter(ctx: JobContext) -> datetime | None:
    """`now` as an ISO-8601 instant (naive means UTC), so windowed figures are reproducible; None = the clock."""
    value = ctx.get_parameter("now")
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise UsageError(f"parameter 'now': {value!r} is not an ISO-8601 instant") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def path_parameter(ctx: JobContext, key: str, default: Path) -> Path:
    """A filesystem path; relative paths stay relative to the worker's working directory, like SP_OUTPUT_DIR."""
    value = ctx.get_parameter(key)
    if value is None:
        return default
    if not isinstance(value, str | Path) or not str(value).strip():
        raise UsageError(f"parameter {key!r}: {value!r} is not a path")
    return Path(str(value).strip())
