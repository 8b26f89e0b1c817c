"""No password in any output: every CLI command, run as users type it, with URLs that carry one.

Each command runs as a real process against servers that are down, URLs that are malformed, and a
real Postgres beside a Redis that is down; its whole output (stdout and stderr, log lines included)
must not contain the password, in any of its spellings, nor a traceback. A command added to the CLI
without a line in `COMMANDS` fails the test, so new commands are covered from their first day.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import click
import pytest
from psycopg.conninfo import conninfo_to_dict

from sp_scheduler.cli import cli
from tests.support import free_port
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

SECRET = "s3cr3t/p@ss:w0rd"
SPELLINGS = (SECRET, quote(SECRET, safe=""), "s3cr3t")
CONFIG = str(ROOT / "services/scheduler/config.yaml")

# Every leaf command with arguments that reach its connection code; None = it starts long-running
# processes, so it is only run where a server it needs is down or its URL is refused outright.
COMMANDS: dict[str, tuple[Sequence[str], bool]] = {
    "jobs list": ((), False),
    "jobs show": (("heartbeat",), False),
    "jobs run": (("heartbeat", "--force", "--wait", "--timeout", "5"), False),
    "jobs history": ((), False),
    "jobs backfill": (("heartbeat", "--from", "2026-01-01T00:00", "--to", "2026-01-01T00:00:05", "--dry-run"), False),
    "jobs enable": (("heartbeat",), False),
    "jobs disable": (("heartbeat",), False),
    "jobs cleanup-sessions": (("--dry-run",), False),
    "jobs log-cleanup": (("--dry-run",), False),
    "jobs status": ((), False),
    "jobs reset": (("heartbeat",), False),
    "cron prev": (("* * * * * *", "--count", "1"), False),
    "queue dead-letters": ((), False),
    "cron next": (("* * * * * *", "--count", "1"), False),
    "config validate": ((), False),
    "db migrate": ((), False),
    "worker": ((), True),
    "beat": ((), True),
    "dev": ((), True),
    "web": (("--port", "0"), True),
    "health": ((), False),
    "logs view": (("--since", "1h"), False),
    "demo seed": (("--append",), False),
    "alerts history": ((), False),
    "alerts test": (("ops",), False),  # no such target in the shipped config: refused before any server
    "notifier": ((), True),
}


# Commands that need neither Postgres nor Redis, so they succeed whatever the URLs say.
OFFLINE = {"cron next", "cron prev", "config validate"}


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the CLI imports its commands' modules lazily: ask, not `.commands`
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


def multi_host(url: str) -> str:
    """The same database as the second host of a failover URL whose first host is down, with SECRET."""
    params = conninfo_to_dict(url)
    host, port = str(params.get("host") or "localhost"), str(params.get("port") or 5432)
    login = f"{params.get('user') or 'postgres'}:{quote(SECRET, safe='')}"
    dead = f"127.0.0.1:{free_port()}"
    if host.startswith("/"):  # a socket directory (the embedded server) goes in the query
        hosts = f"host=127.0.0.1,{quote(host, safe='')}&port={dead.split(':')[1]},{port}"
        return f"postgresql://{login}@/{params['dbname']}?{hosts}&target_session_attrs=read-write"
    return f"postgresql://{login}@{dead},{host}:{port}/{params['dbname']}?target_session_attrs=read-write"


def with_password(url: str) -> str:
    """The same Postgres URL with SECRET as the password (a trust-auth server ignores it)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{quote(SECRET, safe='')}@{host}"))


@dataclass(frozen=True)
class Outcome:
    command: str
    returncode: int
    output: str


def run_all(env_urls: Mapping[str, str], commands: Sequence[str]) -> list[Outcome]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SP_")}
    env.update(env_urls)
    env["SP_DEV_DIR"] = str(ROOT / ".sp-scheduler" / "test-secrets")

    def one(command: str) -> Outcome:
        args, _ = COMMANDS[command]
        result = subprocess.run(
            [sys.executable, "-m", "sp_scheduler", "--config", CONFIG, *command.split(), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Outcome(command, result.returncode, result.stdout + result.stderr)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, commands))


