"""Publishing a tick's slot messages in one Redis round trip.

Celery's `send_task` costs about a millisecond per message here (kombu builds a redis-py client per
publish, and the message itself is Python work), so a thousand slots due in the same second would
leave over a whole second. Beat instead writes the same Celery protocol 2 message kombu's Redis
transport writes (a JSON envelope with a base64 JSON body, LPUSHed onto the queue's list) for all of
a tick's slots in one pipeline. `tests/integration/test_publish.py` checks the envelope against
kombu's own, field by field, so a Celery upgrade that changes it fails a test rather than a worker.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sp_scheduler.messages import TASK_NAME, RunRequest, time_limits
from sp_scheduler.redis_clients import redis_client

PUSH_BATCH = 1000  # messages per LPUSH command
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: the run, its queue and its timeout."""

    request: RunRequest
    queue: str
    timeout: float | None = None


_TASK_ID = "@@sp-task-id@@"  # placeholders in a template: text JSON never escapes, base64 and uuids never hold
_DELIVERY_TAG = "@@sp-delivery-tag@@"
_BODY = "@@sp-body@@"
_ARGSREPR = "@@sp-argsrepr@@"
_TEMPLATES = 1024  # (queue, timeout, origin, reply_to) combinations kept


def envelope(outgoing: Outgoing, *, origin: str, reply_to: str) -> str:
    """The Redis transport's serialized message for one run (Celery task protocol 2).

    Filled into a template built once per queue and timeout: at 10,000 slots due together, building
    and serialising each envelope's dicts anew was most of the cost of preparing them.
    """
    args = outgoing.request.task_args()
    body = base64.b64encode(json.dumps([args, {}, _EMBED]).encode()).decode()
    task_id = str(uuid.uuid4())
    timeout = None if outgoing.timeout is None else float(outgoing.timeout)  # 30 and 30.0: one template
    text = _template(outgoing.queue, timeout, origin, reply_to)
    text = text.replace(_TASK_ID, task_id).replace(_DELIVERY_TAG, str(uuid.uuid4())).replace(_BODY, body)
    return text.replace(f'"{_ARGSREPR}"', json.dumps(repr(args)))  # last: a job name may hold anything


@functools.lru_cache(maxsize=_TEMPLATES)
def _template(queue: str, timeout: float | None, origin: str, reply_to: str) -> str:
    hard, soft = time_limits(timeout) if timeout is not None else (None, None)
    headers: dict[str, Any] = {
        "lang": "py",
        "task": TASK_NAME,
        "id": _TASK_ID,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [hard, soft],
        "root_id": _TASK_ID,
        "parent_id": None,
        "argsrepr": _ARGSREPR,
        "kwargsrepr": "{}",
        "origin": origin,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": _TASK_ID,
        "reply_to": reply_to,
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": _DELIVERY_TAG,
    }
    return json.dumps(
        {
            "body": _BODY,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
    )


class BatchPublisher:
    """Writes many run messages to the broker in one pipeline (beat's hot path)."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis_client(redis_url, socket_connect_timeout=5, socket_timeout=10)
        self.origin = f"{os.getpid()}@{socket.gethostname()}"
        self.reply_to = str(uuid.uuid4())
        self._connected = False

    def prepare(self, messages: Sequence[Outgoing]) -> list[tuple[str, str]]:
        """(queue, serialized message) pairs, built ahead of the instant they are sent.

        The first call also opens the connection, so the first slot does not wait for it.
        """
        if not self._connected:
            self.client.ping()
            self._connected = True
        return [(m.queue, envelope(m, origin=self.origin, reply_to=self.reply_to)) for m in messages]

    def send(self, prepared: Sequence[tuple[str, str]]) -> None:
        """LPUSH prepared messages onto their queues' lists, in order, in one round trip.

        Consecutive messages for the same queue go in one variadic LPUSH (up to PUSH_BATCH values),
        which Redis applies exactly as that many single LPUSHes, at a fraction of the client's cost.
        """
        if not prepared:
            return
        with self.client.pipeline(transaction=False) as pipe:
            values: list[str] = []
            queue = prepared[0][0]
            for next_queue, payload in prepared:
                if next_queue != queue or len(values) >= PUSH_BATCH:
                    pipe.lpush(queue, *values)
                    values = []
                    queue = next_queue
                values.append(payload)
            pipe.lpush(queue, *values)
            pipe.execute()

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Prepare and send at once."""
        self.send(self.prepare(messages))
