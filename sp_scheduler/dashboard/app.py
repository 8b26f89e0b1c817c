"""The ASGI application: routes, error handling, and the shared state's life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from sp_scheduler.dashboard import api, pages
from sp_scheduler.dashboard.context import Dashboard
from sp_scheduler.dashboard.errors import scheduler_error
from sp_scheduler.dashboard.render import STATIC_DIR
from sp_scheduler.errors import SchedulerError
from sp_scheduler.settings import Settings


def create_app(settings: Settings) -> Starlette:
    """The dashboard and API over `settings`' database, Redis and config (ConfigError if the config is broken)."""
    state = Dashboard.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    app = Starlette(
        routes=[*api.ROUTES, *pages.ROUTES, Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")],
        exception_handlers={SchedulerError: scheduler_error},
        lifespan=lifespan,
    )
    app.state.dashboard = state
    return app
