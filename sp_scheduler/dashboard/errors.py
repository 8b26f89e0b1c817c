"""How the dashboard answers the project's errors: a status code, and JSON or a page saying why."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sp_scheduler.dashboard.access import ActionsDisabled, NotAuthorized
from sp_scheduler.dashboard.render import render_error
from sp_scheduler.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    JobDisabled,
    SchedulerError,
    SchemaOutOfDate,
    UnknownJob,
    UnknownRun,
    UsageError,
)

API_PREFIX = "/api/"


def status_for(exc: SchedulerError) -> tuple[int, str | None]:
    """(HTTP status, the service that is down if any) of an error the project raised on purpose."""
    if isinstance(exc, NotAuthorized):
        return 401, None
    if isinstance(exc, ActionsDisabled):
        return 403, None
    if isinstance(exc, UnknownJob | UnknownRun):
        return 404, None
    if isinstance(exc, UsageError):
        return 400, None
    if isinstance(exc, JobDisabled):
        return 409, None
    if isinstance(exc, DatabaseUnavailable | SchemaOutOfDate):
        return 503, "postgres"
    if isinstance(exc, BrokerUnavailable):
        return 503, "redis"
    return 500, None


def wants_json(request: Request) -> bool:
    """Whether the request is the API's, wherever a path prefix (`--root-path`) puts it."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith(API_PREFIX)


async def scheduler_error(request: Request, exc: Exception) -> Response:
    """The one handler: JSON `{"error", "service"}` under /api/, the error page elsewhere."""
    assert isinstance(exc, SchedulerError)
    code, service = status_for(exc)
    if wants_json(request):
        body: dict[str, str] = {"error": str(exc)}
        if service:
            body["service"] = service
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        return JSONResponse(body, status_code=code, headers=headers)
    return render_error(request, code, str(exc), service)
