"""Opening Postgres connections and pools, with one clear error when the server cannot be reached."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from sp_scheduler.errors import DatabaseUnavailable, UsageError
from sp_scheduler.redact import postgres_where as describe_url
from sp_scheduler.redact import redact_text

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
APPLICATION_NAME = "sp-scheduler"
# A server that vanishes without closing its connections (a failover, a network partition) is noticed
# within about a minute, not after the kernel's two hours: keepalive probes start after 30 s of
# silence, three unanswered ones 10 s apart drop the connection, and so does data unacknowledged for
# 60 s. A caller waiting on such a connection then gets an OperationalError it can retry or report.
# The Redis connections (worker.py) use the same keepalive numbers.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3
TCP_DEFAULTS = {
    "keepalives_idle": KEEPALIVE_IDLE,
    "keepalives_interval": KEEPALIVE_INTERVAL,
    "keepalives_count": KEEPALIVE_COUNT,
    "tcp_user_timeout": 60_000,
}

# How long a pool keeps retrying one lost connection (psycopg_pool backs off 1, 2, 4, 8 s...) before it
# gives that attempt up; the next checkout then starts a new attempt at once. Short, so that after a
# failover a pool reconnects within a few seconds of the new primary taking writes, rather than at its
# next doubled pause (32 s, then 64 s, under psycopg_pool's default of 300 s).
RECONNECT_TIMEOUT_SECONDS = 10.0


def conninfo_with_defaults(url: str) -> str:
    """The URL as a conninfo string with our connect timeout, application name and TCP settings,
    each unless the URL sets it itself."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        # libpq quotes the whole URI, password included: keep only the reason.
        reason = redact_text(_first_line(exc).split(' in URI: "', 1)[0], url)
        raise UsageError(f"invalid database URL: {reason}") from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    params.setdefault("application_name", APPLICATION_NAME)
    for key, value in TCP_DEFAULTS.items():
        params.setdefault(key, value)
    return conninfo.make_conninfo("", **params)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """One connection; a server that does not answer within 5 s becomes `DatabaseUnavailable`."""
    try:
        return psycopg.connect(conninfo_with_defaults(url), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        reason = redact_text(_first_line(exc), url)
        raise DatabaseUnavailable(f"cannot reach Postgres at {describe_url(url)}: {reason}") from None


def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    name: str = "sp-ledger",
    timeout: float = 10.0,
    autocommit: bool = False,
    check_on_checkout: bool = True,
    synchronous_commit: bool = True,
) -> ConnectionPool[psycopg.Connection[Any]]:
    """An open sync pool; by default non-autocommit and checked on checkout so a Postgres restart heals.

    Hot paths (the worker's ledger) pass `autocommit=True, check_on_checkout=False` and retry once on
    `OperationalError` instead, saving two round trips per call; `synchronous_commit=False` makes their
    commits asynchronous (see docs/decisions.md). One probe connection first turns an unreachable
    server into a fast, readable error instead of the pool's silent retries until its timeout.
    """
    connect(url).close()

    def configure(conn: psycopg.Connection[Any]) -> None:
        if not synchronous_commit:
            conn.execute("SET synchronous_commit = off")
            if not conn.autocommit:
                conn.commit()

    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        conninfo_with_defaults(url),
        min_size=min_size,
        max_size=max_size,
        name=name,
        kwargs={"autocommit": autocommit},
        configure=configure,
        check=ConnectionPool.check_connection if check_on_checkout else None,
        timeout=timeout,  # a checkout waits this long at most (psycopg's default is 30 s)
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        pool.close()
        raise DatabaseUnavailable(
            f"cannot reach Postgres at {describe_url(url)}: pool {name!r} did not open within {timeout:g} s"
        ) from None
    log.debug("database pool open", extra={"pool": name, "database": describe_url(url), "max_size": max_size})
    return pool
