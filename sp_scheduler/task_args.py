"""The run task's arguments, checked: a message with wrong or missing ones still ends as a row.

Every sender writes `RunRequest.task_args()`: (job name, trigger, scheduled_for, run id, params). A
message that carries something else (a hand-made message, a sender of another version) used to fail
inside Celery's call with a TypeError, logged and dropped with no row. Here each argument is checked,
and what is usable (a job and slot, or a run id) is kept, so the worker can record the run `failed`
with the reason; a message that names nothing usable has no row to go to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from sp_scheduler import store
from sp_scheduler.errors import UnknownRun
from sp_scheduler.jobs import TRIGGERS, Trigger
from sp_scheduler.messages import RunRequest

ARGUMENT_NAMES = ("job_name", "trigger", "scheduled_for", "run_id", "params")
_REQUIRED = ("job_name", "trigger")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class UsableParts:
    """What an unusable message still names: enough for a row when it has a job and slot, or a run id."""

    job_name: str | None = None
    trigger: Trigger | None = None
    scheduled_for: datetime | None = None
    run_id: str | None = None


class UnusableArguments(ValueError):
    """The arguments cannot make a run; `reason` says which and why, `parts` what is still usable."""

    def __init__(self, reason: str, parts: UsableParts) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts = parts


def request_from_task(args: Sequence[Any], kwargs: Mapping[str, Any]) -> RunRequest:
    """The run request a message's (args, kwargs) describe; `UnusableArguments` naming every problem."""
    problems: list[str] = []
    values: dict[str, object] = {}
    if len(args) > len(ARGUMENT_NAMES):
        problems.append(f"{len(args)} positional arguments, at most {len(ARGUMENT_NAMES)}")
    values.update(zip(ARGUMENT_NAMES, args, strict=False))
    for name, value in kwargs.items():
        if name not in ARGUMENT_NAMES:
            problems.append(f"unexpected argument {name!r}")
        elif name in values:
            problems.append(f"argument {name!r} given twice")
        else:
            values[name] = value
    problems += [f"missing argument {name!r}" for name in _REQUIRED if name not in values]

    job_name = _checked(values, "job_name", _job_name, problems)
    trigger = _checked(values, "trigger", _trigger, problems)
    slot = _checked(values, "scheduled_for", _slot, problems)
    run_id = _checked(values, "run_id", _run_id, problems)
    params = _checked(values, "params", _params, problems)
    if trigger == "schedule" and values.get("scheduled_for") is None:
        problems.append("a scheduled run needs its slot (scheduled_for)")
    if trigger == "backfill" and values.get("scheduled_for") is None:
        problems.append("a backfill run needs its slot (scheduled_for)")
    if trigger in ("manual", "startup", "backfill") and values.get("run_id") is None:
        problems.append(f"a {trigger} run needs its run id")
    parts = UsableParts(job_name, trigger, slot if trigger in (None, "schedule") else None, run_id)
    if problems or job_name is None or trigger is None:
        raise UnusableArguments("; ".join(problems), parts)
    return RunRequest(job_name, trigger, slot, run_id, params or {})


def _checked(values: Mapping[str, object], name: str, check: Callable[[object], _T], problems: list[str]) -> _T | None:
    """`check(value)` for a present argument; a problem (and None) when it raises ValueError."""
    if name not in values:
        return None
    try:
        return check(values[name])
    except ValueError as exc:
        problems.append(f"argument {name!r}: {exc}")
        return None


def _job_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValueError(f"a job name must be non-empty text, not {value!r:.80}")
    return value


def _trigger(value: object) -> Trigger:
    """The message's trigger as the Trigger literal it names; ValueError for anything else."""
    for trigger in TRIGGERS:
        if value == trigger:
            return trigger
    raise ValueError(f"must be one of {', '.join(TRIGGERS)}, not {value!r:.80}")


def _slot(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"a slot must be an ISO 8601 instant, not {value!r:.80}")
    try:
        slot = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 instant: {value!r:.80}") from None
    if slot.tzinfo is None:
        raise ValueError(f"a slot needs its UTC offset: {value!r:.80}")
    return slot


def _run_id(value: object) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"not a run id: {value!r:.80}") from None


def _params(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"params must be an object with text keys, not {value!r:.80}")
    return value


def record_unusable(conn: psycopg.Connection[Any], bad: UnusableArguments, worker: str) -> bool:
    """Give the run an unusable message names its row, `failed` with the reason; False when it names
    no run (neither a job and slot nor a run id). A run or slot that has a row already keeps it."""
    parts = bad.parts
    message = f"refused: the run message's arguments are unusable: {bad.reason}"
    if parts.job_name is not None and parts.scheduled_for is not None:
        store.record_slot(
            conn, job_name=parts.job_name, scheduled_for=parts.scheduled_for, status="failed", message=message
        )
        return True
    if parts.run_id is None:
        return False
    try:
        existing = store.get_run(conn, parts.run_id)
    except UnknownRun:
        if parts.job_name is None:
            return False
        trigger: Trigger = parts.trigger if parts.trigger in ("manual", "startup") else "manual"
        store.enqueue_run(
            conn, run_id=parts.run_id, job_name=parts.job_name, trigger=trigger, scheduled_for=None, params={}
        )
        existing = store.get_run(conn, parts.run_id)
    if existing.status == "queued":
        store.finish_run(
            conn, parts.run_id, status="failed", message=message, items_processed=0, items_failed=0, duration_ms=0
        )
    return True
