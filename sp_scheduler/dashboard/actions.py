"""The dashboard's actions on jobs, each through the code the CLI uses (`sp_scheduler.actions`, the store)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg

from sp_scheduler.actions import disabled_run_allowed, enqueue_manual_run, request_beat_sync
from sp_scheduler.catalog import Catalog
from sp_scheduler.cli.expiry import expiry
from sp_scheduler.params import check_params
from sp_scheduler.settings import Settings
from sp_scheduler.store import Override, reset_override, set_enabled

log = logging.getLogger(__name__)


def check_run(settings: Settings, catalog: Catalog, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a manual run, checked as `jobs run -p` checks them (`ParamError`: a 400)."""
    definition = catalog.get(name)
    return check_params(definition.name, definition.job.parameters, params, settings.param_roots())


def run_now(
    settings: Settings,
    catalog: Catalog,
    conn: psycopg.Connection[Any],
    name: str,
    checked: dict[str, Any],
    *,
    force: bool,
    actor: str,
) -> str:
    """Queue a manual run as `jobs run` does (refused for a disabled job unless `force`); its run id."""
    definition = catalog.get(name)
    forced = disabled_run_allowed(conn, catalog, definition, force, "force it")
    run_id = enqueue_manual_run(settings, conn, definition, checked)
    log.info(
        "manual run queued from the dashboard", extra={"job": name, "run_id": run_id, "actor": actor, "forced": forced}
    )
    return run_id


def change_override(
    settings: Settings,
    conn: psycopg.Connection[Any],
    name: str,
    *,
    enabled: bool,
    actor: str,
    reason: str | None,
    for_: str | None,
    until: str | None,
) -> Override:
    """`jobs enable|disable NAME [--reason] [--for|--until]`, recorded with `actor`; beat is flagged."""
    override = set_enabled(conn, name, enabled=enabled, actor=actor, reason=reason, expires_at=expiry(for_, until))
    request_beat_sync(settings.redis_url)
    return override


def reset(
    settings: Settings, conn: psycopg.Connection[Any], name: str, *, actor: str, reason: str | None
) -> Override | None:
    """`jobs reset NAME`: what was cleared (None: there was no override); beat is flagged after a change."""
    cleared = reset_override(conn, name, actor=actor, reason=reason)
    if cleared is not None:
        request_beat_sync(settings.redis_url)
    return cleared
