"""`sp-scheduler health [--role beat|worker]`: the container health check (Docker HEALTHCHECK, k8s probes).

Without a role: Postgres answers with a current schema and Redis answers. With a role, the process
of that role on this host has also reported in recently: a worker's main process writes its
heartbeat every lease/3 seconds (`sp_scheduler:workers`), every beat, leader or standby, every
second (`sp_scheduler:beat:instances`). Both are keyed by host name, which in a container is the
container's, so the check passes only when this container's process is alive and talking to Redis.
"""

from __future__ import annotations

import socket
import time
from typing import cast

import click
import redis

from sp_scheduler import keys
from sp_scheduler.cli.state import CliState, echo_json, pass_state
from sp_scheduler.errors import BrokerUnavailable, SchedulerError
from sp_scheduler.redact import redis_problem, redis_where
from sp_scheduler.redis_clients import redis_client
from sp_scheduler.store import describe_url, schema_version

REDIS_TIMEOUT_SECONDS = 2.0


class ProcessNotSeen(SchedulerError):
    """The beat or worker of this host has not reported in recently (exit 1: unhealthy)."""


def _redis_client(url: str) -> redis.Redis:
    client = redis_client(
        url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS, decode_responses=True
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BrokerUnavailable(redis_problem(url, exc)) from None
    return client


def _recent(client: redis.Redis, key: str, since: float) -> list[tuple[str, float]]:
    # redis-py types withscores replies loosely; with decode_responses they are (str, float) pairs.
    rows = cast("list[tuple[str, float]]", client.zrangebyscore(key, since, "+inf", withscores=True))
    return [(str(member), float(score)) for member, score in rows]


def check_worker(client: redis.Redis, host: str, max_age: float, now: float) -> str:
    """A worker named `<anything>@<host>` (Celery's `%h`) has a heartbeat younger than `max_age`."""
    mine = [
        (name, seen) for name, seen in _recent(client, keys.WORKERS_SEEN, now - max_age) if name.endswith(f"@{host}")
    ]
    if not mine:
        raise ProcessNotSeen(f"no worker on host {host!r} has reported in the last {max_age:g} s")
    name, seen = max(mine, key=lambda item: item[1])
    return f"worker {name} seen {max(now - seen, 0):.0f} s ago"


def check_beat(client: redis.Redis, host: str, max_age: float, now: float) -> str:
    """A beat whose id is `<host>:<pid>:<tag>` ticked within `max_age`; says whether it leads."""
    mine = [
        (bid, seen) for bid, seen in _recent(client, keys.BEAT_INSTANCES, now - max_age) if bid.startswith(f"{host}:")
    ]
    if not mine:
        raise ProcessNotSeen(f"no beat on host {host!r} has ticked in the last {max_age:g} s")
    leader = client.hget(keys.BEAT_LEADER, "id")
    beat_id, seen = max(mine, key=lambda item: item[1])
    role = "leads" if any(bid == leader for bid, _ in mine) else "stands by"
    return f"beat {beat_id} {role}, ticked {max(now - seen, 0):.0f} s ago"


@click.command("health")
@click.option(
    "--role",
    type=click.Choice(["beat", "worker"]),
    help="Also require this host's beat or worker to have reported in recently.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a heartbeat stays fresh [default: the run lease, SP_RUN_LEASE, 30 s].",
)
@click.option("--host", help="Host name the process reports under [default: this host's name].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the exit code is the same).")
@pass_state
def health_cmd(state: CliState, role: str | None, max_age: float | None, host: str | None, as_json: bool) -> None:
    """Exit 0 when Postgres and Redis answer (and, with --role, this host's process is alive); else 1, 4 or 69."""
    report: dict[str, object] = {"ok": False, "role": role}
    try:
        parts = _check(state, role, max_age, host, report)
    except SchedulerError as exc:
        if as_json:
            echo_json({**report, "error": str(exc), "exit_code": int(exc.exit_code)})
        raise
    if as_json:
        echo_json({**report, "ok": True})
        return
    click.echo("ok: " + "; ".join(parts))


def _check(
    state: CliState, role: str | None, max_age: float | None, host: str | None, report: dict[str, object]
) -> list[str]:
    """Run the checks, filling `report` as each passes; the one-line summary parts."""
    settings = state.settings
    with state.database() as conn:
        version = schema_version(conn)
    report["postgres"] = {"url": describe_url(settings.require_database_url()), "schema": version}
    postgres = f"postgres {describe_url(settings.require_database_url())} schema {version}"
    client = _redis_client(settings.redis_url)
    report["redis"] = redis_where(settings.redis_url)
    parts = [postgres, f"redis {redis_where(settings.redis_url)}"]
    try:
        if role is not None:
            check = check_worker if role == "worker" else check_beat
            age = max_age if max_age is not None else settings.lease_seconds
            process = check(client, host or socket.gethostname(), age, time.time())
            report["process"] = process
            parts.append(process)
    except redis.RedisError as exc:
        raise BrokerUnavailable(redis_problem(settings.redis_url, exc, "cannot read heartbeats from")) from None
    finally:
        client.close()
    return parts
