"""The core jobs' declarations (names, descriptions and default schedules from the seeds).

Their bodies land with the application schema; until then each reports a failure instead of
pretending to work.
"""

from sp_scheduler import Job, JobContext, JobResult

NOT_IMPLEMENTED = "not implemented yet"


class CleanupAnonymousUsers(Job):
    name = "cleanup_anonymous_users"
    description = "Removes old anonymous user accounts that were never upgraded"
    schedule = "0 0 3 * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class CleanupEmptyContexts(Job):
    name = "cleanup_empty_contexts"
    description = "Deletes conversation contexts that contain no messages"
    schedule = "0 0 * * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class CleanupInactiveSessions(Job):
    name = "cleanup_inactive_sessions"
    description = "Expires and removes sessions that have been idle too long"
    schedule = "0 0 * * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class DatabaseCleanup(Job):
    name = "database_cleanup"
    description = "General database maintenance: old logs, expired tokens, vacuum and index cleanup"
    schedule = "0 0 4 * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class PublishContent(Job):
    name = "publish_content"
    description = "Syncs content files under services/content/ into the database"
    schedule = "0 */30 * * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)
