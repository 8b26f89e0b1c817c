"""Which beat leads: a Redis lock taken and kept inside the tick, plus the keys that show it.

Unlike stock RedBeat, a standby polls for the lock instead of blocking in `beat_init`, and a lost
lock (expired, or gone with a restarted Redis) makes the leader step down, never exit.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from sp_scheduler import keys

log = logging.getLogger(__name__)

LOCK_TTL = 10.0  # a standby takes over at most this long (plus one poll) after the leader dies


def new_beat_id() -> str:
    """`host:pid:random`: names this beat process in the leader hash and the instances set."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leadership:
    """The leader lock (`keys.LEADER_LOCK`) as seen by one beat; `leader` says whether it holds it."""

    def __init__(self, beat_id: str, *, ttl: float = LOCK_TTL, clock: Callable[[], float] = time.time) -> None:
        self.beat_id = beat_id
        self.ttl = ttl
        self.clock = clock
        self.leader = False
        self.resumed = False  # the last take() resumed the lock this beat held before (no other beat led since)
        self._lock: Any = None

    def take(self, client: Any) -> bool:
        """Try once, without waiting; on success, publish this beat as the leader.

        A beat that stepped down because Redis went away first tries to resume the lock it held: after
        a Sentinel failover the promoted replica still holds it under this beat's token, and no other
        beat could take it until it expired (a whole TTL without slots).
        """
        self.resumed = self._resume()
        if self.resumed:
            log.info("beat resumed the lead", extra={"beat": self.beat_id})
            return True
        self._lock = client.lock(keys.LEADER_LOCK, timeout=self.ttl, blocking=False)
        if not self._lock.acquire(blocking=False):
            return False
        self.leader = True
        client.hset(keys.BEAT_LEADER, mapping={"id": self.beat_id, "since": self.clock()})
        log.info("beat took the lead", extra={"beat": self.beat_id})
        return True

    def _resume(self) -> bool:
        """Extend the lock this beat last held, if Redis still holds it under this beat's token."""
        if self._lock is None or self._lock.local.token is None:
            return False
        try:
            self.leader = bool(self._lock.extend(self.ttl, replace_ttl=True))
        except redis.exceptions.LockError:  # expired, taken by another beat, or lost with a restarted Redis
            self.leader = False
        if not self.leader:
            self._lock = None
        return self.leader

    def keep(self) -> bool:
        """Extend the held lock by a full TTL; False if it is no longer ours (a LockError may also say so)."""
        return bool(self._lock.extend(self.ttl, replace_ttl=True))

    def step_down(self, why: str, exc: BaseException | None) -> None:
        """Stop leading (or say why this standby is waiting); the lock is left to expire."""
        message = "beat stepped down" if self.leader else "beat waiting"
        log.warning(message, extra={"beat": self.beat_id, "reason": why, "error": repr(exc)})
        self.leader = False

    def release(self) -> None:
        """Give the lock up at once (clean shutdown), so a standby need not wait for it to expire."""
        if self._lock is not None and self.leader:
            try:
                self._lock.release()
                log.info("beat released leadership", extra={"beat": self.beat_id})
            except redis.exceptions.RedisError as exc:  # Redis away or the lock gone: it expires on its own
                log.debug("cannot release the leader lock", extra={"error": repr(exc)})
        self.leader = False

    def standby(self, client: Any) -> None:
        """Record this beat as alive but not leading (for `jobs status`)."""
        client.zadd(keys.BEAT_INSTANCES, {self.beat_id: self.clock()})

    def heartbeat(self, client: Any) -> None:
        """Refresh the leader hash (expiring after three TTLs) and this beat's instance score."""
        now = self.clock()
        with client.pipeline() as pipe:
            pipe.hset(
                keys.BEAT_LEADER,
                mapping={"id": self.beat_id, "host": socket.gethostname(), "pid": os.getpid(), "last_tick": now},
            )
            pipe.expire(keys.BEAT_LEADER, int(self.ttl * 3))
            pipe.zadd(keys.BEAT_INSTANCES, {self.beat_id: now})
            pipe.execute()
