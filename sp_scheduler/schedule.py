"""The six-field cron expression as a Celery schedule, and its JSON form inside RedBeat entries.

RedBeat stores each entry's definition as JSON with `__type__` markers; this module adds the
`sp_cron` type. A definition that cannot be decoded (a hand-edited key, a schedule from a newer
version) becomes an `UndecodableSchedule` instead of an exception, so beat logs it and goes on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule, schedstate
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

from sp_scheduler.cron import CronExpression
from sp_scheduler.errors import InvalidCronExpression, InvalidTimeZone

TYPE_TAG = "sp_cron"


class CronSchedule(BaseSchedule):  # type: ignore[misc]
    """A Celery schedule backed by sp-scheduler's cron engine (seconds, time zones, DST rules)."""

    def __init__(self, expression: str, timezone: str = "UTC", app: Any = None) -> None:
        super().__init__(app=app)
        self.expression = expression
        self.timezone = timezone
        self.cron = CronExpression.parse(expression, timezone)

    def next_after(self, moment: datetime) -> datetime:
        return self.cron.next_after(moment)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """Time from now until the first fire after `last_run_at` (Celery's contract)."""
        now: datetime = self.now()
        return self.cron.next_after(last_run_at) - now

    def is_due(self, last_run_at: datetime) -> schedstate:
        remaining = self.remaining_estimate(last_run_at).total_seconds()
        if remaining <= 0:
            upcoming = (self.cron.next_after(self.now()) - self.now()).total_seconds()
            return schedstate(True, max(upcoming, 0.0))
        return schedstate(False, remaining)

    def to_json(self) -> dict[str, str]:
        return {"__type__": TYPE_TAG, "expression": self.expression, "timezone": self.timezone}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return (self.expression, self.timezone) == (other.expression, other.timezone)

    def __hash__(self) -> int:
        return hash((self.expression, self.timezone))

    def __reduce__(self) -> tuple[type[CronSchedule], tuple[str, str]]:
        return (CronSchedule, (self.expression, self.timezone))

    def __repr__(self) -> str:
        return f"<CronSchedule {self.expression!r} {self.timezone}>"


class UndecodableSchedule:
    """Stands in for a stored schedule that could not be decoded; beat skips its entry."""

    def __init__(self, reason: str, raw: dict[str, Any]) -> None:
        self.reason = reason
        self.raw = raw

    def __repr__(self) -> str:
        return f"<UndecodableSchedule {self.reason}>"


class ScheduleEncoder(RedBeatJSONEncoder):  # type: ignore[misc]
    """RedBeat's encoder plus `CronSchedule`."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, CronSchedule):
            return obj.to_json()
        return super().default(obj)


class ScheduleDecoder(RedBeatJSONDecoder):  # type: ignore[misc]
    """RedBeat's decoder plus `sp_cron`; a bad one decodes to `UndecodableSchedule`."""

    def dict_to_object(self, d: dict[str, Any]) -> Any:
        if d.get("__type__") != TYPE_TAG:
            return super().dict_to_object(d)
        try:
            return CronSchedule(str(d["expression"]), str(d.get("timezone", "UTC")))
        except (KeyError, InvalidCronExpression, InvalidTimeZone) as exc:
            return UndecodableSchedule(str(exc), dict(d))
