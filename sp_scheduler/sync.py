"""Make Redis's RedBeat entries equal the desired schedule (entries.diff_entries decides what changes)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sp_scheduler import keys
from sp_scheduler.entries import EntryDiff, EntrySpec, SentSlots, diff_entries, encode_meta
from sp_scheduler.schedule import CronSchedule

log = logging.getLogger(__name__)


def read_entries(client: Any) -> tuple[dict[str, str], dict[str, str | None]]:
    """Redis's entries: job name -> entry key, and job name -> stored definition (None: hash gone)."""
    entry_keys = {key[len(keys.REDBEAT_PREFIX) :]: key for key in client.zrange(keys.schedule_key(), 0, -1)}
    with client.pipeline() as pipe:
        for key in entry_keys.values():
            pipe.hget(key, "definition")
        return entry_keys, dict(zip(entry_keys, pipe.execute(), strict=True))


def sync_entries(client: Any, desired: Mapping[str, EntrySpec], sent: SentSlots, now: datetime) -> EntryDiff:
    """Add new jobs, rewrite changed ones, remove deleted or disabled ones, in one pipeline.

    A new or changed entry counts its slots from `now`, so a change never creates "missed" slots;
    unless Redis lost an unchanged entry this beat was firing: that one counts from its last slot sent.
    """
    entry_keys, current = read_entries(client)
    diff = diff_entries(current, desired)
    schedule_key = keys.schedule_key()
    with client.pipeline() as pipe:
        for name in diff.removes:
            key = entry_keys[name]
            sent.last.pop(key, None)  # re-enabled later, it starts afresh
            pipe.zrem(schedule_key, key)
            pipe.delete(key)
            log.info("schedule entry removed", extra={"job": name})
        for name, spec in desired.items():
            if name not in diff.adds and name not in diff.updates:
                continue
            definition = spec.definition()
            key = keys.entry_key(name)
            start = now
            remembered = sent.last.get(key)
            if name in diff.adds and remembered is not None and remembered[0] == definition:
                start = remembered[1]
                sent.broker_gap.add(name)
                log.warning("schedule entry restored after Redis lost it", extra={"job": name, "last_slot": start})
            pipe.hset(key, mapping={"definition": definition, "meta": encode_meta(start)})
            pipe.zadd(schedule_key, {key: CronSchedule(spec.expression, spec.timezone).next_after(start).timestamp()})
            log.info(
                "schedule entry set",
                extra={
                    "job": name,
                    "change": "updated" if name in diff.updates else "added",
                    "schedule": spec.expression,
                    "timezone": spec.timezone,
                },
            )
        pipe.execute()
    return diff
