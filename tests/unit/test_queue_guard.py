"""What makes a queue item unusable, judged without a broker (the real worker tests are in test_poison.py)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from sp_scheduler import dead_letters, keys
from sp_scheduler.publish import Outgoing, envelope
from sp_scheduler.queue_guard import envelope_problem, payload_problem
from sp_scheduler.runner import RunRequest


def good_item() -> dict[str, Any]:
    item: dict[str, Any] = json.loads(
        envelope(Outgoing(RunRequest("noop", "manual", run_id="r1"), "q"), origin="o", reply_to="r")
    )
    return item


def test_beats_own_envelope_passes_and_names_its_id() -> None:
    item = good_item()
    problem, message_id = envelope_problem(json.dumps(item).encode())
    assert problem is None and message_id == item["headers"]["id"]


@pytest.mark.parametrize(
    ("raw", "kind", "words"),
    [
        (b"\xff\xfe", "not_json", "not even UTF-8"),
        (b"plain text", "not_json", "not JSON"),
        (b"[1, 2]", "not_envelope", "a JSON list"),
        (b'"hello"', "not_envelope", "a JSON str"),
        (b"42", "not_envelope", "a JSON int"),
        (b'{"body": "e30="}', "not_envelope", "delivery_tag"),
    ],
)
def test_items_that_are_no_envelope(raw: bytes, kind: str, words: str) -> None:
    problem, _ = envelope_problem(raw)
    assert problem is not None and problem[0] == kind and words in problem[1]


def test_envelopes_with_broken_parts() -> None:
    item = good_item()
    item["body"] = "%%%"
    assert (envelope_problem(json.dumps(item))[0] or ("",))[0] == "bad_body"
    item = good_item()
    item["properties"]["body_encoding"] = "rot13"
    assert "rot13" in (envelope_problem(json.dumps(item))[0] or ("", ""))[1]
    item = good_item()
    item["headers"] = ["not", "a", "dict"]
    assert (envelope_problem(json.dumps(item))[0] or ("",))[0] == "not_envelope"


def message(body: Any) -> SimpleNamespace:
    return SimpleNamespace(payload=body)


def test_payload_shapes() -> None:
    assert payload_problem(message([["noop", "manual", None, "r1", {}], {}, {"chain": None}])) is None
    assert payload_problem(message([[], {}, None])) is None
    for bad in ({"x": 1}, [1, 2], "text", [[], [], {}], [{}, {}, {}], [[], {}, []]):
        problem = payload_problem(message(bad))
        assert problem is not None and problem[0] == "bad_payload" and "[args, kwargs, embed]" in problem[1]


def test_an_undecodable_payload_is_a_problem_not_an_exception() -> None:
    class Undecodable:
        @property
        def payload(self) -> Any:
            raise ValueError("bad bytes")

    problem = payload_problem(Undecodable())
    assert problem is not None and problem[0] == "bad_body" and "bad bytes" in problem[1]


def test_dead_letter_list_keeps_requeues_and_drops() -> None:
    client = fakeredis.FakeRedis()
    dead_letters.set_aside(client, b"one", kind="not_json", reason="not JSON", queue="q1")
    dead_letters.set_aside(client, "two", kind="not_json", reason="not JSON", queue="q2", message_id="m2")
    letters = dead_letters.read(client)
    assert [(x.raw, x.queue, x.message_id) for x in letters] == [("two", "q2", "m2"), ("one", "q1", None)]
    assert dead_letters.count(client) == 2
    assert dead_letters.requeue(client) == 2
    assert client.lrange("q1", 0, -1) == [b"one"] and client.lrange("q2", 0, -1) == [b"two"]
    assert dead_letters.count(client) == 0
    dead_letters.set_aside(client, "three", kind="not_json", reason="not JSON", queue="q1")
    assert dead_letters.drop(client) == 1 and not client.exists(keys.DEAD_LETTERS)


def test_the_list_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dead_letters, "DEAD_LETTER_LIMIT", 3)
    client = fakeredis.FakeRedis()
    for index in range(5):
        dead_letters.set_aside(client, str(index), kind="not_json", reason="not JSON", queue="q")
    assert [x.raw for x in dead_letters.read(client)] == ["4", "3", "2"]


def test_base64_of_a_json_object_body_passes_the_transport() -> None:
    # The transport only checks the envelope; the body's shape is the consumer's to judge.
    item = good_item()
    item["body"] = base64.b64encode(b'{"x": 1}').decode()
    assert envelope_problem(json.dumps(item))[0] is None


def test_requeue_moves_only_what_was_there_when_it_began(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker that sets requeued garbage aside again at once must not keep the requeue going forever.
    client = fakeredis.FakeRedis()
    dead_letters.set_aside(client, "old", kind="not_json", reason="not JSON", queue="q")
    move = dead_letters._move_oldest

    def then_a_worker_sets_it_aside_again(redis_client: Any) -> bool:
        moved = move(redis_client)
        again = redis_client.rpop("q")
        dead_letters.set_aside(redis_client, again, kind="not_json", reason="not JSON", queue="q")
        return moved

    monkeypatch.setattr(dead_letters, "_move_oldest", then_a_worker_sets_it_aside_again)
    assert dead_letters.requeue(client) == 1
    assert dead_letters.count(client) == 1
