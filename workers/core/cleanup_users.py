"""`cleanup_anonymous_users`: anonymous accounts nobody came back to are deleted with everything they own."""

from __future__ import annotations

from datetime import timedelta

from sp_scheduler import Job, JobContext, JobResult, Param
from workers.core.batching import BATCH_PARAMS, Rule, Step, run_rules

# Never upgraded (still anonymous, no upgraded_at), older than the cutoff, and no session still open:
# someone who is signed in right now keeps their account whatever its age. Sessions, contexts (with
# their messages) and OAuth rows go with the user through ON DELETE CASCADE.
ANONYMOUS_USERS = Rule(
    label="anonymous users",
    table="users",
    where=(
        "t.is_anonymous AND t.upgraded_at IS NULL AND t.created_at < %(cutoff)s"
        " AND NOT EXISTS (SELECT 1 FROM user_sessions s WHERE s.user_id = t.id AND s.ended_at IS NULL)"
    ),
)


class CleanupAnonymousUsers(Job):
    name = "cleanup_anonymous_users"
    description = "Removes old anonymous user accounts that were never upgraded"
    schedule = "0 0 3 * * *"
    parameters = (
        Param("days", "int", 30, "delete never-upgraded anonymous users older than this", min=1),
        *BATCH_PARAMS,
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        days: int = ctx.param("days")
        return await run_rules(
            ctx, lambda now: [Step(ANONYMOUS_USERS, {"cutoff": now - timedelta(days=days)}, f"older than {days} days")]
        )
