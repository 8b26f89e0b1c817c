"""Beat's batch publisher writes exactly the message kombu's Redis transport writes, and workers run it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from sp_scheduler.publish import BatchPublisher, Outgoing
from sp_scheduler.runner import RunRequest
from sp_scheduler.settings import Settings
from sp_scheduler.store import slot_run_id
from sp_scheduler.worker import create_app, send_run
from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 1, 1, tzinfo=UTC)
PER_MESSAGE = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}


def decoded(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def without(mapping: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in keys}


def test_the_envelope_matches_kombus_field_by_field(redis_url: str) -> None:
    request = RunRequest("job1", "schedule", SLOT)
    send_run(create_app(Settings(redis_url=redis_url)), request, queue="q_kombu", timeout=30)
    BatchPublisher(redis_url).publish([Outgoing(request, "q_ours", 30)])
    client = redis.Redis.from_url(redis_url)
    theirs = decoded(client.lrange("q_kombu", 0, 0)[0])
    ours = decoded(client.lrange("q_ours", 0, 0)[0])
    assert ours["body"] == theirs["body"]
    assert without(ours, {"body", "headers", "properties"}) == without(theirs, {"body", "headers", "properties"})
    assert without(ours["headers"], PER_MESSAGE) == without(theirs["headers"], PER_MESSAGE)
    # send_run passes argsrepr/kwargsrepr as options, which kombu also copies into the properties
    theirs_properties = without(theirs["properties"], PER_MESSAGE | {"argsrepr", "kwargsrepr"})
    theirs_properties["delivery_info"] = {**theirs_properties["delivery_info"], "routing_key": "q_ours"}
    assert without(ours["properties"], PER_MESSAGE) == theirs_properties


def test_a_worker_runs_batch_published_slots_once_each(system: System) -> None:
    system.configure(
        [
            {
                "name": "noop",
                "extension": "testing",
                "job": "noop",
                "schedule": "* * * * * *",
                "enabled": True,
                "overlap": "allow",
                "misfire_grace": 10**9,  # SLOT is a fixed past instant: let its slots run
            }
        ]
    )
    system.worker(concurrency=2)
    slots = [SLOT.replace(second=s) for s in range(20)]
    publisher = BatchPublisher(system.redis_url)
    publisher.publish([Outgoing(RunRequest("noop", "schedule", slot), "sp_scheduler") for slot in slots])
    publisher.publish([Outgoing(RunRequest("noop", "schedule", slot), "sp_scheduler") for slot in slots[:5]])
    wait_until(lambda: len([r for r in system.history("noop") if r["status"] == "succeeded"]) == 20, timeout=60)
    assert {r["id"] for r in system.history("noop")} == {slot_run_id("noop", slot) for slot in slots}
