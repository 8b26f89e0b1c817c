"""`cleanup_empty_contexts`: conversations that were opened and never used are deleted after a grace period."""

from __future__ import annotations

from datetime import timedelta

from sp_scheduler import Job, JobContext, JobResult, Param
from workers.core.batching import BATCH_PARAMS, Rule, Step, run_rules

# The NOT EXISTS is checked again under the batch's row lock, and adding a message needs a share lock
# on its context, so a message that arrives while the context is being deleted is never lost: either
# the context is skipped, or the insert waits and then fails its foreign key.
EMPTY_CONTEXTS = Rule(
    label="empty contexts",
    table="contexts",
    where="t.created_at < %(cutoff)s AND NOT EXISTS (SELECT 1 FROM context_messages m WHERE m.context_id = t.id)",
)


class CleanupEmptyContexts(Job):
    name = "cleanup_empty_contexts"
    description = "Deletes conversation contexts that contain no messages"
    schedule = "0 0 * * * *"
    parameters = (Param("hours", "int", 24, "delete empty contexts older than this", min=1), *BATCH_PARAMS)

    async def execute(self, ctx: JobContext) -> JobResult:
        hours: int = ctx.param("hours")
        return await run_rules(
            ctx, lambda now: [Step(EMPTY_CONTEXTS, {"cutoff": now - timedelta(hours=hours)}, f"older than {hours} h")]
        )
