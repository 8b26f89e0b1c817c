"""`cleanup_inactive_sessions`: idle sessions are expired, and ended sessions are removed once they are old."""

from __future__ import annotations

from datetime import datetime, timedelta

from sp_scheduler import Job, JobContext, JobResult, Param
from workers.core.batching import BATCH_PARAMS, Rule, Step, run_rules

# Expiring ends the session the way a logout does (ended_at + reason), so the application sees one
# notion of "ended" and the row stays for `days` as an audit trail.
IDLE_SESSIONS = Rule(
    label="idle sessions",
    table="user_sessions",
    where="t.ended_at IS NULL AND t.last_activity_at < %(idle_cutoff)s",
    order_by="last_activity_at",
    update="ended_at = now(), end_reason = 'expired'",
    verb="expire",
    past="expired",
)
# Any ended session (logout, expiry, revocation) once it ended more than `days` ago.
ENDED_SESSIONS = Rule(
    label="ended sessions",
    table="user_sessions",
    where="t.ended_at < %(ended_cutoff)s",
    order_by="ended_at",
)


class CleanupInactiveSessions(Job):
    name = "cleanup_inactive_sessions"
    description = "Expires and removes sessions that have been idle too long"
    schedule = "0 0 * * * *"
    parameters = (
        Param("hours", "int", 1, "expire sessions idle for longer than this", min=1),
        Param("days", "int", 7, "remove sessions that ended longer ago than this", min=1),
        *BATCH_PARAMS,
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        hours: int = ctx.param("hours")
        days: int = ctx.param("days")

        def plan(now: datetime) -> list[Step]:
            params = {"idle_cutoff": now - timedelta(hours=hours), "ended_cutoff": now - timedelta(days=days)}
            return [
                Step(IDLE_SESSIONS, params, f"idle for over {hours} h"),
                Step(ENDED_SESSIONS, params, f"ended over {days} days ago"),
            ]

        return await run_rules(ctx, plan)
