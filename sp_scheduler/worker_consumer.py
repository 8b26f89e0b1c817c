"""The Celery consumer every worker runs: the queue guard's, reconnecting to the broker sooner.

Celery retries a lost broker connection on kombu's default schedule, 2 s, then 4 s, 6 s ... apart,
and offers no setting for it. A Sentinel failover takes about 2-3 s, so the second attempt came just
too early and workers were back only ~6 s after the master died. Here the attempts are 1 s, then
2 s ... apart (at most 5 s), so a worker is back within about a second of the promotion; a broker
that stays away is still retried forever, at most every 5 s.
"""

from __future__ import annotations

import functools
from typing import Any

from sp_scheduler.queue_guard import GuardedConsumer

RECONNECT_SCHEDULE = {"interval_start": 1.0, "interval_step": 1.0, "interval_max": 5.0}


class WorkerConsumer(GuardedConsumer):
    """`GuardedConsumer` whose broker (re)connections retry on RECONNECT_SCHEDULE."""

    def ensure_connected(self, conn: Any) -> Any:
        # Celery calls conn.ensure_connection(errback, max_retries, callback=...) with kombu's
        # default intervals; this connection object's call gets ours (Celery makes one per connect).
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_SCHEDULE)
        return super().ensure_connected(conn)
