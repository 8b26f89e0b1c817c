"""Make Redis's RedBeat entries equal the desired schedule (entries.diff_entries decides what changes).

A sync of 10,000 entries must not hold up the tick: it reads Redis in one pipeline, compares memoised
definitions, writes the difference in one pipeline (scores in batched ZADDs), and logs one summary line;
each entry's own line is DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sp_scheduler import keys
from sp_scheduler.entries import EntryDiff, EntrySpec, SentSlots, diff_entries, encode_meta

log = logging.getLogger(__name__)

ZADD_BATCH = 1000  # members per ZADD command
NAMED_IN_SUMMARY = 10  # the summary line names the jobs of a kind when there are at most this many


def read_entries(client: Any) -> tuple[dict[str, str], dict[str, str | None]]:
    """Redis's entries: job name -> entry key, and job name -> stored definition (None: hash gone)."""
    entry_keys = {key[len(keys.REDBEAT_PREFIX) :]: key for key in client.zrange(keys.schedule_key(), 0, -1)}
    with client.pipeline(transaction=False) as pipe:
        for key in entry_keys.values():
            pipe.hget(key, "definition")
        return entry_keys, dict(zip(entry_keys, pipe.execute(), strict=True))


def sync_entries(
    client: Any, desired: Mapping[str, EntrySpec], sent: SentSlots, now: datetime, *, lead: float = 0.0
) -> EntryDiff:
    """Add new jobs, rewrite changed ones, remove deleted or disabled ones, in one pipeline.

    A changed entry counts its slots from `now`, and a new one from `lead` seconds later (time for beat
    to prepare its first burst), so a change never creates "missed" slots; never from before the last
    slot this beat sent for it (no slot twice); and an unchanged entry Redis lost, that this beat was
    firing, counts from its last slot sent.
    """
    started = time.perf_counter()
    entry_keys, current = read_entries(client)
    diff = diff_entries(current, desired)
    if not diff.empty:
        _write(client, diff, entry_keys, sent, now, now + timedelta(seconds=lead))
    _log_summary(diff, len(desired), time.perf_counter() - started)
    return diff


def _write(
    client: Any,
    diff: EntryDiff,
    entry_keys: Mapping[str, str],
    sent: SentSlots,
    now: datetime,
    first_from: datetime,
) -> None:
    schedule_key = keys.schedule_key()
    scores: dict[str, float] = {}
    with client.pipeline() as pipe:  # MULTI/EXEC: the schedule changes at once
        for name in diff.removes:
            key = entry_keys[name]
            sent.last.pop(key, None)  # re-enabled later, it starts afresh
            pipe.zrem(schedule_key, key)
            pipe.delete(key)
            log.debug("schedule entry removed", extra={"job": name})
        for change, specs, default_start in (("added", diff.adds, first_from), ("updated", diff.updates, now)):
            for name, spec in specs.items():
                definition = spec.definition()
                key = keys.entry_key(name)
                start = default_start
                remembered = sent.last.get(key)
                if remembered is not None and change == "added" and remembered[0] == definition:
                    start = remembered[1]
                    sent.broker_gap.add(name)
                    log.warning("schedule entry restored after Redis lost it", extra={"job": name, "last_slot": start})
                elif remembered is not None and remembered[1] > start:
                    start = remembered[1]  # the slot already went out: the next one comes after it
                pipe.hset(key, mapping={"definition": definition, "meta": encode_meta(start)})
                scores[key] = spec.parsed().next_after(start).timestamp()
                log.debug(
                    "schedule entry set",
                    extra={"job": name, "change": change, "schedule": spec.expression, "timezone": spec.timezone},
                )
        members = list(scores.items())
        for index in range(0, len(members), ZADD_BATCH):
            pipe.zadd(schedule_key, dict(members[index : index + ZADD_BATCH]))
        pipe.execute()


def _log_summary(diff: EntryDiff, total: int, seconds: float) -> None:
    """One line per sync: INFO when it changed something, DEBUG for the periodic check that found none."""
    fields: dict[str, Any] = {
        "entries": total,
        "added": len(diff.adds),
        "updated": len(diff.updates),
        "removed": len(diff.removes),
        "duration_ms": round(seconds * 1000, 1),
    }
    for kind, names in (("added", diff.adds), ("updated", diff.updates), ("removed", diff.removes)):
        if 0 < len(names) <= NAMED_IN_SUMMARY:
            fields[f"{kind}_jobs"] = ",".join(names)
    log.log(logging.DEBUG if diff.empty else logging.INFO, "schedule synced", extra=fields)
