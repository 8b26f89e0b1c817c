"""What an operator does to jobs, shared by the CLI and the dashboard: manual runs and overrides.

Each action is recorded as the CLI always recorded it: a manual run is a `queued` row written before
its message is published (a publish failure marks the row failed, so nothing hides), and an override
change lands in `sp_job_state` and its trail with the actor and reason. After an override change the
leading beat is flagged to re-read the overrides at its next tick.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg
import redis

from sp_scheduler.catalog import Catalog, JobDefinition, effective_enabled
from sp_scheduler.errors import BrokerUnavailable, JobDisabled
from sp_scheduler.keys import SYNC_REQUESTED
from sp_scheduler.redact import redis_problem
from sp_scheduler.redis_clients import redis_client
from sp_scheduler.settings import Settings
from sp_scheduler.store import enqueue_run, finish_run, get_override

if TYPE_CHECKING:
    from sp_scheduler.store import Override


def disabled_run_allowed(
    conn: psycopg.Connection[Any], catalog: Catalog, definition: JobDefinition, force: bool, force_hint: str
) -> bool:
    """Whether a manual run may go ahead: `JobDisabled` for an explicitly disabled job unless `force`.

    Returns True when it goes ahead only because of `force` (callers say so). A registered job absent
    from the config runs by hand as is; the scheduler-wide switch stops slots, not manual runs.
    """
    override = get_override(conn, definition.name)
    enabled = effective_enabled(catalog, definition, override)
    if enabled.source == "not configured" or enabled.job:
        return False
    if force:
        return True
    why = f" ({override.reason})" if override and override.reason else ""
    by = f" by {override.actor}" if override else " in config"
    raise JobDisabled(f"job {definition.name!r} is disabled{by}{why}; {force_hint} to run it anyway")


def enqueue_manual_run(
    settings: Settings, conn: psycopg.Connection[Any], definition: JobDefinition, params: Mapping[str, Any]
) -> str:
    """Record a queued manual run with `params` (already checked), then publish it; its run id.

    `BrokerUnavailable` when Redis refuses the message; the row is then marked failed, "not enqueued".
    """
    from kombu.exceptions import OperationalError  # noqa: PLC0415 -- celery loads only for a run sent to workers

    from sp_scheduler.celery_app import configured_app  # noqa: PLC0415 -- celery loads only for a run sent to workers
    from sp_scheduler.messages import RunRequest, send_run  # noqa: PLC0415 -- celery loads only for a run sent to workers

    run_id = str(uuid.uuid4())
    merged = {**definition.params, **params}
    enqueue_run(conn, run_id=run_id, job_name=definition.name, trigger="manual", scheduled_for=None, params=merged)
    conn.commit()
    app = configured_app(settings)  # publishing needs no task, runtime or worker signals
    try:
        send_run(
            app,
            RunRequest(definition.name, "manual", None, run_id, dict(params)),
            queue=definition.queue,
            timeout=definition.timeout,
        )
    except OperationalError as exc:
        message = redis_problem(settings.redis_url, exc)
        finish_run(
            conn,
            run_id,
            status="failed",
            message=f"not enqueued: {message}",
            items_processed=0,
            items_failed=0,
            duration_ms=0,
        )
        conn.commit()
        raise BrokerUnavailable(message) from None
    return run_id


def request_beat_sync(redis_url: str) -> str | None:
    """Flag the leading beat to apply an override change now; the problem when Redis refused (beat then
    applies it at its next periodic sync, within seconds), None when flagged."""
    client = redis_client(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.set(SYNC_REQUESTED, "1", ex=60)
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


def describe_override(override: Override) -> str:
    """`disabled by alice until <time> (why)`: what an enable/disable just stored."""
    word = "enabled" if override.enabled else "disabled"
    until = f" until {override.expires_at.isoformat()}" if override.expires_at else ""
    reason = f" ({override.reason})" if override.reason else ""
    return f"{word} by {override.actor}{until}{reason}"
