"""The dashboard's pages against real Postgres and Redis: what each shows, and its 404 and 503 pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from sp_scheduler import keys
from sp_scheduler.cron import CronExpression
from sp_scheduler.dashboard.app import create_app
from sp_scheduler.settings import Settings
from sp_scheduler.store import CODE_SCHEMA_VERSION, LogRecordRow, finish_run, set_enabled
from tests.integration.conftest import System
from tests.integration.test_dashboard_api import BY_HAND, NIGHTLY, seed
from tests.support import free_port
from tests.support.ledger import claim
from tests.support.proxy import CuttableProxy, through

BERLIN = {**NIGHTLY, "name": "berlin", "schedule": "0 30 2 * * *", "timezone": "Europe/Berlin"}


@pytest.fixture
def pages(system: System, conn: psycopg.Connection[Any]) -> Iterator[TestClient]:
    system.configure([NIGHTLY, BY_HAND, BERLIN])
    with TestClient(create_app(Settings.from_env(system.env()))) as client:
        yield client


def strip_of(html: str, job: str) -> list[str]:
    """The statuses in a job's strip on the jobs page, oldest first."""
    row = re.search(rf'<tr id="job-{job}".*?</tr>', html, re.S)
    assert row is not None, job
    strip = re.search(r'<td class="strip">(.*?)</td>', row.group(0), re.S)
    assert strip is not None
    return re.findall(r'data-status="(\w+)"', strip.group(1))


def test_the_jobs_page_shows_state_source_lateness_and_the_strip(
    conn: psycopg.Connection[Any], pages: TestClient
) -> None:
    seed(conn)
    set_enabled(conn, "by_hand", enabled=False, actor="alice", reason="maintenance")
    html = pages.get("/").text
    assert strip_of(html, "nightly") == ["succeeded", "failed"] * 3
    assert strip_of(html, "by_hand") == ["succeeded", "succeeded"]
    assert strip_of(html, "berlin") == []
    nightly = re.search(r'<tr id="job-nightly".*?</tr>', html, re.S)
    assert nightly is not None
    assert "LATE" not in nightly.group(0)  # its last success has just been recorded
    # Three days without a success for a daily job: late, by the rule of `jobs status`.
    conn.execute("UPDATE sp_job_runs SET finished_at = finished_at - interval '3 days' WHERE job_name = 'nightly'")
    nightly = re.search(r'<tr id="job-nightly".*?</tr>', pages.get("/").text, re.S)
    assert nightly is not None
    assert "LATE" in nightly.group(0) and 'class="late"' in nightly.group(0)
    by_hand = re.search(r'<tr id="job-by_hand".*?</tr>', html, re.S)
    assert by_hand is not None and "<td>no</td>" in by_hand.group(0) and "<td>override</td>" in by_hand.group(0)
    berlin = re.search(r'<tr id="job-berlin".*?</tr>', html, re.S)
    assert berlin is not None and "LATE" not in berlin.group(0)  # never ran: not late (yet)
    assert '<span class="reading">every day at 02:30:00</span>' in berlin.group(0)
    expected = CronExpression.parse("0 30 2 * * *", "Europe/Berlin").next_after(datetime.now(UTC))
    assert expected.isoformat(sep=" ") in berlin.group(0)  # in the job's own zone, with its offset


def test_a_failed_run_shows_in_the_strip(conn: psycopg.Connection[Any], pages: TestClient) -> None:
    seed(conn)
    before = strip_of(pages.get("/").text, "by_hand")
    run = claim(conn, "by_hand", None, trigger="manual").record
    assert run is not None
    finish_run(conn, run.id, status="failed", message="no", items_processed=0, items_failed=1, duration_ms=3)
    assert strip_of(pages.get("/").text, "by_hand") == [*before, "failed"]


def test_the_job_page_compares_sources_and_lists_ten_fire_times(
    conn: psycopg.Connection[Any], pages: TestClient
) -> None:
    html = pages.get("/jobs/berlin").text
    fires = re.findall(r"<li>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d)</li>", html)
    cron = CronExpression.parse("0 30 2 * * *", "Europe/Berlin")
    now = datetime.now(UTC)
    expected = []
    for _ in range(10):
        now = cron.next_after(now)
        expected.append(now.isoformat(sep=" "))
    assert fires == expected
    assert '<code>0 30 2 * * *</code>: <span class="reading">every day at 02:30:00</span> in Europe/Berlin' in html
    assert 'id="override">none' in html
    set_enabled(conn, "berlin", enabled=False, actor="bob", reason="holiday")
    html = pages.get("/jobs/berlin").text
    assert re.search(r'id="override">disabled by bob at .* until reset: holiday', html)
    assert 'id="enabled">no (from override)' in html
    assert re.findall(r"<li>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d)</li>", html) == []


def test_the_job_page_filters_pages_and_plots_runs(conn: psycopg.Connection[Any], pages: TestClient) -> None:
    ids = seed(conn)
    html = pages.get("/jobs/nightly").text
    assert len(re.findall(r'<tr class="run ', html)) == 6
    assert "<svg" in html and 'class="duration"' in html and 'class="lateness"' in html
    failed = pages.get("/jobs/nightly", params={"status": "failed"}).text
    assert re.findall(r'<tr class="run (\w+)"', failed) == ["failed"] * 3
    first = pages.get("/jobs/nightly", params={"limit": 4}).text
    assert [f"/runs/{run_id}" in first for run_id in reversed(ids[:6])] == [True] * 4 + [False] * 2
    link = re.search(r'id="next-page" href="\?([^"]+)"', first)
    assert link is not None
    second = pages.get(f"/jobs/nightly?{link.group(1).replace('&amp;', '&')}").text
    assert [f"/runs/{run_id}" in second for run_id in reversed(ids[:6])] == [False] * 4 + [True] * 2
    assert 'id="next-page"' not in second
    assert pages.get("/jobs/nightly", params={"since": "tomorrow"}).status_code == 400


