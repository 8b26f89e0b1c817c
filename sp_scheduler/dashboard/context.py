"""What every request of the dashboard shares: settings, the catalogue, Postgres and Redis."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from starlette.requests import Request

from sp_scheduler.catalog import Catalog, CatalogWatch
from sp_scheduler.dashboard.access import Access
from sp_scheduler.dashboard.database import Database
from sp_scheduler.redis_clients import redis_client
from sp_scheduler.settings import Settings

REDIS_TIMEOUT = 3.0


@dataclass
class Dashboard:
    """Built once by `create_app`; the catalogue is re-read when the config files change."""

    settings: Settings
    database: Database
    watch: CatalogWatch
    redis: redis.Redis = field(repr=False)
    access: Access = field(default_factory=Access)

    @classmethod
    def from_settings(cls, settings: Settings, access: Access) -> Dashboard:
        client = redis_client(
            settings.redis_url,
            decode_responses=True,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
        )
        watch = CatalogWatch(settings)
        watch.catalog()  # a broken config stops the server at its start, with every problem listed
        return cls(settings, Database(settings.require_database_url()), watch, client, access)

    def catalog(self) -> Catalog:
        return self.watch.catalog()

    def close(self) -> None:
        self.database.close()
        self.redis.close()


def dashboard(request: Request) -> Dashboard:
    """The application's shared state, from a request."""
    state: Dashboard = request.app.state.dashboard
    return state
