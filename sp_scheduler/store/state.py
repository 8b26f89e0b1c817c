"""Enable/disable overrides: set from the CLI, stored with who, when and why, applied over the YAML.

An override may expire (`expires_at`); readers ignore it from that instant, and `expire_overrides`
(run by the reapers) deletes it. `reset_override` clears one at once. Every change lands in
`sp_job_state_changes`, so `jobs show` can say who changed what, when and why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from sp_scheduler.store.records import as_utc

log = logging.getLogger(__name__)

ChangeAction = Literal["enable", "disable", "reset", "expire"]

_COLUMNS = "job_name, enabled, reason, actor, updated_at, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > clock_timestamp())"
_CHANGE_COLUMNS = "job_name, action, enabled, expires_at, actor, reason, at"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Override:
    """One job's enabled flag as an operator set it, until `expires_at` (None: until reset)."""

    job_name: str
    enabled: bool
    reason: str | None
    actor: str
    updated_at: datetime
    expires_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Override:
        """Build from a dict row, with timestamps in UTC."""
        return cls(
            job_name=row["job_name"],
            enabled=bool(row["enabled"]),
            reason=row["reason"],
            actor=row["actor"],
            updated_at=row["updated_at"].astimezone(UTC),
            expires_at=as_utc(row.get("expires_at")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, timestamps as ISO-8601 strings."""
        return {
            "job_name": self.job_name,
            "enabled": self.enabled,
            "reason": self.reason,
            "actor": self.actor,
            "updated_at": self.updated_at.isoformat(),
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class OverrideChange:
    """One entry of the trail: what happened to a job's override, who did it, when and why."""

    job_name: str
    action: ChangeAction
    enabled: bool | None
    expires_at: datetime | None
    actor: str
    reason: str | None
    at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OverrideChange:
        return cls(
            job_name=row["job_name"],
            action=row["action"],
            enabled=row["enabled"],
            expires_at=as_utc(row["expires_at"]),
            actor=row["actor"],
            reason=row["reason"],
            at=row["at"].astimezone(UTC),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "action": self.action,
            "enabled": self.enabled,
            "expires_at": _iso(self.expires_at),
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


def set_enabled(
    conn: psycopg.Connection[Any],
    job_name: str,
    *,
    enabled: bool,
    actor: str,
    reason: str | None = None,
    expires_at: datetime | None = None,
) -> Override:
    """Store (or replace) the override for a job, until `expires_at` if given; the latest call wins."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        _expire(cur, job_name)  # an expired override being replaced still gets its entry in the trail
        row = cur.execute(
            "INSERT INTO sp_job_state (job_name, enabled, reason, actor, expires_at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (job_name) DO UPDATE SET enabled = EXCLUDED.enabled, reason = EXCLUDED.reason,"
            " actor = EXCLUDED.actor, expires_at = EXCLUDED.expires_at, updated_at = clock_timestamp()"
            f" RETURNING {_COLUMNS}",
            (job_name, enabled, reason, actor, expires_at),
        ).fetchone()
        if row is None:
            raise RuntimeError("upsert returned no row")
        cur.execute(
            "INSERT INTO sp_job_state_changes (job_name, action, enabled, expires_at, actor, reason, at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (job_name, "enable" if enabled else "disable", enabled, expires_at, actor, reason, row["updated_at"]),
        )
    override = Override.from_row(row)
    log.info(
        "job override set",
        extra={"job": job_name, "enabled": enabled, "actor": actor, "reason": reason, "expires_at": _iso(expires_at)},
    )
    return override


def reset_override(
    conn: psycopg.Connection[Any], job_name: str, *, actor: str, reason: str | None = None
) -> Override | None:
    """Clear a job's override, so the config's value stands again; returns what was cleared (None: nothing)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        _expire(cur, job_name)
        row = cur.execute(f"DELETE FROM sp_job_state WHERE job_name = %s RETURNING {_COLUMNS}", (job_name,)).fetchone()
        if row is None:
            return None
        cur.execute(
            "INSERT INTO sp_job_state_changes (job_name, action, actor, reason) VALUES (%s, 'reset', %s, %s)",
            (job_name, actor, reason),
        )
    cleared = Override.from_row(row)
    log.info("job override reset", extra={"job": job_name, "actor": actor, "reason": reason})
    return cleared


def expire_overrides(conn: psycopg.Connection[Any]) -> list[Override]:
    """Delete every override past its expiry and record each in the trail; concurrent callers share the work."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        expired = _expire(cur, None)
    for override in expired:
        log.info(
            "job override expired",
            extra={"job": override.job_name, "enabled": override.enabled, "expires_at": _iso(override.expires_at)},
        )
    return expired


def _expire(cur: psycopg.Cursor[dict[str, Any]], job_name: str | None) -> list[Override]:
    """The expiry statement: each expired row goes, its trail entry dated at the expiry, by its setter."""
    only = " AND job_name = %s" if job_name is not None else ""
    rows = cur.execute(
        "WITH gone AS (DELETE FROM sp_job_state WHERE expires_at <= clock_timestamp()"
        f"{only} RETURNING {_COLUMNS}),"
        " trail AS (INSERT INTO sp_job_state_changes (job_name, action, enabled, expires_at, actor, reason, at)"
        " SELECT job_name, 'expire', enabled, expires_at, actor, reason, expires_at FROM gone)"
        f" SELECT {_COLUMNS} FROM gone ORDER BY expires_at",
        (job_name,) if job_name is not None else (),
    ).fetchall()
    return [Override.from_row(row) for row in rows]


def get_overrides(conn: psycopg.Connection[Any]) -> dict[str, Override]:
    """Every override in force (expired ones are ignored), by job name."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_COLUMNS} FROM sp_job_state WHERE {_LIVE}").fetchall()
    return {row["job_name"]: Override.from_row(row) for row in rows}


def get_override(conn: psycopg.Connection[Any], job_name: str) -> Override | None:
    """The override in force for one job, or None when the config's value stands."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM sp_job_state WHERE job_name = %s AND {_LIVE}", (job_name,)
        ).fetchone()
    return Override.from_row(row) if row is not None else None


def override_changes(conn: psycopg.Connection[Any], job_name: str, *, limit: int = 5) -> list[OverrideChange]:
    """The newest entries of a job's override trail, newest first."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM sp_job_state_changes WHERE job_name = %s"
            " ORDER BY at DESC, id DESC LIMIT %s",
            (job_name, limit),
        ).fetchall()
    return [OverrideChange.from_row(row) for row in rows]
