"""The API's actions (POST, bearer token): run now, enable, disable, reset."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from sp_scheduler.dashboard.actions import change_override, check_run, reset, run_now
from sp_scheduler.dashboard.api import JSONDocument
from sp_scheduler.dashboard.context import dashboard
from sp_scheduler.errors import UsageError


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object a POST carries (an empty body is `{}`); a 400 for anything else."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise UsageError("body: not JSON") from None
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object")
    return body


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{key}: expected a string")
    return value or None


async def run_job(request: Request) -> JSONDocument:
    state = dashboard(request)
    actor = state.access.bearer_actor(request, state.settings.actor)
    catalog = state.catalog()
    name = request.path_params["name"]
    body = await _body(request)
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise UsageError("params: expected a JSON object of name: value")
    checked = check_run(state.settings, catalog, name, params)
    force = body.get("force") is True
    run_id = await state.database.run(
        lambda conn: run_now(state.settings, catalog, conn, name, checked, force=force, actor=actor)
    )
    return JSONDocument({"job": name, "run_id": run_id}, status_code=202)


async def _set(request: Request, enabled: bool) -> JSONDocument:
    state = dashboard(request)
    actor = state.access.bearer_actor(request, state.settings.actor)
    name = state.catalog().get(request.path_params["name"]).name
    body = await _body(request)
    reason, for_, until = _text(body, "reason"), _text(body, "for"), _text(body, "until")
    override = await state.database.run(
        lambda conn: change_override(
            state.settings, conn, name, enabled=enabled, actor=actor, reason=reason, for_=for_, until=until
        )
    )
    return JSONDocument({"job": name, "override": override.to_dict()})


async def enable_job(request: Request) -> JSONDocument:
    return await _set(request, True)


async def disable_job(request: Request) -> JSONDocument:
    return await _set(request, False)


async def reset_job(request: Request) -> JSONDocument:
    state = dashboard(request)
    actor = state.access.bearer_actor(request, state.settings.actor)
    name = state.catalog().get(request.path_params["name"]).name
    reason = _text(await _body(request), "reason")
    cleared = await state.database.run(lambda conn: reset(state.settings, conn, name, actor=actor, reason=reason))
    return JSONDocument({"job": name, "cleared": cleared.to_dict() if cleared else None})


ROUTES = [
    Route("/api/v1/jobs/{name}/run", run_job, methods=["POST"]),
    Route("/api/v1/jobs/{name}/enable", enable_job, methods=["POST"]),
    Route("/api/v1/jobs/{name}/disable", disable_job, methods=["POST"]),
    Route("/api/v1/jobs/{name}/reset", reset_job, methods=["POST"]),
]
