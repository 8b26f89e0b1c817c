"""The Celery app every sp-scheduler process starts from: broker, serialization, RedBeat keys.

The worker adds its task and runtime on top (worker.create_app); beat uses this app as it is and
finds its settings in the app's configuration (`settings_of`), so it needs nothing of the worker.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.redis_url import celery_broker, is_sentinel_url, redbeat_settings
from sp_scheduler.settings import Settings
from sp_scheduler.store.connection import KEEPALIVE_COUNT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL

# Redis redelivers an unacked message after this long; it must outlast the longest run, or a
# second worker would pick it up (harmlessly, thanks to the ledger, but noisily).
DEFAULT_VISIBILITY_TIMEOUT = 6 * 3600
# Celery waits this long after a pool process dies for a result it may have sent before marking its
# task lost; results live in Postgres, so there is nothing to wait for (Celery's default is 10 s).
WORKER_LOST_WAIT = 1.0
BEAT_REDIS_TIMEOUT = 5.0  # beat's Redis commands take milliseconds; past this beat steps down and retries
SETTINGS_KEY = "sp_scheduler_settings"  # the app's configuration entry holding the process's Settings


def _keepalive_options() -> dict[int, int]:
    """TCP keepalive as for Postgres (store/connection.py), where the platform names the options."""
    wanted = (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL), ("TCP_KEEPCNT", KEEPALIVE_COUNT))
    return {getattr(socket, name): value for name, value in wanted if hasattr(socket, name)}


# A Redis that vanishes without closing its connections (a failover, a NAT dropping an idle flow)
# would leave a worker waiting for the reply to its BRPOP forever, consuming nothing and logging
# nothing: keepalive probes drop such a connection within about a minute, and Celery reconnects.
REDIS_CONNECTION_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "socket_keepalive_options": _keepalive_options(),
}


def configured_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app with no task: enough for beat and for publishing runs."""
    settings = settings or Settings.from_env()
    # A Sentinel URL becomes kombu's and RedBeat's own Sentinel forms (redis_url.py); others pass as they are.
    broker_url, broker_options, broker_ssl = celery_broker(settings.redis_url, **REDIS_CONNECTION_OPTIONS)
    beat_timeouts = {**REDIS_CONNECTION_OPTIONS, "socket_timeout": BEAT_REDIS_TIMEOUT}
    redbeat_url, redbeat_options, redbeat_ssl = redbeat_settings(settings.redis_url, **beat_timeouts)
    app = Celery("sp_scheduler", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=False,  # a run killed mid-way is `lost`, never silently retried
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        broker_transport_options={
            "visibility_timeout": DEFAULT_VISIBILITY_TIMEOUT,
            **REDIS_CONNECTION_OPTIONS,
            **broker_options,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_soft_shutdown_timeout=0,  # the worker's own grace watchdog exits as soon as runs finish
        worker_send_task_events=False,
        worker_lost_wait=WORKER_LOST_WAIT,
        # Every item a worker cannot use is set aside, never allowed to stop it (queue_guard.py); a lost
        # broker connection is retried sooner than kombu would (worker_consumer.py).
        worker_consumer="sp_scheduler.worker_consumer:WorkerConsumer",
        enable_utc=True,
        timezone="UTC",
        redbeat_redis_url=redbeat_url,
        # Explicit: beat's client takes none of the broker's transport options (visibility_timeout is no
        # client argument); its commands give up after BEAT_REDIS_TIMEOUT, whatever redis-py's default.
        redbeat_redis_options={**beat_timeouts, **redbeat_options},
        redbeat_key_prefix="sp_scheduler:redbeat:",
    )
    if broker_ssl is not None:
        app.conf.broker_use_ssl = broker_ssl
    if redbeat_ssl is not None:
        app.conf.redbeat_redis_use_ssl = redbeat_ssl
    app.conf[SETTINGS_KEY] = settings
    if is_sentinel_url(settings.redis_url):
        app.conf.broker_transport = "sp_scheduler.queue_guard:GuardedSentinelTransport"
    elif urlsplit(settings.redis_url).scheme in ("redis", "rediss"):
        app.conf.broker_transport = "sp_scheduler.queue_guard:GuardedTransport"
    return app


def settings_of(app: Celery) -> Settings:
    """The Settings the app was made with (from the environment for an app made elsewhere)."""
    settings = app.conf.get(SETTINGS_KEY)
    return settings if isinstance(settings, Settings) else Settings.from_env()
