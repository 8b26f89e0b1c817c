"""Workers reconnect to the broker on sp-scheduler's schedule (1 s, 2 s ... at most 5 s), not kombu's 2 s, 4 s, 6 s."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kombu import Connection

from sp_scheduler.worker_consumer import RECONNECT_SCHEDULE, WorkerConsumer


class RecordingConnection:
    """Stands in for kombu's Connection: records how Celery asked it to retry."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def ensure_connection(self, errback: Any = None, max_retries: Any = None, **kwargs: Any) -> RecordingConnection:
        self.calls.append({"max_retries": max_retries, **kwargs})
        return self


def consumer() -> WorkerConsumer:
    """A consumer with only what ensure_connected reads (building a whole worker is the integration tests' job)."""
    made = object.__new__(WorkerConsumer)
    conf = SimpleNamespace(broker_connection_retry_on_startup=True, broker_connection_max_retries=None)
    made.app = SimpleNamespace(conf=conf)
    made.first_connection_attempt = True
    made.broker_connection_retry_attempt = 0
    return made


def test_the_broker_connection_is_retried_on_our_schedule() -> None:
    conn = RecordingConnection()
    assert consumer().ensure_connected(conn) is conn
    (call,) = conn.calls
    assert call["max_retries"] is None  # forever, as before
    assert {key: call[key] for key in RECONNECT_SCHEDULE} == RECONNECT_SCHEDULE
    assert call["interval_start"] < 2.0  # kombu's default first pause, which made workers miss a failover


def test_kombu_still_takes_the_schedule_by_these_names() -> None:
    # A kombu upgrade that renamed the arguments would make every reconnect raise a TypeError.
    code = Connection._ensure_connection.__code__
    assert set(RECONNECT_SCHEDULE) <= set(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