def test_the_run_page_shows_every_field_the_error_and_the_log_lines(
    conn: psycopg.Connection[Any], pages: TestClient
) -> None:
    run = claim(conn, "nightly", datetime(2025, 2, 1, 3, tzinfo=UTC)).record
    assert run is not None
    lines = [LogRecordRow(datetime.now(UTC), "ERROR", "sp.job", "it broke <badly>", "nightly", run.id, {})]
    finish_run(conn, run.id, status="failed", message="exploded", items_processed=0, items_failed=0,
               duration_ms=7, error="ValueError: nope", traceback="Traceback (most recent call last):\n  x",
               logs=lines)  # fmt: skip
    html = pages.get(f"/runs/{run.id}").text
    for field in ("scheduled_for", "started_at", "finished_at", "worker", "attempt", "lateness_ms", "params"):
        assert f"<th>{field}</th>" in html
    assert 'id="run-error">ValueError: nope' in html
    assert "Traceback (most recent call last)" in html
    assert "it broke &lt;badly&gt;" in html  # escaped, never markup
    assert 'data-finished="true"' in html


def test_the_system_page_shows_beat_workers_queues_and_schema(
    system: System, redis_url: str, pages: TestClient
) -> None:
    import redis  # noqa: PLC0415 -- only this test writes beat's keys itself

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    now = datetime.now(UTC).timestamp()
    client.hset(keys.BEAT_LEADER, mapping={"id": "host-a:1:x", "last_tick": str(now)})
    client.zadd(keys.BEAT_INSTANCES, {"host-a:1:x": now, "host-b:2:y": now})
    client.zadd(keys.WORKERS_SEEN, {"w1@host-c": now})
    html = pages.get("/system").text
    assert 'id="beat-leader">host-a:1:x' in html
    assert "host-b:2:y" in html and 'id="workers">w1@host-c' in html
    assert f'id="schema">{CODE_SCHEMA_VERSION}<' in html
    assert re.search(r"\w+: \d+ waiting", html)


def test_the_system_page_lists_the_jobs_alert_states(conn: psycopg.Connection[Any], pages: TestClient) -> None:
    assert 'id="alerts">Every job is ok.' in pages.get("/system").text
    conn.execute("INSERT INTO sp_alert_state (job_name, state, consecutive_failures) VALUES ('nightly', 'failing', 3)")
    conn.execute("INSERT INTO sp_alert_state (job_name, state) VALUES ('berlin', 'ok')")
    html = pages.get("/system").text
    table = re.search(r'<table id="alerts">.*?</table>', html, re.S)
    assert table is not None
    assert "nightly" in table.group(0) and "failing (3)" in table.group(0)
    assert "berlin" not in table.group(0)  # an ok job is not listed
    assert 'id="alert-delivery">0 retrying, 0 given up' in html


def test_unknown_jobs_and_runs_are_404_pages(pages: TestClient) -> None:
    for path in ("/jobs/nope", "/runs/00000000-0000-0000-0000-000000000000", "/runs/bogus"):
        answer = pages.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert 'id="error-message"' in answer.text


def test_a_postgres_outage_is_a_503_page_naming_it(system: System, database_url: str, proxy: CuttableProxy) -> None:
    system.configure([NIGHTLY])
    settings = Settings.from_env(system.env(SP_DATABASE_URL=through(database_url, proxy)))
    with TestClient(create_app(settings)) as pages:
        assert pages.get("/").status_code == 200
        proxy.cut()
        answer = pages.get("/")
        assert answer.status_code == 503
        assert f"Postgres at 127.0.0.1:{proxy.port}" in answer.text
        assert "The Postgres database does not answer" in answer.text
        proxy.restore()
        assert pages.get("/").status_code == 200


def test_a_redis_outage_is_a_503_system_page(system: System) -> None:
    settings = Settings.from_env(system.env(SP_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    with TestClient(create_app(settings)) as pages:
        answer = pages.get("/system")
    assert answer.status_code == 503 and "The Redis server does not answer" in answer.text


def test_the_pages_stylesheet_and_script_are_served(pages: TestClient) -> None:
    html = pages.get("/").text
    for asset in [*re.findall(r'(?:href|src)="http://testserver(/static/[^"]+)"', html), "/static/live-logs.js"]:
        answer = pages.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["content-type"].split(";")[0] in {"text/css", "text/javascript", "application/javascript"}


def test_behind_a_path_prefix_links_and_errors_keep_it(system: System, conn: psycopg.Connection[Any]) -> None:
    system.configure([NIGHTLY])
    app = create_app(Settings.from_env(system.env()))
    with TestClient(app, root_path="/scheduler") as client:
        html = client.get("/scheduler/").text
        assert 'href="/scheduler/jobs/nightly"' in html
        assert 'href="http://testserver/scheduler/static/dashboard.css"' in html
        missing = client.get("/scheduler/api/v1/jobs/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        assert client.get("/scheduler/api/v1/openapi.json").json()["servers"] == [{"url": "/scheduler"}]
