"""Jobs run on real Celery workers and leave a complete history in Postgres."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from redbeat.schedulers import get_redis

from sp_scheduler.errors import ExitCode
from sp_scheduler.runner import RunRequest
from sp_scheduler.settings import Settings
from sp_scheduler.store import FINISHED_STATUSES, connect, query_logs, slot_run_id
from sp_scheduler.worker import create_app, send_run
from tests.integration.conftest import System
from tests.support import free_port, wait_until
from tests.support.proxy import postgres_proxy, through

pytestmark = pytest.mark.integration

# Tests that send slots of a fixed past date give their job a grace that still lets those slots run.
OLD_SLOTS_GRACE = 10**9


def job(name: str, job_name: str | None = None, **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": job_name or name, "schedule": "", "enabled": True, **options}


def app_for(system: System) -> Celery:
    return create_app(Settings(database_url=system.database_url, redis_url=system.redis_url, config_path=system.config))


def runs_by_status(system: System, job_name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in system.history(job_name, limit=10_000):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def test_run_wait_executes_on_the_worker_and_history_shows_it(system: System) -> None:
    system.configure([job("noop")])
    worker = system.worker()
    result = system.cli("jobs", "run", "noop", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert "noop  succeeded" in result.stdout and "nothing to do" in result.stdout
    (row,) = system.history("noop")
    assert row["trigger"] == "manual" and row["status"] == "succeeded"
    assert row["items_processed"] == 1 and row["message"] == "nothing to do"
    assert row["worker"] != f"{socket.gethostname()}:{os.getpid()}"
    assert row["worker"].split(":")[1].isdigit() and row["worker"].split(":")[1] != str(worker.pid)
    assert row["enqueued_at"] <= row["started_at"] <= row["finished_at"]
    assert row["duration_ms"] is not None


def test_a_raising_job_is_recorded_failed_while_another_succeeds(system: System) -> None:
    system.configure([job("explode"), job("noop")])
    system.worker(concurrency=2)
    both = system.cli("jobs", "run", "explode", "noop", "--wait", "--timeout", "30")
    assert both.exit_code == ExitCode.FAILURE
    assert "explode  failed" in both.stdout and "RuntimeError: kaboom" in both.stdout
    assert "noop  succeeded" in both.stdout
    (explode,) = system.history("explode")
    assert explode["status"] == "failed" and explode["error"] == "RuntimeError('kaboom: the job blew up')"
    assert "Traceback" in explode["traceback"] and "kaboom" in explode["traceback"]
    assert [r["status"] for r in system.history("noop")] == ["succeeded"]
    assert system.cli("jobs", "run", "explode", "--wait", "--timeout", "30").exit_code == ExitCode.FAILURE
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0


def test_recoverable_failure_is_recorded_with_its_message(system: System) -> None:
    system.configure([job("fail_softly")])
    system.worker()
    result = system.cli("jobs", "run", "fail_softly", "--wait", "--timeout", "30")
    assert result.exit_code == ExitCode.FAILURE
    (row,) = system.history("fail_softly")
    assert row["status"] == "failed" and row["message"] == "Database not available" and row["traceback"] is None


def test_the_same_slot_delivered_twice_runs_once(system: System) -> None:
    system.configure([job("noop", schedule="* * * * * *", misfire_grace=OLD_SLOTS_GRACE)])
    system.worker(concurrency=2)
    app = app_for(system)
    slot = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    for _ in range(3):
        send_run(app, RunRequest("noop", "schedule", slot))
    run_id = slot_run_id("noop", slot)
    wait_until(lambda: [r["status"] for r in system.history("noop")] == ["succeeded"], timeout=30)
    with connect(system.database_url) as conn:
        started = [row for _, row in query_logs(conn, run_id=run_id, limit=100) if row.message == "job started"]
    assert len(started) == 1


def test_two_workers_pull_200_runs_without_duplicates_or_losses(system: System) -> None:
    system.configure([job("noop", schedule="* * * * * *", overlap="allow", misfire_grace=OLD_SLOTS_GRACE)])
    system.worker("w1", concurrency=2)
    system.worker("w2", concurrency=2)
    app = app_for(system)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    slots = [base + timedelta(seconds=i) for i in range(200)]
    for slot in slots:
        send_run(app, RunRequest("noop", "schedule", slot))
    for slot in slots[:50]:  # redeliveries of some slots must not run again
        send_run(app, RunRequest("noop", "schedule", slot))

    def all_done() -> list[dict[str, object]] | None:
        rows = system.history("noop", limit=10_000)
        return rows if len(rows) >= 200 and all(r["status"] in FINISHED_STATUSES for r in rows) else None

    rows = wait_until(all_done, timeout=120, message="200 runs did not finish")
    assert len(rows) == 200
    assert {r["status"] for r in rows} == {"succeeded"}
    assert sorted(datetime.fromisoformat(str(r["scheduled_for"])) for r in rows) == slots
    hosts = {str(r["worker"]).split(":")[0] for r in rows}
    assert len(hosts) == 1  # same machine; pids tell the workers apart
    assert len({r["worker"] for r in rows}) >= 2


def test_a_killed_worker_leaves_its_run_lost_and_the_next_run_proceeds(system: System, tmp_path: Path) -> None:
    system.configure([job("sleepy")])
    lease = {"SP_RUN_LEASE": "2"}
    doomed = system.worker("doomed", **lease)
    marker = tmp_path / "started"
    queued = system.cli("jobs", "run", "sleepy", "-p", "seconds=60", "-p", f"marker={marker}", "--json")
    run_id = queued.stdout.split('"run_id": "')[1].split('"')[0]
    wait_until(marker.exists, timeout=30, message="the long run did not start")
    assert system.history("sleepy")[0]["status"] == "running"
    doomed.kill_tree()
    system.worker("survivor", **lease)
    lost = wait_until(
        lambda: [r for r in system.history("sleepy") if r["id"] == run_id and r["status"] == "lost"],
        timeout=15,
        message="the killed run was not marked lost",
    )
    assert "lease expired" in lost[0]["message"]
    result = system.cli("jobs", "run", "sleepy", "-p", "seconds=0.1", "--wait", "--timeout", "30", **lease)
    assert result.exit_code == 0, result.output


def test_a_job_past_its_timeout_is_recorded_timeout_and_the_worker_stays_healthy(system: System) -> None:
    system.configure([job("sleepy", timeout=1), job("noop")])
    system.worker()
    result = system.cli("jobs", "run", "sleepy", "-p", "seconds=30", "--wait", "--timeout", "30")
    assert result.exit_code == ExitCode.FAILURE
    (row,) = system.history("sleepy")
    assert row["status"] == "timeout" and "timeout of 1 s" in row["message"]
    assert 900 <= row["duration_ms"] < 5000
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0


def test_disable_refuses_manual_runs_unless_forced_and_enable_restores(system: System) -> None:
    system.configure([job("noop")])
    system.worker()
    disabled = system.cli("jobs", "disable", "noop", "--reason", "maintenance")
    assert disabled.exit_code == 0 and "disabled noop" in disabled.stdout
    refused = system.cli("jobs", "run", "noop")
    assert refused.exit_code == ExitCode.REFUSED
    assert "job 'noop' is disabled by" in refused.stderr and "(maintenance)" in refused.stderr
    assert "--force" in refused.stderr
    shown = system.cli_json("jobs", "show", "noop")
    assert shown["enabled"] is False and shown["yaml_enabled"] is True
    assert shown["override"]["reason"] == "maintenance"
    forced = system.cli("jobs", "run", "noop", "--force", "--wait", "--timeout", "30")
    assert forced.exit_code == 0 and "running it anyway" in forced.stderr
    assert system.cli("jobs", "enable", "noop").exit_code == 0
    shown = system.cli_json("jobs", "show", "noop")
    assert shown["enabled"] is True and shown["override"]["enabled"] is True
    listed = system.cli_json("jobs", "list")
    assert next(j for j in listed["jobs"] if j["name"] == "noop")["last_status"] == "succeeded"


def test_a_registered_job_absent_from_the_yaml_runs_by_hand_without_force(system: System) -> None:
    system.configure([job("noop")])  # fail_softly and heartbeat are registered, not configured
    system.worker()
    shown = system.cli_json("jobs", "show", "heartbeat")
    assert shown["configured"] is False
    result = system.cli("jobs", "run", "heartbeat", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert "heartbeat  succeeded" in result.stdout and "running it anyway" not in result.stderr
    # An explicit disable still needs --force, configured or not.
    assert system.cli("jobs", "disable", "heartbeat").exit_code == 0
    assert system.cli("jobs", "run", "heartbeat").exit_code == ExitCode.REFUSED
    system.configure([job("noop", enabled=False)])
    assert system.cli("jobs", "run", "noop").exit_code == ExitCode.REFUSED


def test_a_message_with_bad_params_becomes_a_failed_run_and_the_worker_carries_on(system: System) -> None:
    system.configure([job("noop")])
    system.worker()
    run_id = str(uuid.uuid4())
    send_run(app_for(system), RunRequest("cleanup_empty_contexts", "manual", None, run_id, {"dryrun": "true"}))
    (row,) = wait_until(
        lambda: [r for r in system.history("cleanup_empty_contexts") if r["status"] in FINISHED_STATUSES],
        timeout=30,
        message="the run with bad params was not recorded",
    )
    assert (row["id"], row["status"]) == (run_id, "failed")
    assert row["message"] == (
        "not run: job 'cleanup_empty_contexts': unknown parameter 'dryrun' (did you mean 'dry_run'?);"
        " accepted: hours, batch_size, dry_run, lock_timeout_ms, batch_ms"
    )
    assert system.cli("jobs", "run", "noop", "--wait", "--timeout", "30").exit_code == 0


def test_jobs_use_the_worker_database_pool_and_params(system: System) -> None:
    system.configure([job("count_rows"), job("echo_params", params={"a": 1, "b": "yaml"})])
    system.worker()
    counted = system.cli("jobs", "run", "count_rows", "--wait", "--timeout", "30")
    assert counted.exit_code == 0 and "runs in the ledger" in counted.stdout
    echoed = system.cli("jobs", "run", "echo_params", "-p", "b=cli", "-p", "c=3", "--wait", "--timeout", "30")
    assert "a=1,b=cli,c=3" in echoed.stdout


def test_context_logger_lines_land_in_the_logs_table(system: System) -> None:
    system.configure([job("chatty")])
    system.worker()
    result = system.cli("jobs", "run", "chatty", "--wait", "--timeout", "30", "--json")
    run_id = result.stdout.split('"id": "')[1].split('"')[0]
    with connect(system.database_url) as conn:
        rows = [row for _, row in query_logs(conn, run_id=run_id, limit=100)]
    messages = {(row.level, row.message) for row in rows}
    assert {("INFO", "counting items"), ("WARNING", "one item looks odd"), ("ERROR", "one item failed")} <= messages
    assert ("INFO", "job started") in messages and ("INFO", "job succeeded") in messages
    assert all(row.job_name == "chatty" for row in rows)
    counting = next(row for row in rows if row.message == "counting items")
    assert counting.fields["count"] == 3


def test_local_runs_are_recorded_like_worker_runs(system: System) -> None:
    system.configure([job("noop"), job("explode")])
    ok = system.cli("jobs", "run", "noop", "--local")
    assert ok.exit_code == 0 and "noop  succeeded" in ok.stdout
    bad = system.cli("jobs", "run", "explode", "--local")
    assert bad.exit_code == ExitCode.FAILURE
    assert [r["status"] for r in system.history("noop")] == ["succeeded"]
    assert system.history("explode")[0]["traceback"]


def test_unreachable_services_give_one_line_errors(system: System) -> None:
    system.configure([job("noop")])
    port = free_port()
    no_redis = system.cli("jobs", "run", "noop", SP_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert no_redis.exit_code == ExitCode.UNAVAILABLE
    assert no_redis.stderr.startswith(f"error: cannot reach Redis at 127.0.0.1:{port}/0")
    assert len(no_redis.stderr.strip().splitlines()) == 1
    assert system.history("noop")[0]["status"] == "failed"  # the attempt is on record, not lost
    no_db = system.cli("jobs", "history", SP_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x")
    assert no_db.exit_code == ExitCode.UNAVAILABLE
    assert no_db.stderr.startswith(f"error: cannot reach Postgres at 127.0.0.1:{port}/x")


def test_unknown_job_run_is_refused_before_enqueueing(system: System) -> None:
    result = system.cli("jobs", "run", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert system.history() == []


def test_a_slot_delivered_while_postgres_is_away_runs_once_it_is_back(system: System) -> None:
    proxy = postgres_proxy(system.database_url)
    proxied = through(system.database_url, proxy)
    system.configure([job("noop", schedule="* * * * * *", misfire_grace=OLD_SLOTS_GRACE)])
    system.worker(SP_DATABASE_URL=proxied)
    app = app_for(system)
    send_run(app, RunRequest("noop", "schedule", datetime(2026, 1, 1, tzinfo=UTC)))
    wait_until(lambda: [r["status"] for r in system.history("noop")] == ["succeeded"], timeout=30)
    proxy.cut()
    slot = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    send_run(app, RunRequest("noop", "schedule", slot))
    worker_log = system.processes[0]
    wait_until(lambda: "ledger down; run retried later" in worker_log.output(), timeout=30)
    proxy.restore()
    wait_until(lambda: len([r for r in system.history("noop") if r["status"] == "succeeded"]) == 2, timeout=60)
    assert slot_run_id("noop", slot) in {r["id"] for r in system.history("noop")}


def test_broker_and_beat_connections_ask_for_tcp_keepalives(redis_url: str) -> None:
    # What lets a worker notice a Redis that vanished without closing its connection (its BRPOP would
    # otherwise wait forever). Checked on real sockets; a local test cannot make Redis vanish silently.

    app = create_app(Settings(redis_url=redis_url))
    with app.connection_for_read() as broker:
        clients = {"broker": broker.default_channel.client, "beat": get_redis(app)}
        for name, client in clients.items():
            client.ping()
            connection = client.connection_pool.get_connection()
            try:
                sock = connection._sock
                assert sock is not None
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1, name
                if hasattr(socket, "TCP_KEEPIDLE"):
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30, name
            finally:
                client.connection_pool.release(connection)
    assert get_redis(app).connection_pool.connection_kwargs["socket_timeout"] == 5.0  # beat gives up, not waits
