"""The pages' actions: log in and out, and the job page's forms (session cookie + CSRF token)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sp_scheduler.cli.runs_cmd import parse_params
from sp_scheduler.dashboard.access import SESSION_COOKIE
from sp_scheduler.dashboard.actions import change_override, check_run, reset, run_now
from sp_scheduler.dashboard.context import dashboard
from sp_scheduler.dashboard.render import render, render_error

SESSION_SECONDS = 12 * 3600
ACTIONS = ("run", "enable", "disable", "reset")


def _field(form: FormData, key: str) -> str | None:
    value = form.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _lines(text: str | None) -> list[str]:
    """The `KEY=VALUE` lines of the run form's parameters box, blank lines left out."""
    return [line for line in (text or "").splitlines() if line.strip()]


def _local(target: str | None, request: Request) -> str:
    """Where to go after logging in: a path on this site only (never another host)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return str(request.url_for("jobs"))


async def login_form(request: Request) -> Response:
    dashboard(request).access.require_actions()
    return render(request, "login.html", {"next": request.query_params.get("next", ""), "problem": None})


async def login(request: Request) -> Response:
    access = dashboard(request).access
    form = await request.form()
    value = access.login(_field(form, "token") or "", _field(form, "name") or "")
    response = RedirectResponse(_local(_field(form, "next"), request), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=request.scope.get("root_path") or "/",
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse(str(request.url_for("jobs")), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=request.scope.get("root_path") or "/")
    return response


async def act(request: Request) -> Response:
    """One form of the job page: run, enable, disable or reset; then back to the run or the job."""
    state = dashboard(request)
    form = await request.form()
    actor = state.access.form_actor(request, _field(form, "csrf") or "")
    catalog = state.catalog()
    name = catalog.get(request.path_params["name"]).name
    action = request.path_params["action"]
    if action not in ACTIONS:
        return render_error(request, 404, f"no action {action!r} (use {', '.join(ACTIONS)})", None)
    reason = _field(form, "reason")
    if action == "run":
        checked = check_run(state.settings, catalog, name, parse_params(_lines(_field(form, "params"))))
        force = _field(form, "force") == "on"
        run_id = await state.database.run(
            lambda conn: run_now(state.settings, catalog, conn, name, checked, force=force, actor=actor)
        )
        return RedirectResponse(str(request.url_for("run", run_id=run_id)), status_code=303)
    if action in ("enable", "disable"):
        for_, until = _field(form, "for"), _field(form, "until")
        await state.database.run(
            lambda conn: change_override(
                state.settings,
                conn,
                name,
                enabled=action == "enable",
                actor=actor,
                reason=reason,
                for_=for_,
                until=until,
            )
        )
    else:
        await state.database.run(lambda conn: reset(state.settings, conn, name, actor=actor, reason=reason))
    return RedirectResponse(str(request.url_for("job", name=name)), status_code=303)


ROUTES = [
    Route("/login", login_form, methods=["GET"], name="login_form"),
    Route("/login", login, methods=["POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/jobs/{name}/{action:str}", act, methods=["POST"], name="act"),
]
