"""Redis key names shared by beat, workers and the CLI (one place, so they never drift apart)."""

from __future__ import annotations

PREFIX = "sp_scheduler"
REDBEAT_PREFIX = f"{PREFIX}:redbeat:"  # RedBeat entries: <prefix><job name>, plus <prefix>:schedule and :lock
LEADER_LOCK = f"{REDBEAT_PREFIX}:lock"
BEAT_LEADER = f"{PREFIX}:beat:leader"  # hash: id, host, pid, since, last_tick (expires with the lock)
BEAT_INSTANCES = f"{PREFIX}:beat:instances"  # zset: beat id -> last tick (leaders and standbys)
SYNC_REQUESTED = f"{PREFIX}:beat:sync"  # set by `jobs enable/disable/reset`; beat re-syncs at its next tick
WORKERS_SEEN = f"{PREFIX}:workers"  # zset: worker hostname -> last heartbeat
DEAD_LETTERS = f"{PREFIX}:dead_letters"  # list: queue items no worker can use (dead_letters.py), newest first


def schedule_key(redbeat_prefix: str = REDBEAT_PREFIX) -> str:
    """RedBeat's sorted set of entry keys scored by due time."""
    return f"{redbeat_prefix}:schedule"


def entry_key(job_name: str, redbeat_prefix: str = REDBEAT_PREFIX) -> str:
    return f"{redbeat_prefix}{job_name}"
