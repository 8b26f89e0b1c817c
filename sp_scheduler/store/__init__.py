"""Postgres access: schema migrations, the runs ledger, job state overrides and logs.

Every function takes a sync psycopg connection first and runs in its own transaction; use
`connect()` for one-off commands and `open_pool()` in long-lived processes.
"""

from sp_scheduler.redact import postgres_where as describe_url
from sp_scheduler.run_status import FAILED_STATUSES, FINISHED_STATUSES, RUN_STATUSES, FinishStatus, RunStatus
from sp_scheduler.store.backfills import enqueue_backfill, release_backfill, slot_holders
from sp_scheduler.store.claims import claim_run, enqueue_run, finish_run, finish_runs, heartbeat, renew_leases
from sp_scheduler.store.closing import end_process_runs, interrupt_runs, reap_lost, record_slot, record_slots
from sp_scheduler.store.connection import RECONNECT_TIMEOUT_SECONDS, connect, conninfo_with_defaults, open_pool
from sp_scheduler.store.latest import last_runs, last_with_status, recent_statuses
from sp_scheduler.store.logs import LogRecordRow, query_logs, write_logs
from sp_scheduler.store.migrate import (
    CODE_SCHEMA_VERSION,
    Upgrade,
    apply_schema,
    migrate,
    require_current_schema,
    schema_version,
)
from sp_scheduler.store.reads import RunPosition, get_run, history
from sp_scheduler.store.records import (
    Claim,
    ClaimOutcome,
    Overlap,
    RunOutcome,
    RunRecord,
    slot_run_id,
)
from sp_scheduler.store.state import (
    Override,
    OverrideChange,
    expire_overrides,
    get_override,
    get_overrides,
    override_changes,
    reset_override,
    set_enabled,
)

__all__ = [
    "CODE_SCHEMA_VERSION",
    "FAILED_STATUSES",
    "FINISHED_STATUSES",
    "RECONNECT_TIMEOUT_SECONDS",
    "RUN_STATUSES",
    "Claim",
    "ClaimOutcome",
    "FinishStatus",
    "LogRecordRow",
    "Overlap",
    "Override",
    "OverrideChange",
    "RunOutcome",
    "RunPosition",
    "RunRecord",
    "RunStatus",
    "Upgrade",
    "apply_schema",
    "claim_run",
    "connect",
    "conninfo_with_defaults",
    "describe_url",
    "end_process_runs",
    "enqueue_backfill",
    "enqueue_run",
    "expire_overrides",
    "finish_run",
    "finish_runs",
    "get_override",
    "get_overrides",
    "get_run",
    "heartbeat",
    "history",
    "interrupt_runs",
    "last_runs",
    "last_with_status",
    "migrate",
    "open_pool",
    "override_changes",
    "query_logs",
    "reap_lost",
    "recent_statuses",
    "record_slot",
    "record_slots",
    "release_backfill",
    "renew_leases",
    "require_current_schema",
    "reset_override",
    "schema_version",
    "set_enabled",
    "slot_holders",
    "slot_run_id",
    "write_logs",
]
