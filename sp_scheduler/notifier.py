"""`sp-scheduler notifier`: delivers the alert outbox, and notices what no run outcome reports.

The outbox is filled by the transactions that record runs and missed slots (store/sql/functions.sql).
This process, in a loop:

- routes each new event to the targets its job's rules name (config `alerts:`), or marks it
  suppressed (no rule; the job's `max_per_hour` reached: a flapping job);
- claims due deliveries under a lease (`FOR UPDATE SKIP LOCKED`), sends each once, and records the
  answer: delivered, retry after a pause (a 429's own, else ALERT_RETRY_DELAYS), or given up. One
  killed mid-delivery leaves its claims to lapse and be sent again: at least once, never lost;
- disables a job that failed `pause_after_failures` times in a row (an `auto-pause` override) and
  queues `paused`;
- every CHECK_INTERVAL: marks jobs `late` by the rule `jobs status` uses (status.job_health), and
  queues a job's state again when its `renotify` interval passed.

Every step is safe to run in several notifiers at once (row locks and conditional updates decide),
so a second copy for availability sends nothing twice in the normal path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis

from sp_scheduler import keys
from sp_scheduler.alert_payload import build_payload
from sp_scheduler.alert_targets import SendResult, send
from sp_scheduler.catalog import Catalog, CatalogWatch
from sp_scheduler.config_alerts import AlertPolicy, Alerts, JobAlerts
from sp_scheduler.documents.status import read_job_health
from sp_scheduler.ledger.retry import ALERT_MAX_ATTEMPTS, BEAT_RETRY_DELAYS, Backoff
from sp_scheduler.redis_clients import redis_client
from sp_scheduler.settings import Settings
from sp_scheduler.store import connect, get_overrides
from sp_scheduler.store.alerts import (
    OutboxEvent,
    PendingDelivery,
    alert_states,
    auto_pause,
    claim_deliveries,
    give_up,
    mark_delivered,
    mark_late,
    prune_outbox,
    recent_events,
    renotify,
    retry_later,
    route_events,
)

log = logging.getLogger(__name__)

POLL = 0.5  # seconds between two passes over the outbox
CHECK_INTERVAL = 5.0  # seconds between two looks for late jobs and renotify intervals
LEASE_MARGIN = 5.0  # a delivery's lease: its target's timeout plus this
KEEP_EVENTS = timedelta(days=30)  # routed events (and their deliveries) older than this are deleted
PRUNE_INTERVAL = 3600.0
MAX_PER_PASS = 50  # deliveries sent per pass before the checks run again

OnDelivery = Callable[[str, str], None]  # (target, outcome: delivered | retry | gave_up)


class Notifier:
    """One notifier's loop; `step` is one pass (the tests drive it directly too)."""

    def __init__(
        self,
        settings: Settings,
        *,
        web_url: str | None = None,
        env: Mapping[str, str] | None = None,
        on_delivery: OnDelivery | None = None,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.settings = settings
        self.database_url = settings.require_database_url()
        self.watch = CatalogWatch(settings)
        self.web_url = web_url
        self.env = env
        self.on_delivery = on_delivery
        self.check_interval = check_interval
        self._conn: psycopg.Connection[Any] | None = None
        self._checked_at = 0.0
        self._pruned_at = 0.0
        self._backoff = Backoff(BEAT_RETRY_DELAYS)

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, poll: float = POLL) -> None:
        """Pass after pass until `stop` is set; Postgres away means a growing pause, never an exit."""
        log.info("notifier started", extra={"poll_s": poll})
        while not stop.is_set():
            try:
                busy = self.step()
            except (psycopg.Error, OSError) as exc:
                self._drop_connection()
                pause = self._backoff.next_delay()
                log.warning("notifier cannot reach Postgres; retrying", extra={"error": str(exc), "retry_in": pause})
                stop.wait(pause)
                continue
            self._backoff.reset()
            if not busy:
                stop.wait(poll)
        self._drop_connection()
        log.info("notifier stopped")

    def step(self) -> bool:
        """Pause, (when due) look for late jobs and renotify, then route and deliver what is queued
        (so what this pass queued goes out in it too); True when there was work."""
        conn = self._connection()
        catalog = self.watch.catalog()  # the last good config; a broken edit keeps it
        alerts = catalog.config.alerts if catalog.config is not None else Alerts()
        self._pause(conn, catalog, alerts)
        now = time.monotonic()
        if now >= self._checked_at + self.check_interval:
            self._checked_at = now
            self._check_late(conn, catalog)
            self._renotify(conn, catalog, alerts)
        if now >= self._pruned_at + PRUNE_INTERVAL:
            self._pruned_at = now
            prune_outbox(conn, datetime.now(UTC) - KEEP_EVENTS)
        routed = route_events(conn, lambda event: self._route(conn, catalog, alerts, event))
        delivered = self._deliver(conn, alerts)
        return bool(routed or delivered)

    # -- routing and delivery --------------------------------------------------------------------------

    def _route(
        self, conn: psycopg.Connection[Any], catalog: Catalog, alerts: Alerts, event: OutboxEvent
    ) -> tuple[tuple[str, ...], str | None]:
        policy = policy_for(catalog, alerts, event.job_name)
        targets = policy.targets_for(event.event)
        if not targets:
            return (), "no rule names this event"
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        if recent_events(conn, event.job_name, hour_ago) >= policy.max_per_hour:
            log.warning(
                "alert suppressed: rate limit",
                extra={"job": event.job_name, "event": event.event, "max_per_hour": policy.max_per_hour},
            )
            return (), f"rate limit: {policy.max_per_hour} alerts for this job in the last hour"
        return targets, None

    def _deliver(self, conn: psycopg.Connection[Any], alerts: Alerts) -> int:
        """Claim and send one delivery at a time (up to MAX_PER_PASS), so each lease covers one send:
        a batch claimed together would see the later leases lapse behind a slow target."""
        timeouts = [target.timeout for target in alerts.targets.values()] or [10.0]
        lease = max(timeouts) + LEASE_MARGIN
        sent = 0
        while sent < MAX_PER_PASS and (claimed := claim_deliveries(conn, lease=lease, limit=1)):
            (delivery,) = claimed
            target = alerts.targets.get(delivery.target)
            if target is None:
                result = SendResult(False, "the target is no longer in the config")
            else:
                result = send(target, build_payload(delivery.event, self.web_url), delivery.attempts, self.env)
            self._record(conn, delivery, result)
            sent += 1
        return sent

    def _record(self, conn: psycopg.Connection[Any], delivery: PendingDelivery, result: SendResult) -> None:
        fields = {
            "job": delivery.event.job_name,
            "event": delivery.event.event,
            "target": delivery.target,
            "attempt": delivery.attempts,
        }
        error = result.error or ""  # never a URL: alert_targets.py names the variable or the host
        if result.delivered:
            mark_delivered(conn, delivery.id)
            log.info("alert delivered", extra=fields)
            outcome = "delivered"
        elif result.final or delivery.attempts >= ALERT_MAX_ATTEMPTS:
            give_up(conn, delivery.id, error=error)
            log.error("alert not delivered; given up", extra={**fields, "error": error})
            outcome = "gave_up"
        else:
            assert result.retry_in is not None
            retry_later(conn, delivery.id, delay=result.retry_in, error=error)
            log.warning(
                "alert not delivered; will retry", extra={**fields, "error": error, "retry_in": result.retry_in}
            )
            outcome = "retry"
        if self.on_delivery is not None:
            self.on_delivery(delivery.target, outcome)

    # -- states no outcome reports ---------------------------------------------------------------------

    def _pause(self, conn: psycopg.Connection[Any], catalog: Catalog, alerts: Alerts) -> None:
        paused = False
        for name, state in alert_states(conn).items():
            threshold = policy_for(catalog, alerts, name).pause_after_failures
            if state.state == "failing" and threshold and state.consecutive_failures >= threshold:
                paused = auto_pause(conn, name, threshold) or paused
        if paused:
            self._flag_beat()

    def _check_late(self, conn: psycopg.Connection[Any], catalog: Catalog) -> None:
        if all(definition.cron is None for definition in catalog):
            return
        overrides = {name: o.enabled for name, o in get_overrides(conn).items()}
        for health in read_job_health(catalog, overrides, conn, datetime.now(UTC)):
            if not health.late:
                continue
            detail = {
                "expected_slot": health.expected_slot.isoformat() if health.expected_slot else None,
                "last_success": health.last_success.isoformat() if health.last_success else None,
                "late_grace_seconds": health.late_grace_seconds,
                "message": "no success since the expected slot plus its grace",
            }
            if mark_late(conn, health.name, detail):
                log.warning("job late", extra={"job": health.name, "expected_slot": detail["expected_slot"]})

    def _renotify(self, conn: psycopg.Connection[Any], catalog: Catalog, alerts: Alerts) -> None:
        now = datetime.now(UTC)
        for name, state in alert_states(conn).items():
            interval = policy_for(catalog, alerts, name).renotify
            if state.state != "ok" and interval and (state.last_notified_at or state.since) < now - interval:
                renotify(conn, name, now - interval)

    # -- connections -----------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.database_url, autocommit=True)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _flag_beat(self) -> None:
        """Ask the leading beat to re-read the overrides now (it does every few seconds anyway)."""
        # redis_client, not Redis.from_url: that reads no redis+sentinel:// URL (it raised ValueError).
        client = redis_client(self.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.set(keys.SYNC_REQUESTED, "1", ex=60)
        except redis.RedisError as exc:
            log.warning("could not signal beat after an auto-pause", extra={"error": str(exc)})
        finally:
            client.close()


def policy_for(catalog: Catalog, alerts: Alerts, job_name: str) -> AlertPolicy:
    """The job's alert policy: its entry's overrides over the section; the section's for a job the
    config does not list (a job run by hand, or one removed since)."""
    definition = catalog.find(job_name)
    entry = definition.entry if definition is not None else None
    return alerts.policy(entry.alerts if entry is not None else JobAlerts())
