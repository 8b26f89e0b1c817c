"""The statuses a run can have: one list that the ledger's records, the CLI and the tests derive from.

Free of the Postgres client, so the CLI can offer `--status` choices without loading psycopg. The
`CHECK` constraint on `sp_job_runs.status` (migration 0001) is compared with this list by a test
(tests/integration/test_store_schema.py), so the database and the code cannot drift apart.
"""

from __future__ import annotations

from typing import Literal, get_args

RunStatus = Literal["queued", "running", "succeeded", "failed", "timeout", "lost", "skipped", "missed"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
# Not finished: waiting for a worker, or going on. Every other status is final.
ACTIVE_STATUSES: frozenset[RunStatus] = frozenset({"queued", "running"})
FINISHED_STATUSES: frozenset[RunStatus] = frozenset(RUN_STATUSES) - ACTIVE_STATUSES
# What a worker's outcome may say of a run it executed.
FinishStatus = Literal["succeeded", "failed", "timeout"]
# What `jobs status`, the metrics and the reports count as a failure.
FailedStatus = Literal["failed", "timeout", "lost"]
FAILED_STATUSES: tuple[FailedStatus, ...] = get_args(FailedStatus)
