"""Beat's batch publisher: messages land on their queues in order, each envelope complete and decodable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import fakeredis

from sp_scheduler.messages import TASK_NAME, RunRequest
from sp_scheduler.publish import PUSH_BATCH, BatchPublisher, Outgoing, envelope

SLOT = datetime(2026, 1, 1, tzinfo=UTC)


def publisher() -> tuple[BatchPublisher, fakeredis.FakeRedis]:
    batch = BatchPublisher("redis://127.0.0.1:1/0")  # never connects: the client is replaced
    batch.client = fakeredis.FakeRedis(decode_responses=True)
    return batch, batch.client


def jobs(client: fakeredis.FakeRedis, queue: str) -> list[str]:
    """Job names in the order a worker pops them (BRPOP: oldest first)."""
    return [
        json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0] for raw in reversed(client.lrange(queue, 0, -1))
    ]


def test_messages_reach_their_queues_in_order_across_batches() -> None:
    batch, client = publisher()
    names = [f"j{i}" for i in range(PUSH_BATCH + 5)]
    queues = ["a" if i % 7 else "b" for i in range(len(names))]
    batch.publish(
        [Outgoing(RunRequest(name, "schedule", SLOT), queue) for name, queue in zip(names, queues, strict=True)]
    )
    assert jobs(client, "a") == [n for n, q in zip(names, queues, strict=True) if q == "a"]
    assert jobs(client, "b") == [n for n, q in zip(names, queues, strict=True) if q == "b"]


def test_an_envelope_carries_any_job_name_and_fresh_ids() -> None:
    odd = 'q"uo\\te @@sp-argsrepr@@ @@sp-body@@ é'
    first = json.loads(envelope(Outgoing(RunRequest(odd, "schedule", SLOT), "q", 30), origin="o", reply_to="r"))
    second = json.loads(envelope(Outgoing(RunRequest(odd, "schedule", SLOT), "q", 30), origin="o", reply_to="r"))
    args = [odd, "schedule", SLOT.isoformat(), None, {}]
    assert json.loads(base64.b64decode(first["body"])) == [
        args,
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    headers, properties = first["headers"], first["properties"]
    assert headers["argsrepr"] == repr(args) and headers["task"] == TASK_NAME and headers["timelimit"] == [35.0, 31.0]
    assert headers["id"] == headers["root_id"] == properties["correlation_id"] != second["headers"]["id"]
    assert properties["delivery_tag"] != second["properties"]["delivery_tag"]
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "q"}