def assert_nothing_leaks(outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        for spelling in SPELLINGS:
            assert spelling not in outcome.output, f"`{outcome.command}` printed the password:\n{outcome.output}"
        assert "Traceback" not in outcome.output, f"`{outcome.command}` printed a traceback:\n{outcome.output}"


def test_every_command_is_in_the_table() -> None:
    assert sorted(leaf_commands(cli)) == sorted(COMMANDS)


def redis_url_down(form: str) -> str:
    """A Redis URL carrying SECRET (both passwords, for Sentinel) whose servers do not answer."""
    password = quote(SECRET, safe="")
    if form == "sentinel":
        hosts = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
        return f"redis+sentinel://app:{password}@{hosts}/mymaster/0?sentinel_password={password}"
    return f"redis://app:{password}@127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(("hosts", "form"), [(1, "plain"), (2, "sentinel")], ids=["one-host", "multi-host-sentinel"])
def test_servers_down_no_command_prints_the_password(hosts: int, form: str) -> None:
    servers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(hosts))
    failover = "?target_session_attrs=read-write" if hosts > 1 else ""
    urls = {
        "SP_DATABASE_URL": f"postgresql://app:{quote(SECRET, safe='')}@{servers}/app{failover}",
        "SP_REDIS_URL": redis_url_down(form),
    }
    outcomes = run_all(urls, list(COMMANDS))
    assert_nothing_leaks(outcomes)
    failed = {o.command for o in outcomes if o.returncode != 0}
    assert failed == set(COMMANDS) - OFFLINE, [(o.command, o.output) for o in outcomes]


@pytest.mark.parametrize(
    "urls",
    [
        {"SP_DATABASE_URL": f"postgresql://app:{SECRET}@db:notaport/app", "SP_REDIS_URL": "redis://127.0.0.1:1/0"},
        {"SP_DATABASE_URL": "postgresql://app@127.0.0.1:1/app", "SP_REDIS_URL": f"redis://app:{SECRET}@cache:x/0"},
        {"SP_DATABASE_URL": f"host=db port=1 password='{SECRET}' dbname=app", "SP_REDIS_URL": f"notaurl{SECRET}"},
        {
            "SP_DATABASE_URL": "postgresql://app@127.0.0.1:1/app",
            "SP_REDIS_URL": f"redis+sentinel://app:{SECRET}@s1:26379,s2:x/mymaster?sentinel_password={SECRET}",
        },
    ],
    ids=["malformed-postgres", "malformed-redis", "conninfo-and-garbage", "malformed-sentinel"],
)
def test_malformed_urls_are_refused_without_echoing_the_password(urls: dict[str, str]) -> None:
    outcomes = run_all(urls, list(COMMANDS))
    assert_nothing_leaks(outcomes)
    for outcome in outcomes:
        if outcome.command not in OFFLINE:
            assert outcome.returncode in (2, 69), f"`{outcome.command}`: {outcome.returncode}\n{outcome.output}"


@pytest.mark.parametrize(
    ("spelled", "form"), [(with_password, "plain"), (multi_host, "sentinel")], ids=["one-host", "multi-host-sentinel"]
)
def test_real_postgres_with_redis_down_no_command_prints_the_password(
    database_url: str, spelled: Callable[[str], str], form: str
) -> None:
    urls = {"SP_DATABASE_URL": spelled(database_url), "SP_REDIS_URL": redis_url_down(form)}
    commands = [name for name, (_, starts_processes) in COMMANDS.items() if not starts_processes]
    outcomes = run_all(urls, commands)
    assert_nothing_leaks(outcomes)
    by_command = {outcome.command: outcome for outcome in outcomes}
    # The commands that need Redis fail with the service-unavailable code; the others work.
    for name in ("jobs run", "jobs status", "health"):
        assert by_command[name].returncode == 69, by_command[name].output
    for name in ("jobs list", "db migrate"):  # multi-host: through the dead first host to the live one
        assert by_command[name].returncode == 0, by_command[name].output
