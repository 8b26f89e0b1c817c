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
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from sp_scheduler.messages import TASK_NAME, RunRequest, time_limits

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: the run, its queue and its timeout."""

    request: RunRequest
    queue: str
    timeout: float | None = None


def envelope(outgoing: Outgoing, *, origin: str, reply_to: str) -> str:
    """The Redis transport's serialized message for one run (Celery task protocol 2)."""
    task_id = str(uuid.uuid4())
    args = outgoing.request.task_args()
    body = json.dumps([args, {}, _EMBED]).encode()
    hard, soft = time_limits(outgoing.timeout) if outgoing.timeout is not None else (None, None)
    headers: dict[str, Any] = {
        "lang": "py",
        "task": TASK_NAME,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [hard, soft],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(args),
        "kwargsrepr": "{}",
        "origin": origin,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": task_id,
        "reply_to": reply_to,
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": outgoing.queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
    )


class BatchPublisher:
    """Writes many run messages to the broker in one pipeline (beat's hot path)."""

    def __init__(self, broker_url: str) -> None:
        self.client = redis.Redis.from_url(broker_url, socket_connect_timeout=5, socket_timeout=10)
        self.origin = f"{os.getpid()}@{socket.gethostname()}"
        self.reply_to = str(uuid.uuid4())

    def prepare(self, messages: Sequence[Outgoing]) -> list[tuple[str, str]]:
        """(queue, serialized message) pairs, built ahead of the instant they are sent."""
        return [(m.queue, envelope(m, origin=self.origin, reply_to=self.reply_to)) for m in messages]

    def send(self, prepared: Sequence[tuple[str, str]]) -> None:
        """LPUSH prepared messages onto their queues' lists, in order, in one round trip."""
        if not prepared:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for queue, payload in prepared:
                pipe.lpush(queue, payload)
            pipe.execute()

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Prepare and send at once."""
        self.send(self.prepare(messages))
