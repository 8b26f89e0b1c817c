"""Nothing on the queue stops a worker: malformed messages are set aside, dead pool processes recorded at once."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from sp_scheduler import keys
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import ExitCode
from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.processes import ManagedProcess, start_process
from tests.support.proxy import redis_proxy

pytestmark = pytest.mark.integration


def job(name: str, **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": name, "schedule": "", "enabled": True, **options}


def envelope(body: bytes | str, *, task: str = "sp_scheduler.run_job", encode: bool = True) -> dict[str, Any]:
    """A Celery protocol 2 message as kombu's Redis transport stores it, around `body`."""
    task_id = str(uuid.uuid4())
    raw = body.encode() if isinstance(body, str) else body
    return {
        "body": base64.b64encode(raw).decode() if encode else body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0},
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": DEFAULT_QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def _broken_envelope() -> str:
    message = envelope(json.dumps([[], {}, {}]))
    del message["properties"]
    return json.dumps(message)


# Each shape a queue item can have that no worker can use, with what the worker must say about it.
MALFORMED: dict[str, tuple[Callable[[], bytes | str], str]] = {
    "raw non-JSON": (lambda: b"this is not json \xff", "not JSON"),
    "JSON list": (lambda: json.dumps([1, 2, 3]), "not a message envelope"),
    "JSON string": (lambda: json.dumps("hello"), "not a message envelope"),
    "non-base64 body": (lambda: json.dumps(envelope("%%% not base64 %%%", encode=False)), "base64"),
    "JSON object body": (lambda: json.dumps(envelope(json.dumps({"x": 1}))), "[args, kwargs, embed]"),
    "broken envelope": (_broken_envelope, "not a message envelope"),
}


def message_id(item: bytes | str) -> str | None:
    try:
        document = json.loads(item)
    except ValueError:
        return None
    return document.get("headers", {}).get("id") if isinstance(document, dict) else None


def dead_letters(system: System) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(system.redis_url)
    return [json.loads(item) for item in client.lrange(keys.DEAD_LETTERS, 0, -1)]


def push(system: System, item: bytes | str) -> None:
    redis.Redis.from_url(system.redis_url).lpush(DEFAULT_QUEUE, item)


