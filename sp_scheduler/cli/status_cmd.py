"""`sp-scheduler jobs status`: is the scheduler alive, and is every job on time?"""

from __future__ import annotations

from datetime import UTC, datetime

import click
import redis

from sp_scheduler import keys
from sp_scheduler.cli.state import CliState, echo_json, echo_table, iso, pass_state
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import BrokerUnavailable
from sp_scheduler.redact import redis_problem, redis_where
from sp_scheduler.redis_clients import master_address, redis_client
from sp_scheduler.redis_url import is_sentinel_url, parse_sentinel_url
from sp_scheduler.run_status import FAILED_STATUSES
from sp_scheduler.status import (
    LATENESS_TRIGGERS,
    CheckCode,
    JobHealth,
    beat_state,
    check_code,
    job_health,
    recent_workers,
)
from sp_scheduler.store import get_overrides, last_with_status
from sp_scheduler.store.alerts import AlertState, alert_states, delivery_problems


def _redis_facts(
    state: CliState, queues: list[str]
) -> tuple[dict[str, str], list[tuple[str, float]], list[tuple[str, float]], dict[str, int], int]:
    client = redis_client(state.settings.redis_url, decode_responses=True, socket_connect_timeout=3)
    try:
        with client.pipeline() as pipe:
            pipe.hgetall(keys.BEAT_LEADER)
            pipe.zrange(keys.BEAT_INSTANCES, 0, -1, withscores=True)
            pipe.zrange(keys.WORKERS_SEEN, 0, -1, withscores=True)
            pipe.llen(keys.DEAD_LETTERS)
            for queue in queues:
                pipe.llen(queue)
            leader, instances, workers, dead_letters, *depths = pipe.execute()
    except redis.RedisError as exc:
        url = state.settings.redis_url
        raise BrokerUnavailable(redis_problem(url, exc)) from None
    return leader, instances, workers, dict(zip(queues, depths, strict=True)), int(dead_letters)


def _sentinel_master(state: CliState) -> str | None:
    """`host:port` of the master the Sentinels report now, for a Sentinel URL (None for a plain one)."""
    url = state.settings.redis_url
    if not is_sentinel_url(url):
        return None
    try:
        host, port = master_address(url)
    except redis.RedisError as exc:
        raise BrokerUnavailable(redis_problem(url, exc, "cannot ask the Sentinels for the master of")) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _redis_in_use(url: str, master: str | None) -> str:
    """The Redis this process talks to, for the `redis:` line: the Sentinels' master, or the URL's server."""
    tls = " over TLS" if url.lower().startswith("rediss") else ""
    if master is not None:
        return f"master {master} ({parse_sentinel_url(url).master_name}, from Sentinel{tls})"
    return f"{redis_where(url)}{tls}"


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit non-zero on a problem: 10 no beat leads, 11 no worker seen, 12 a job is late (most severe wins).",
)
@pass_state
def status_cmd(state: CliState, as_json: bool, check: bool) -> None:
    """Beat leader and last tick, workers seen, queue depth, and per job last success/failure and lateness."""
    catalog = state.catalog()
    queues = sorted({DEFAULT_QUEUE, *(d.queue for d in catalog)})
    leader, instances, workers, depths, dead_letters = _redis_facts(state, queues)
    master = _sentinel_master(state)
    with state.database() as conn:
        overrides = {name: o.enabled for name, o in get_overrides(conn).items()}
        names = catalog.names()
        successes = last_with_status(conn, ["succeeded"], names, triggers=LATENESS_TRIGGERS)
        failures = last_with_status(conn, FAILED_STATUSES, names, triggers=LATENESS_TRIGGERS)
        alerts = alert_states(conn)
        delivery = delivery_problems(conn)
    now = datetime.now(UTC)
    beat = beat_state(leader, instances, now)
    seen = recent_workers(workers, now)
    health = job_health(
        catalog,
        overrides,
        {name: r.finished_at or r.created_at for name, r in successes.items()},
        {name: r.finished_at or r.created_at for name, r in failures.items()},
        now,
    )
    code = check_code(beat, seen, health)
    if as_json:
        echo_json(
            {
                "beat": {
                    "leader": beat.leader,
                    "last_tick": iso(beat.last_tick) if beat.last_tick else None,
                    "lag_seconds": beat.lag_seconds,
                    "healthy": beat.healthy,
                    "instances": list(beat.instances),
                },
                "workers": seen,
                "queues": depths,
                "dead_letters": dead_letters,
                "redis": redis_where(state.settings.redis_url),
                "redis_master": master,
                "jobs": [{**job.to_dict(), "alert": _alert_dict(alerts.get(job.name))} for job in health],
                "alert_delivery": delivery.to_dict(),
                "check": {"code": int(code), "problem": code.name.lower()},
            }
        )
        _exit_for(code, check, health)
        return
    if beat.leader and beat.lag_seconds is not None:
        stale = "" if beat.healthy else "  (STALE: no leader is ticking)"
        click.echo(f"beat:     leader {beat.leader}, last tick {beat.lag_seconds:.1f} s ago{stale}")
    else:
        click.echo("beat:     no leader (is `sp-scheduler beat` running?)")
    standby = [name for name in beat.instances if name != beat.leader]
    if standby:
        click.echo(f"          standby: {', '.join(standby)}")
    click.echo(f"workers:  {len(seen)} seen in the last minute" + (f" ({', '.join(seen)})" if seen else ""))
    click.echo("queues:   " + ", ".join(f"{queue} {depth} waiting" for queue, depth in depths.items()))
    click.echo(f"redis:    {_redis_in_use(state.settings.redis_url, master)}")
    if dead_letters:
        click.echo(f"          {dead_letters} set aside as unusable (see `sp-scheduler queue dead-letters`)")
    if delivery.retrying or delivery.gave_up:
        click.echo(
            f"alerts:   {delivery.retrying} delivery(ies) retrying, {delivery.gave_up} given up in the last day"
            f" (last error: {delivery.last_error or '-'}; see `sp-scheduler alerts history`)"
        )
    echo_table(
        ["JOB", "ENABLED", "NEXT RUN", "LAST SUCCESS", "LAST FAILURE", "LATE", "ALERT"],
        [
            [
                job.name,
                "yes" if job.enabled else "no",
                iso(job.next_run),
                iso(job.last_success),
                iso(job.last_failure),
                "LATE" if job.late else "",
                _alert_text(alerts.get(job.name), overrides.get(job.name) is False),
            ]
            for job in health
        ],
    )
    _exit_for(code, check, health)


def _alert_dict(state: AlertState | None) -> dict[str, object]:
    return state.to_dict() if state is not None else {"state": "ok"}


def _alert_text(state: AlertState | None, disabled: bool) -> str:
    """`ok`, `late`, `failing (3)`, `failing (5), paused` (while the override auto-pause set stands):
    the job's alert state in a cell."""
    if state is None or state.state == "ok":
        return "ok"
    text = f"failing ({state.consecutive_failures})" if state.state == "failing" else state.state
    return f"{text}, paused" if state.paused_at is not None and disabled else text


def _exit_for(code: CheckCode, check: bool, health: list[JobHealth]) -> None:
    """With --check, a one-line reason on stderr and the documented exit code."""
    if not check or code is CheckCode.OK:
        return
    problems = {
        CheckCode.NO_BEAT: "no beat leads (or the leader stopped ticking)",
        CheckCode.NO_WORKER: "no worker reported in the last minute",
        CheckCode.LATE: "late: " + ", ".join(job.name for job in health if job.late),
    }
    click.echo(f"check failed ({int(code)}): {problems[code]}", err=True)
    raise SystemExit(int(code))
