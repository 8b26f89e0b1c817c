"""The `core` extension: maintenance jobs that keep the application healthy."""

from sp_scheduler import Extension
from workers.core.heartbeat import Heartbeat
from workers.core.jobs import (
    CleanupAnonymousUsers,
    CleanupEmptyContexts,
    CleanupInactiveSessions,
    DatabaseCleanup,
    PublishContent,
)
from workers.core.ledger_retention import LedgerRetention

extension = Extension(
    name="core",
    job_list=(
        CleanupAnonymousUsers(),
        CleanupEmptyContexts(),
        CleanupInactiveSessions(),
        DatabaseCleanup(),
        Heartbeat(),
        LedgerRetention(),
        PublishContent(),
    ),
)
