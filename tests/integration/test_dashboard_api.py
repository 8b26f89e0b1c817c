"""The HTTP API under /api/v1/ against real Postgres and Redis: every endpoint, its errors, its paging."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from sp_scheduler.dashboard.app import create_app
from sp_scheduler.settings import Settings
from sp_scheduler.store import LogRecordRow, finish_run
from tests.integration.conftest import System
from tests.support import free_port
from tests.support.ledger import claim
from tests.support.processes import ROOT
from tests.support.proxy import CuttableProxy, through

NIGHTLY = {"name": "nightly", "extension": "testing", "job": "noop", "schedule": "0 0 3 * * *", "enabled": True}
BY_HAND = {"name": "by_hand", "extension": "testing", "job": "echo_params", "schedule": "", "enabled": True}
SLOT = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)


def seed(conn: psycopg.Connection[Any]) -> list[str]:
    """Six runs of `nightly` (scheduled, alternately succeeded and failed) and two manual runs of
    `by_hand`, the first manual one with three log lines; their ids, oldest first."""
    ids = []
    for day in range(6):
        run = claim(conn, "nightly", SLOT + timedelta(days=day)).record
        assert run is not None
        status = "succeeded" if day % 2 == 0 else "failed"
        logs = [LogRecordRow(datetime.now(UTC), "INFO", "sp.job", f"day {day}", "nightly", run.id, {"day": day})]
        finish_run(conn, run.id, status=status, message=f"day {day}", items_processed=day, items_failed=0,
                   duration_ms=10 * day, error="boom" if status == "failed" else None, logs=logs)  # fmt: skip
        ids.append(run.id)
    for n in range(2):
        run = claim(conn, "by_hand", None, trigger="manual").record
        assert run is not None
        logs = [
            LogRecordRow(datetime.now(UTC), "INFO", "sp.job", f"line {i}", "by_hand", run.id, {"i": i})
            for i in range(3 if n == 0 else 0)
        ]
        finish_run(conn, run.id, status="succeeded", message="ok", items_processed=1, items_failed=0,
                   duration_ms=5, logs=logs)  # fmt: skip
        ids.append(run.id)
    return ids


@pytest.fixture
def api(system: System, conn: psycopg.Connection[Any]) -> Iterator[TestClient]:
    system.configure([NIGHTLY, BY_HAND])
    with TestClient(create_app(Settings.from_env(system.env()))) as client:
        yield client


def cli_json(system: System, *args: str) -> Any:
    """`sp-scheduler ARGS --json` as a real process, its document."""
    done = subprocess.run(
        [sys.executable, "-m", "sp_scheduler", *args, "--json"],
        env=system.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_api_serves_the_documents_the_cli_prints(
    system: System, conn: psycopg.Connection[Any], api: TestClient
) -> None:
    ids = seed(conn)
    assert api.get("/api/v1/jobs").json() == cli_json(system, "jobs", "list")
    assert api.get("/api/v1/jobs/nightly").json() == cli_json(system, "jobs", "show", "nightly")
    assert api.get("/api/v1/jobs/nightly?count=3").json() == cli_json(system, "jobs", "show", "nightly", "--count", "3")
    assert api.get("/api/v1/runs?job=nightly").json()["runs"] == cli_json(system, "jobs", "history", "--job", "nightly")
    failed = api.get("/api/v1/runs?status=failed&limit=2").json()["runs"]
    assert failed == cli_json(system, "jobs", "history", "--status", "failed", "--limit", "2")
    logs = api.get(f"/api/v1/runs/{ids[6]}/logs").json()["logs"]
    assert logs == cli_json(system, "logs", "view", "--run", ids[6])
    assert [line["message"] for line in logs] == ["line 0", "line 1", "line 2"]
    status = api.get("/api/v1/status").json()
    assert status == cli_json(system, "jobs", "status")
    nightly = next(job for job in status["jobs"] if job["name"] == "nightly")
    assert nightly["last_failure"] is not None and nightly["last_success"] is not None


def test_runs_filter_by_job_status_trigger_and_time(conn: psycopg.Connection[Any], api: TestClient) -> None:
    ids = seed(conn)
    newest_first = list(reversed(ids))
    everything = api.get("/api/v1/runs").json()
    assert [run["id"] for run in everything["runs"]] == newest_first
    assert everything["next_cursor"] is None
    failed = api.get("/api/v1/runs", params={"job": "nightly", "status": "failed"}).json()["runs"]
    assert [run["id"] for run in failed] == [ids[5], ids[3], ids[1]]
    manual = api.get("/api/v1/runs", params={"trigger": "manual"}).json()["runs"]
    assert [run["id"] for run in manual] == [ids[7], ids[6]]
    created = [run["created_at"] for run in reversed(everything["runs"])]  # oldest first
    window = api.get("/api/v1/runs", params={"since": created[2], "until": created[5]}).json()["runs"]
    assert [run["id"] for run in window] == [ids[4], ids[3], ids[2]]
    assert api.get("/api/v1/runs", params={"since": "1h"}).json()["runs"] == everything["runs"]
    assert api.get("/api/v1/runs", params={"until": "1h"}).json()["runs"] == []


def test_runs_page_with_a_cursor_through_every_run_once(conn: psycopg.Connection[Any], api: TestClient) -> None:
    ids = seed(conn)
    seen: list[str] = []
    pages = 0
    params: dict[str, str] = {"limit": "3"}
    while True:
        page = api.get("/api/v1/runs", params=params).json()
        pages += 1
        seen += [run["id"] for run in page["runs"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "3", "cursor": page["next_cursor"]}
    assert seen == list(reversed(ids))
    assert pages == 3


def test_one_run_and_its_logs_after_a_cursor(conn: psycopg.Connection[Any], api: TestClient) -> None:
    ids = seed(conn)
    run = api.get(f"/api/v1/runs/{ids[1]}").json()
    assert (run["id"], run["status"], run["error"], run["trigger"]) == (ids[1], "failed", "boom", "schedule")
    first = api.get(f"/api/v1/runs/{ids[6]}/logs", params={"limit": 2}).json()
    assert [line["message"] for line in first["logs"]] == ["line 0", "line 1"]
    assert first["finished"] is True and first["status"] == "succeeded"
    rest = api.get(f"/api/v1/runs/{ids[6]}/logs", params={"after": first["next_after"]}).json()
    assert [line["message"] for line in rest["logs"]] == ["line 2"]
    empty = api.get(f"/api/v1/runs/{ids[6]}/logs", params={"after": rest["next_after"]}).json()
    assert empty["logs"] == [] and empty["next_after"] == rest["next_after"]


def test_unknown_jobs_and_runs_are_json_404s(api: TestClient) -> None:
    for path in (
        "/api/v1/jobs/nope",
        "/api/v1/runs/00000000-0000-0000-0000-000000000000",
        "/api/v1/runs/not-a-uuid",
        "/api/v1/runs/00000000-0000-0000-0000-000000000000/logs",
    ):
        answer = api.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/json"
        assert ("nope" in answer.json()["error"]) or ("unknown run" in answer.json()["error"])


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=bogus", "status 'bogus'"),
        ("trigger=cron", "trigger 'cron'"),
        ("since=yesterday", "since 'yesterday'"),
        ("until=soon", "until 'soon'"),
        ("since=1h&until=2h", "until must be later than since"),
        ("limit=0", "limit 0"),
        ("limit=many", "limit 'many'"),
        ("cursor=garbage", "cursor 'garbage'"),
        ("colour=red", "unknown filter 'colour'"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(api: TestClient, query: str, named: str) -> None:
    answer = api.get(f"/api/v1/runs?{query}")
    assert answer.status_code == 400
    assert named in answer.json()["error"]


def test_a_bad_count_or_after_is_a_400(api: TestClient) -> None:
    assert "count 500" in api.get("/api/v1/jobs/nightly?count=500").json()["error"]
    answer = api.get("/api/v1/runs/00000000-0000-0000-0000-000000000000/logs?after=x")
    assert answer.status_code == 400 and "after 'x'" in answer.json()["error"]


def test_a_postgres_outage_is_a_503_naming_it_and_the_server_serves_again_after(
    system: System, database_url: str, proxy: CuttableProxy
) -> None:
    system.configure([NIGHTLY])
    settings = Settings.from_env(system.env(SP_DATABASE_URL=through(database_url, proxy)))
    with TestClient(create_app(settings)) as api:
        assert api.get("/api/v1/jobs").status_code == 200
        proxy.cut()
        for path in ("/api/v1/jobs", "/api/v1/runs", "/api/v1/jobs/nightly"):
            answer = api.get(path)
            assert answer.status_code == 503, path
            assert answer.json()["service"] == "postgres"
            assert f"127.0.0.1:{proxy.port}" in answer.json()["error"]
        proxy.restore()
        assert api.get("/api/v1/jobs").status_code == 200
        assert api.get("/api/v1/runs").json() == {"runs": [], "next_cursor": None}


def test_a_redis_outage_is_a_503_naming_redis(system: System) -> None:
    settings = Settings.from_env(system.env(SP_REDIS_URL=f"redis://:secret@127.0.0.1:{free_port()}/0"))
    with TestClient(create_app(settings)) as api:
        answer = api.get("/api/v1/status")
    assert answer.status_code == 503
    assert answer.json()["service"] == "redis"
    assert "127.0.0.1" in answer.json()["error"] and "secret" not in answer.json()["error"]


def test_the_openapi_description_names_every_endpoint(api: TestClient) -> None:
    document = api.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/v1/jobs",
        "/api/v1/jobs/{name}",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/logs",
        "/api/v1/status",
        "/api/v1/jobs/{name}/run",
        "/api/v1/jobs/{name}/enable",
        "/api/v1/jobs/{name}/disable",
        "/api/v1/jobs/{name}/reset",
    }
    assert set(document["paths"]["/api/v1/jobs/{name}/run"]) == {"post"}
    filters = {param["name"] for param in document["paths"]["/api/v1/runs"]["get"]["parameters"]}
    assert filters == {"job", "status", "trigger", "since", "until", "limit", "cursor"}
