"""The document of `jobs status`: beat leadership and lag, workers, queues, dead letters, the Redis master,
per-job health and alert state, and the alert delivery summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import redis

from sp_scheduler import keys
from sp_scheduler.catalog import Catalog
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import BrokerUnavailable
from sp_scheduler.redact import redis_problem, redis_where
from sp_scheduler.redis_clients import master_address, redis_client
from sp_scheduler.redis_url import is_sentinel_url
from sp_scheduler.run_status import FAILED_STATUSES
from sp_scheduler.status import (
    LATENESS_TRIGGERS,
    BeatState,
    CheckCode,
    JobHealth,
    beat_state,
    check_code,
    job_health,
    recent_workers,
)
from sp_scheduler.store import RunRecord, get_overrides, last_with_status, schema_version
from sp_scheduler.store.alerts import AlertState, DeliveryProblems, alert_states, delivery_problems


@dataclass(frozen=True, slots=True)
class RedisFacts:
    """What beat and the workers keep in Redis about themselves, the queues' depths, and the master in use."""

    leader: dict[str, str]
    instances: list[tuple[str, float]]
    workers: list[tuple[str, float]]
    depths: dict[str, int]
    dead_letters: int
    redis_master: str | None = None  # `host:port` the Sentinels report, for a Sentinel URL
    redis: str = ""  # the URL without its password (redact.redis_where)


def status_redis_client(url: str) -> redis.Redis:
    """The client `read_redis_facts` reads through (plain or Sentinel URL), with short timeouts."""
    return redis_client(url, decode_responses=True, socket_connect_timeout=3)


def read_redis_facts(client: redis.Redis, url: str, queues: list[str]) -> RedisFacts:
    """One pipeline of reads; `BrokerUnavailable` (naming the server, no password) when Redis does not answer."""
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
        raise BrokerUnavailable(redis_problem(url, exc)) from None
    depth_by_queue = dict(zip(queues, depths, strict=True))
    return RedisFacts(
        leader, instances, workers, depth_by_queue, int(dead_letters), redis_master(url), redis_where(url)
    )


def redis_master(url: str) -> str | None:
    """`host:port` of the master the Sentinels report now, for a Sentinel URL (None for a plain one)."""
    if not is_sentinel_url(url):
        return None
    try:
        host, port = master_address(url)
    except redis.RedisError as exc:
        raise BrokerUnavailable(redis_problem(url, exc, "cannot ask the Sentinels for the master of")) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def queues_of(catalog: Catalog) -> list[str]:
    """The queues the catalogue's jobs are sent to, and the default one."""
    return sorted({DEFAULT_QUEUE, *(definition.queue for definition in catalog)})


def _alert_dict(state: AlertState | None) -> dict[str, object]:
    return state.to_dict() if state is not None else {"state": "ok"}


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything `jobs status` prints and `GET /api/v1/status` returns."""

    beat: BeatState
    workers: list[str]
    queues: dict[str, int]
    dead_letters: int
    jobs: list[JobHealth]
    code: CheckCode
    redis_master: str | None = None
    overrides: dict[str, bool] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)
    delivery: DeliveryProblems = field(default_factory=lambda: DeliveryProblems(0, 0, None))
    schema: int | None = None  # only the dashboard's system page asks for it
    redis: str = ""  # the URL without its password

    def to_dict(self) -> dict[str, Any]:
        beat = self.beat
        return {
            "beat": {
                "leader": beat.leader,
                "last_tick": beat.last_tick.isoformat() if beat.last_tick else None,
                "lag_seconds": beat.lag_seconds,
                "healthy": beat.healthy,
                "instances": list(beat.instances),
            },
            "workers": self.workers,
            "queues": self.queues,
            "dead_letters": self.dead_letters,
            "redis": self.redis,
            "redis_master": self.redis_master,
            "jobs": [{**job.to_dict(), "alert": _alert_dict(self.alerts.get(job.name))} for job in self.jobs],
            "alert_delivery": self.delivery.to_dict(),
            "check": {"code": int(self.code), "problem": self.code.name.lower()},
        }


def read_job_health(
    catalog: Catalog, overrides: dict[str, bool], conn: psycopg.Connection[Any], now: datetime
) -> list[JobHealth]:
    """Each job's late flag by the rule of `jobs status` (`status.job_health`), from the ledger's last
    success and failure of each job; backfill runs are left out (`LATENESS_TRIGGERS`), so a backfill of
    old slots never hides a late job. `jobs status`, the dashboard's API and the notifier read it here."""
    names = catalog.names()
    successes = last_with_status(conn, ["succeeded"], names, triggers=LATENESS_TRIGGERS)
    failures = last_with_status(conn, FAILED_STATUSES, names, triggers=LATENESS_TRIGGERS)
    return health_of_runs(catalog, overrides, successes, failures, now)


def health_of_runs(
    catalog: Catalog,
    overrides: dict[str, bool],
    successes: dict[str, RunRecord],
    failures: dict[str, RunRecord],
    now: datetime,
) -> list[JobHealth]:
    """`status.job_health` from each job's last successful and failed run (when each ended)."""
    return job_health(
        catalog,
        overrides,
        {name: run.finished_at or run.created_at for name, run in successes.items()},
        {name: run.finished_at or run.created_at for name, run in failures.items()},
        now,
    )


def read_status(
    catalog: Catalog, facts: RedisFacts, conn: psycopg.Connection[Any], now: datetime, *, with_schema: bool = False
) -> StatusReport:
    """The report from Redis's facts and the ledger's overrides, last successes and failures, and alerts."""
    overrides = {name: override.enabled for name, override in get_overrides(conn).items()}
    health = read_job_health(catalog, overrides, conn, now)
    alerts = alert_states(conn)
    delivery = delivery_problems(conn)
    beat = beat_state(facts.leader, facts.instances, now)
    seen = recent_workers(facts.workers, now)
    schema = schema_version(conn) if with_schema else None
    return StatusReport(
        beat,
        seen,
        facts.depths,
        facts.dead_letters,
        health,
        check_code(beat, seen, health),
        facts.redis_master,
        overrides,
        alerts,
        delivery,
        schema,
        facts.redis,
    )


def alert_text(state: AlertState | None, disabled: bool) -> str:
    """`ok`, `late`, `failing (3)`, `failing (5), paused` (while the override auto-pause set stands):
    the job's alert state in a cell."""
    if state is None or state.state == "ok":
        return "ok"
    text = f"failing ({state.consecutive_failures})" if state.state == "failing" else state.state
    return f"{text}, paused" if state.paused_at is not None and disabled else text
