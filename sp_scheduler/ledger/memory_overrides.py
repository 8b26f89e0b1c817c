"""The in-memory ledger's overrides and their trail, with the rules of store/state.py.

An override wins until reset, replaced, or its `expires_at` passes; readers ignore it from that
instant, and expiring deletes it with an `expire` entry dated at the expiry, by its setter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sp_scheduler.store.state import ChangeAction, Override, OverrideChange

log = logging.getLogger("sp_scheduler.store.state")  # the same logger and lines as the Postgres ledger


class OverrideTable:
    """Overrides by job and the append-only trail; the caller holds the ledger's lock."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._overrides: dict[str, Override] = {}
        self._changes: list[OverrideChange] = []  # in order of writing (the trail's id order)

    def set_enabled(
        self, job_name: str, *, enabled: bool, actor: str, reason: str | None, expires_at: datetime | None
    ) -> Override:
        expiry = expires_at.astimezone(UTC) if expires_at is not None else None
        self.expire(job_name)  # an expired override being replaced still gets its entry in the trail
        now = self._now()
        override = self._overrides[job_name] = Override(job_name, enabled, reason, actor, now, expiry)
        self._trail(job_name, "enable" if enabled else "disable", enabled, expiry, actor, reason, now)
        extra = {"job": job_name, "enabled": enabled, "actor": actor, "reason": reason}
        log.info("job override set", extra={**extra, "expires_at": expiry.isoformat() if expiry else None})
        return override

    def reset(self, job_name: str, *, actor: str, reason: str | None) -> Override | None:
        self.expire(job_name)
        cleared = self._overrides.pop(job_name, None)
        if cleared is None:
            return None
        self._trail(job_name, "reset", None, None, actor, reason, self._now())
        log.info("job override reset", extra={"job": job_name, "actor": actor, "reason": reason})
        return cleared

    def live(self, now: datetime) -> dict[str, Override]:
        """Those in force at `now`."""
        return {name: o for name, o in self._overrides.items() if o.expires_at is None or o.expires_at > now}

    def expire(self, job_name: str | None) -> list[Override]:
        """Delete expired overrides (of one job, or all), each in the trail at its expiry; oldest first."""
        now = self._now()
        gone = sorted(
            (
                o
                for name, o in self._overrides.items()
                if (job_name is None or name == job_name) and o.expires_at is not None and o.expires_at <= now
            ),
            key=lambda o: o.expires_at or now,
        )
        for override in gone:
            del self._overrides[override.job_name]
            at = override.expires_at or now
            self._trail(override.job_name, "expire", override.enabled, at, override.actor, override.reason, at)
            if job_name is None:
                log.info(
                    "job override expired",
                    extra={"job": override.job_name, "enabled": override.enabled, "expires_at": at.isoformat()},
                )
        return gone

    def changes(self, job_name: str, limit: int) -> list[OverrideChange]:
        """The newest entries of a job's trail (by time, then order of writing), newest first."""
        entries = [(change.at, seq, change) for seq, change in enumerate(self._changes) if change.job_name == job_name]
        entries.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        return [change for _, _, change in entries[:limit]]

    def _trail(
        self,
        job_name: str,
        action: ChangeAction,
        enabled: bool | None,
        expires_at: datetime | None,
        actor: str,
        reason: str | None,
        at: datetime,
    ) -> None:
        self._changes.append(OverrideChange(job_name, action, enabled, expires_at, actor, reason, at))
