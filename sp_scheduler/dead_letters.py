"""The dead-letter list: queue items no worker can use, set aside in Redis for an operator.

A worker that meets such an item (not JSON, not a Celery envelope, a body that does not decode, a
payload that is not `[args, kwargs, embed]`, a task it does not run) takes it off the queue, pushes it
here with the reason, and goes on: one bad item must never stop a worker, nor be put back for the
next worker to stumble over. `sp-scheduler queue dead-letters` lists, requeues or drops them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from sp_scheduler import keys

log = logging.getLogger(__name__)

# The list keeps the newest items; a flood of garbage must not fill Redis (each item is logged anyway).
DEAD_LETTER_LIMIT = 10_000
LOGGED_RAW_CHARS = 500


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One item set aside: what it was, why no worker can use it, where and when it was met."""

    at: str
    kind: str  # a short code for metrics: not_json, not_envelope, bad_body, bad_payload, unknown_task, ...
    reason: str
    queue: str
    message_id: str | None
    worker: str
    raw: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        data = json.loads(text)
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


def raw_text(raw: bytes | str) -> str:
    """The item as text (bytes that are not UTF-8 are replaced: such an item can only be inspected)."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def worker_name() -> str:
    """Who set an item aside: the Celery node name once the consumer told us, else host and pid."""
    return _worker_name or f"{socket.gethostname()}:{os.getpid()}"


_worker_name: str | None = None


def set_worker_name(name: str) -> None:
    global _worker_name  # noqa: PLW0603 - one name per worker process, set once by its consumer
    _worker_name = name


def set_aside(
    client: redis.Redis,
    raw: bytes | str,
    *,
    kind: str,
    reason: str,
    queue: str,
    message_id: str | None = None,
) -> DeadLetter:
    """Push one item onto the dead-letter list and log one line saying why; Redis errors propagate."""
    letter = DeadLetter(
        at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        kind=kind,
        reason=reason,
        queue=queue,
        message_id=message_id,
        worker=worker_name(),
        raw=raw_text(raw),
    )
    fields = {"reason": reason, "message_id": message_id, "queue": queue, "kind": kind}
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.DEAD_LETTERS, json.dumps(letter.to_dict()))
            pipe.ltrim(keys.DEAD_LETTERS, 0, DEAD_LETTER_LIMIT - 1)
            pipe.execute()
    except redis.RedisError:
        log.error("queue message dropped: cannot set it aside", extra={**fields, "raw": letter.raw[:LOGGED_RAW_CHARS]})
        raise
    log.error("queue message set aside", extra=fields)
    _count(kind)
    return letter


def _count(kind: str) -> None:
    """The dead-letter counter, when this process exports metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from sp_scheduler.metrics import dead_letters_counter  # noqa: PLC0415 -- prometheus_client only with metrics on

        dead_letters_counter().labels(kind).inc()


def count(client: redis.Redis) -> int:
    return int(client.llen(keys.DEAD_LETTERS))


def read(client: redis.Redis, limit: int | None = None) -> list[DeadLetter]:
    """The items set aside, newest first."""
    items = client.lrange(keys.DEAD_LETTERS, 0, -1 if limit is None else limit - 1)
    return [DeadLetter.from_json(item) for item in items]


def drop(client: redis.Redis) -> int:
    """Delete every item set aside; returns how many there were."""
    with client.pipeline(transaction=True) as pipe:
        pipe.llen(keys.DEAD_LETTERS)
        pipe.delete(keys.DEAD_LETTERS)
        length, _ = pipe.execute()
    return int(length)


def requeue(client: redis.Redis) -> int:
    """Put every item back on the queue it came from, oldest first; returns how many were moved.

    Each item moves in one transaction, so an interrupted requeue neither loses nor doubles one. An
    item that is still malformed is simply set aside again by the next worker that meets it: only the
    items there when the requeue began move (new ones are pushed at the other end), or a fast worker
    and this loop would pass the same item back and forth forever.
    """
    moved = 0
    for _ in range(count(client)):
        if not _move_oldest(client):
            break
        moved += 1
    return moved


def _move_oldest(client: redis.Redis) -> bool:
    """Move the oldest item back to its queue in one transaction; False if the list is empty."""
    while True:
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.DEAD_LETTERS)  # type: ignore[no-untyped-call]
                item = pipe.lindex(keys.DEAD_LETTERS, -1)
                if item is None:
                    return False
                letter = DeadLetter.from_json(item)
                pipe.multi()
                pipe.rpop(keys.DEAD_LETTERS)
                pipe.lpush(letter.queue, letter.raw)
                pipe.execute()
                return True
            except redis.WatchError:  # a worker pushed an item meanwhile: look again
                continue