def assert_running(*workers: ManagedProcess) -> None:
    for worker in workers:
        assert worker.popen.poll() is None, (
            f"worker {worker.name} exited with {worker.popen.returncode}:\n" + (worker.output()[-3000:])
        )


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_a_malformed_queue_item_is_set_aside_and_the_worker_goes_on(system: System, shape: str) -> None:
    make, reason = MALFORMED[shape]
    item = make()
    system.configure([job("noop")])
    worker = system.worker()
    push(system, item)
    letters = wait_until(lambda: dead_letters(system), timeout=15, message="nothing reached the dead-letter list")
    assert_running(worker)
    (letter,) = letters
    raw = item if isinstance(item, str) else item.decode("utf-8", errors="replace")
    if letter["raw"] != raw:  # set aside after kombu parsed it: the same JSON, re-serialized
        assert json.loads(letter["raw"]) == json.loads(raw)
    assert letter["queue"] == DEFAULT_QUEUE and letter["message_id"] == message_id(item)
    assert reason in letter["reason"], letter
    assert letter["worker"].startswith("w1@")
    result = system.cli("jobs", "run", "noop", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert_running(worker)
    assert redis.Redis.from_url(system.redis_url).llen(DEFAULT_QUEUE) == 0
    lines = [line for line in worker.output().splitlines() if "message set aside" in line]
    assert len(lines) == 1 and reason in lines[0], worker.output()[-3000:]
    assert "Unrecoverable error" not in worker.output()
    status = system.cli_json("jobs", "status")
    assert status["dead_letters"] == 1


def test_a_poison_message_among_good_ones_stops_no_worker(system: System) -> None:
    system.configure([job("noop")])
    workers = [system.worker("w1"), system.worker("w2")]
    push(system, json.dumps(envelope(json.dumps({"x": 1}))))
    for _ in range(3):
        result = system.cli("jobs", "run", "noop", "--wait", "--timeout", "30")
        assert result.exit_code == 0, result.output
    wait_until(lambda: len(dead_letters(system)) == 1, timeout=15, message="the poison message was not set aside")
    assert_running(*workers)
    assert [r["status"] for r in system.history("noop")] == ["succeeded"] * 3
    assert redis.Redis.from_url(system.redis_url).llen(DEFAULT_QUEUE) == 0


def test_dead_letters_cli_lists_requeues_and_drops(system: System) -> None:
    client = redis.Redis.from_url(system.redis_url)
    system.configure([job("noop")])
    worker = system.worker()
    push(system, "garbage one")
    push(system, "garbage two")
    wait_until(lambda: len(dead_letters(system)) == 2, timeout=15, message="the garbage was not set aside")
    listed = system.cli_json("queue", "dead-letters")
    assert [entry["raw"] for entry in listed["dead_letters"]] == ["garbage two", "garbage one"]
    assert all(entry["kind"] == "not_json" and entry["queue"] == DEFAULT_QUEUE for entry in listed["dead_letters"])
    text = system.cli("queue", "dead-letters")
    assert text.exit_code == 0 and "not JSON" in text.stdout and "garbage one" in text.stdout
    assert "2 set aside" in system.cli("jobs", "status").stdout
    # Requeued items go back on their queue; still unusable, the worker sets them aside again.
    requeued = system.cli("queue", "dead-letters", "--requeue")
    assert requeued.exit_code == 0 and "requeued 2" in requeued.stdout, requeued.output
    wait_until(lambda: len(dead_letters(system)) == 2, timeout=15, message="the requeued garbage was not set aside")
    # The worker logs after the item is in the list: wait for the line rather than read it at once.
    wait_until(
        lambda: sum("message set aside" in line for line in worker.output().splitlines()) == 4,
        timeout=15,
        message="the worker did not log each item it set aside",
    )
    dropped = system.cli("queue", "dead-letters", "--drop")
    assert dropped.exit_code == 0 and "dropped 2" in dropped.stdout
    assert client.llen(keys.DEAD_LETTERS) == 0
    assert system.cli("queue", "dead-letters").stdout.strip() == "no dead letters"
    assert system.cli("queue", "dead-letters", "--drop", "--requeue").exit_code == ExitCode.INVALID
    assert_running(worker)


def test_a_job_that_blocks_its_event_loop_is_recorded_timeout(system: System) -> None:
    system.configure([job("blocking_sleepy", timeout=3), job("noop")])
    worker = system.worker()
    started = time.monotonic()
    result = system.cli("jobs", "run", "blocking_sleepy", "-p", "seconds=60", "--wait", "--timeout", "30")
    elapsed = time.monotonic() - started
    assert result.exit_code != 0
    (row,) = system.history("blocking_sleepy")
    assert row["status"] == "timeout", row
    assert "timeout of 3 s" in row["message"], row
    assert elapsed < 3 + 10, elapsed
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0
    assert_running(worker)


def test_a_job_that_ignores_the_soft_limit_is_killed_and_recorded_timeout(system: System) -> None:
    system.configure([job("stubborn", timeout=2), job("noop")])
    worker = system.worker()
    started = time.monotonic()
    result = system.cli("jobs", "run", "stubborn", "-p", "seconds=60", "--wait", "--timeout", "40")
    elapsed = time.monotonic() - started
    assert result.exit_code != 0
    (row,) = system.history("stubborn")
    assert row["status"] == "timeout", row
    assert "killed" in row["message"] and "timeout of 2 s" in row["message"], row
    assert elapsed < 2 + 15, elapsed
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0
    assert_running(worker)


def test_a_killed_pool_process_run_is_lost_within_seconds(system: System, tmp_path: Path) -> None:
    system.configure([job("sleepy", overlap="skip")])
    worker = system.worker()  # the default lease (30 s) would take far longer than this test allows
    marker = tmp_path / "started"
    queued = system.cli("jobs", "run", "sleepy", "-p", "seconds=60", "-p", f"marker={marker}", "--json")
    run_id = json.loads(queued.stdout)[0]["run_id"]
    wait_until(marker.exists, timeout=30, message="the long run did not start")
    (row,) = system.history("sleepy")
    pool_pid = int(str(row["worker"]).split(":")[1])
    assert pool_pid != worker.pid
    os.kill(pool_pid, signal.SIGKILL)
    killed = time.monotonic()
    lost = wait_until(
        lambda: [r for r in system.history("sleepy") if r["id"] == run_id and r["status"] == "lost"],
        timeout=10,
        message="the killed run was not marked lost",
    )
    assert time.monotonic() - killed < 5
    assert "SIGKILL" in lost[0]["message"], lost[0]
    assert_running(worker)
    result = system.cli("jobs", "run", "sleepy", "-p", "seconds=0.1", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output


def test_a_worker_that_cannot_go_on_exits_non_zero(system: System, tmp_path: Path) -> None:
    # Celery stops a worker whose pidfile a live process holds, once its blueprint starts (the same path
    # as "Unrecoverable error"); the process must say so to its supervisor, not exit 0.

    system.configure([job("noop")])
    pidfile = tmp_path / "worker.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    args = ["worker", "-c", "1", "--pidfile", str(pidfile)]
    worker = start_process("doomed", args, system.env(), system.log_dir)
    system.processes.append(worker)
    wait_until(lambda: worker.popen.poll() is not None, timeout=60, message="the worker did not exit")
    assert worker.popen.returncode != 0, worker.output()[-3000:]


def test_workers_run_without_gossip_and_mingle(system: System) -> None:
    # Neither is used by the scheduler; gossip logged an ERROR traceback at every Redis reconnect.
    system.configure([job("noop")])
    worker = system.worker()  # started the way an operator starts one: no extra flags
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0
    output = worker.output()
    assert "mingle: searching for neighbors" not in output and "gossip" not in output.lower()


def test_a_worker_without_gossip_survives_a_broker_reconnect(system: System) -> None:
    # A check that turning gossip off costs nothing on a reconnect. (A cut proxy does not reproduce
    # gossip's "Error on restarting Gossip"; test_workers_run_without_gossip_and_mingle covers it.)

    proxy, proxied = redis_proxy(system.redis_url)
    system.configure([job("noop")])
    worker = system.worker(SP_REDIS_URL=proxied)
    proxy.cut()
    wait_until(lambda: "Connection to broker lost" in worker.output(), timeout=30, message="no disconnect noticed")
    proxy.restore()
    wait_until(lambda: worker.output().count("Connected to ") >= 2, timeout=60, message="no reconnect")
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0
    assert "ERROR" not in worker.output().split("Connection to broker lost", 1)[1].split("Connected to ", 1)[1]
    assert_running(worker)
