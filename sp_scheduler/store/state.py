"""Enable/disable overrides: set from the CLI, stored with who, when and why, applied over the YAML."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Override:
    """One job's enabled flag as an operator set it."""

    job_name: str
    enabled: bool
    reason: str | None
    actor: str
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Override:
        """Build from a dict row, with `updated_at` in UTC."""
        return cls(
            job_name=row["job_name"],
            enabled=bool(row["enabled"]),
            reason=row["reason"],
            actor=row["actor"],
            updated_at=row["updated_at"].astimezone(UTC),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, `updated_at` as an ISO-8601 string."""
        return {
            "job_name": self.job_name,
            "enabled": self.enabled,
            "reason": self.reason,
            "actor": self.actor,
            "updated_at": self.updated_at.isoformat(),
        }


def set_enabled(
    conn: psycopg.Connection[Any], job_name: str, *, enabled: bool, actor: str, reason: str | None = None
) -> Override:
    """Store (or replace) the override for a job; the latest call wins."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO sp_job_state (job_name, enabled, reason, actor) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (job_name) DO UPDATE SET enabled = EXCLUDED.enabled, reason = EXCLUDED.reason,"
            " actor = EXCLUDED.actor, updated_at = clock_timestamp()"
            " RETURNING job_name, enabled, reason, actor, updated_at",
            (job_name, enabled, reason, actor),
        ).fetchone()
    if row is None:
        raise RuntimeError("upsert returned no row")
    override = Override.from_row(row)
    log.info("job override set", extra={"job": job_name, "enabled": enabled, "actor": actor, "reason": reason})
    return override


def get_overrides(conn: psycopg.Connection[Any]) -> dict[str, Override]:
    """Every stored override, by job name."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT job_name, enabled, reason, actor, updated_at FROM sp_job_state").fetchall()
    return {row["job_name"]: Override.from_row(row) for row in rows}


def get_override(conn: psycopg.Connection[Any], job_name: str) -> Override | None:
    """The override for one job, or None when the YAML value stands."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT job_name, enabled, reason, actor, updated_at FROM sp_job_state WHERE job_name = %s", (job_name,)
        ).fetchone()
    return Override.from_row(row) if row is not None else None
