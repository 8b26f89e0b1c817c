"""The ASGI application: routes, error handling, and the shared state's life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from sp_scheduler.dashboard import api, api_actions, page_actions, pages
from sp_scheduler.dashboard.access import Access
from sp_scheduler.dashboard.context import Dashboard
from sp_scheduler.dashboard.errors import scheduler_error
from sp_scheduler.dashboard.render import STATIC_DIR
from sp_scheduler.errors import SchedulerError
from sp_scheduler.settings import Settings


def create_app(settings: Settings, access: Access | None = None) -> Starlette:
    """The dashboard and API over `settings`' database, Redis and config (ConfigError if the config is broken);
    read-only unless `access` turns actions on."""
    state = Dashboard.from_settings(settings, access or Access())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    app = Starlette(
        routes=[
            *api.ROUTES,
            *api_actions.ROUTES,
            *pages.ROUTES,
            *page_actions.ROUTES,
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={SchedulerError: scheduler_error},
        lifespan=lifespan,
    )
    app.state.dashboard = state
    return app
