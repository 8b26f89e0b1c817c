"""Fixtures shared by the unit and integration suites: real Postgres and Redis, a fresh database per test.

    def test_something(database_url: str, redis_url: str) -> None: ...

`postgres_url` / `redis_server_url` are per session (see tests/support/servers.py for how they are
found or started); `database_url` is a new, migrated database per test, dropped afterwards;
`empty_database_url` the same without migrations; `redis_url` a flushed database number per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import servers


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres server for the session: configured, local, or embedded (never skipped)."""
    with servers.postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database migrated to the current schema, dropped after the test."""
    with servers.scratch_database(postgres_url, migrated=True) as url:
        yield url


@pytest.fixture
def empty_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests), dropped after the test."""
    with servers.scratch_database(postgres_url, migrated=False) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server for the session: configured, local, or an embedded Valkey (never skipped)."""
    with servers.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """`redis://host:port/N`: a database number of its own for this test, flushed before it starts.

    The number is leased in database 0 (`SET NX` with an expiry), so test sessions running at the
    same time against the same server never flush each other's database.
    """
    with servers.leased_redis_db(redis_server_url) as url:
        servers.flush_redis_db(url)
        yield url
