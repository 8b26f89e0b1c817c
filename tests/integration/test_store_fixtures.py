"""The shared test infrastructure itself: servers answer, databases are fresh, helpers poll with deadlines."""

from __future__ import annotations

import time

import pytest
import redis

from sp_scheduler.store import CODE_SCHEMA_VERSION, connect, schema_version
from tests.support import free_port, servers, wait_until

pytestmark = pytest.mark.integration


def test_database_url_is_a_fresh_migrated_database(database_url: str, postgres_url: str) -> None:
    with connect(database_url) as conn:
        assert schema_version(conn) == CODE_SCHEMA_VERSION
        row = conn.execute("SELECT current_database(), count(*) FROM sp_job_runs").fetchone()
    assert row is not None
    assert row[0].startswith("sp_test_")
    assert row[1] == 0
    assert database_url != postgres_url


def test_empty_database_url_has_no_schema(empty_database_url: str) -> None:
    with connect(empty_database_url) as conn:
        assert schema_version(conn) == 0


def test_redis_url_is_an_empty_numbered_database(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.dbsize() == 0
        client.set("sp:test", "1")
        assert client.connection_pool.connection_kwargs["db"] in range(1, 16)
    finally:
        client.close()


def test_with_database_keeps_socket_urls_urls() -> None:
    socket_url = "postgresql://postgres:@/postgres?host=/tmp/pg"
    assert servers.with_database(socket_url, "sp_test_x") == "postgresql://postgres:@/sp_test_x?host=/tmp/pg"
    assert "dbname=sp_test_x" in servers.with_database("host=localhost dbname=postgres", "sp_test_x")


def test_wait_until_returns_the_value_or_fails_with_the_message() -> None:
    started = time.monotonic()
    assert wait_until(lambda: time.monotonic() - started > 0.1 and "done", timeout=5) == "done"
    with pytest.raises(AssertionError, match=r"timed out after 0\.2 s: the impossible"):
        wait_until(lambda: False, timeout=0.2, message="the impossible")


def test_free_port_is_not_listening() -> None:
    assert not servers.redis_answers(f"redis://127.0.0.1:{free_port()}", timeout=0.5)
