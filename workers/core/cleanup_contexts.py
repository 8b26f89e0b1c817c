"""`cleanup_empty_contexts`: conversations that were opened and never used are deleted after a grace period."""

from __future__ import annotations

from datetime import timedelta

from sp_scheduler import Job, JobContext, JobResult
from sp_scheduler.errors import UsageError
from workers.core.batching import BatchOptions, Rule, apply_rule, database_now, int_parameter, summarize

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

    async def execute(self, ctx: JobContext) -> JobResult:
        try:
            hours = int_parameter(ctx, "hours", 24)
            options = BatchOptions.from_context(ctx)
        except UsageError as exc:
            return JobResult.failure(str(exc))
        async with ctx.db_pool.connection() as conn:
            cutoff = await database_now(conn) - timedelta(hours=hours)
            outcome = await apply_rule(
                conn, EMPTY_CONTEXTS, {"cutoff": cutoff}, options, ctx.logger, f"older than {hours} h"
            )
        return summarize([outcome])
