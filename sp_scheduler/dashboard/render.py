"""Page rendering: the Jinja2 templates and static files shipped in the package, and their filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"


def when(value: datetime | str | None) -> str:
    """`2026-12-05 09:00:00+01:00` (in the offset it carries), or '-'."""
    if value is None or value == "-":
        return "-"
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    return instant.isoformat(sep=" ", timespec="seconds")


def duration(ms: int | None) -> str:
    """`850 ms`, `12.3 s`, `4m 05s`, or '-'."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes}m {seconds:02d}s"


def session(request: Request) -> dict[str, Any]:
    """What every page needs to show or hide the actions: are they on, who is logged in, the form token."""
    access = request.app.state.dashboard.access
    actor = access.session_actor(request)
    return {
        "actions": access.actions,
        "actor": actor,
        "csrf": access.csrf_token(actor) if actor else None,
        "root": request.scope.get("root_path", "").rstrip("/"),
    }


templates = Jinja2Templates(directory=str(TEMPLATES_DIR), context_processors=[session])
templates.env.filters["when"] = when
templates.env.filters["duration"] = duration
templates.env.globals["api"] = "/api/v1"


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A page from its template; every page gets the request (for links under a path prefix)."""
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def render_error(request: Request, code: int, message: str, service: str | None) -> HTMLResponse:
    """The error page: what went wrong, and which service is down when one is."""
    return render(request, "error.html", {"code": code, "message": message, "service": service}, status_code=code)
