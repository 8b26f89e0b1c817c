"""The core jobs, one module each; re-exported here for code that imported them from `workers.core.jobs`."""

from workers.core.cleanup_contexts import CleanupEmptyContexts
from workers.core.cleanup_sessions import CleanupInactiveSessions
from workers.core.cleanup_users import CleanupAnonymousUsers
from workers.core.database_cleanup import DatabaseCleanup
from workers.core.publish_content import PublishContent

__all__ = [
    "CleanupAnonymousUsers",
    "CleanupEmptyContexts",
    "CleanupInactiveSessions",
    "DatabaseCleanup",
    "PublishContent",
]
