"""The dashboard's actions: read-only by default, refused without the token (or its session and CSRF
token), and recorded with their actor as the CLI records them when done."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from sp_scheduler.dashboard.access import Access
from sp_scheduler.dashboard.app import create_app
from sp_scheduler.settings import Settings
from sp_scheduler.store import get_override, override_changes, set_enabled
from tests.integration.conftest import System
from tests.integration.test_dashboard_api import NIGHTLY

TOKEN = "t0ken-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}", "X-Actor": "ops"}
ANALYTICS = "content_analytics_aggregation"  # registered (declares parameters), not in the test config


@pytest.fixture
def acting(system: System, conn: psycopg.Connection[Any]) -> Iterator[TestClient]:
    system.configure([NIGHTLY])
    app = create_app(Settings.from_env(system.env()), Access(actions=True, token=TOKEN))
    with TestClient(app) as client:
        yield client


def test_a_read_only_dashboard_refuses_every_action(system: System, conn: psycopg.Connection[Any]) -> None:
    system.configure([NIGHTLY])
    with TestClient(create_app(Settings.from_env(system.env()))) as client:
        for action in ("run", "enable", "disable", "reset"):
            answer = client.post(f"/api/v1/jobs/nightly/{action}", headers=BEARER, json={})
            assert answer.status_code == 403, action
            assert "read-only" in answer.json()["error"]
        assert 'id="actions"' not in client.get("/jobs/nightly").text
        assert client.get("/login").status_code == 403
    assert get_override(conn, "nightly") is None


def test_api_actions_need_the_bearer_token(acting: TestClient, conn: psycopg.Connection[Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = acting.post("/api/v1/jobs/nightly/disable", headers=headers, json={"reason": "x"})
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in answer.text
    assert get_override(conn, "nightly") is None
    assert override_changes(conn, "nightly") == []


def test_api_disable_enable_reset_are_recorded_with_their_actor(
    acting: TestClient, conn: psycopg.Connection[Any]
) -> None:
    answer = acting.post("/api/v1/jobs/nightly/disable", headers=BEARER, json={"reason": "db work", "for": "2h"})
    assert answer.status_code == 200
    override = get_override(conn, "nightly")
    assert override is not None and not override.enabled
    assert (override.actor, override.reason) == ("ops via web", "db work")
    assert override.expires_at is not None
    assert answer.json()["override"] == override.to_dict()
    shown = acting.get("/api/v1/jobs/nightly").json()
    assert shown["enabled"] is False and shown["enabled_source"]["actor"] == "ops via web"

    assert acting.post("/api/v1/jobs/nightly/enable", headers=BEARER).json()["override"]["enabled"] is True
    cleared = acting.post("/api/v1/jobs/nightly/reset", headers=BEARER, json={"reason": "done"}).json()
    assert cleared["cleared"]["enabled"] is True
    assert acting.post("/api/v1/jobs/nightly/reset", headers=BEARER).json()["cleared"] is None
    trail = [(change.action, change.actor) for change in reversed(override_changes(conn, "nightly", limit=10))]
    assert trail == [("disable", "ops via web"), ("enable", "ops via web"), ("reset", "ops via web")]


def test_api_action_input_is_checked_as_the_cli_checks_it(acting: TestClient, conn: psycopg.Connection[Any]) -> None:
    bad = [
        ("disable", {"for": "soon"}, "--for 'soon'"),
        ("disable", {"for": "1h", "until": "2099-01-01T00:00"}, "--for and --until"),
        ("disable", {"until": "2001-01-01T00:00"}, "in the past"),
        ("run", {"params": {"full": "maybe"}}, "full"),
        ("run", {"params": {"nope": "1"}}, "nope"),
        ("run", {"params": ["full=yes"]}, "params: expected a JSON object"),
    ]
    for action, body, named in bad:
        answer = acting.post(f"/api/v1/jobs/{ANALYTICS}/{action}", headers=BEARER, json=body)
        assert answer.status_code == 400, (action, body, answer.text)
        assert named in answer.json()["error"]
    assert acting.post("/api/v1/jobs/nope/run", headers=BEARER).status_code == 404
    assert acting.get("/api/v1/runs", params={"job": ANALYTICS}).json()["runs"] == []


def test_api_run_now_queues_a_manual_run_with_checked_params(acting: TestClient, conn: psycopg.Connection[Any]) -> None:
    answer = acting.post(f"/api/v1/jobs/{ANALYTICS}/run", headers=BEARER, json={"params": {"full": "yes"}})
    assert answer.status_code == 202
    run = acting.get(f"/api/v1/runs/{answer.json()['run_id']}").json()
    assert (run["job_name"], run["trigger"], run["status"]) == (ANALYTICS, "manual", "queued")
    assert run["params"]["full"] is True


def test_api_run_now_of_a_disabled_job_needs_force(acting: TestClient, conn: psycopg.Connection[Any]) -> None:
    set_enabled(conn, "nightly", enabled=False, actor="alice", reason="broken")
    refused = acting.post("/api/v1/jobs/nightly/run", headers=BEARER, json={})
    assert refused.status_code == 409
    assert "disabled by alice (broken)" in refused.json()["error"]
    assert acting.post("/api/v1/jobs/nightly/run", headers=BEARER, json={"force": True}).status_code == 202


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def test_page_actions_need_a_login_and_the_forms_csrf_token(acting: TestClient, conn: psycopg.Connection[Any]) -> None:
    assert "Refused without the token" in acting.get("/jobs/nightly").text
    refused = acting.post("/jobs/nightly/disable", data={"reason": "x", "csrf": "0" * 64})
    assert refused.status_code == 401 and "log in" in refused.text
    wrong = acting.post("/login", data={"name": "alice", "token": "wrong"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text
    logged_in = acting.post("/login", data={"name": "alice", "token": TOKEN, "next": "/jobs/nightly"},
                            follow_redirects=False)  # fmt: skip
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/jobs/nightly"
    cookie = logged_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    page = acting.get("/jobs/nightly").text
    assert 'id="run-form"' in page
    forged = acting.post("/jobs/nightly/disable", data={"reason": "x", "csrf": "f" * 64})
    assert forged.status_code == 401 and "CSRF" in forged.text
    assert get_override(conn, "nightly") is None

    done = acting.post("/jobs/nightly/disable", data={"reason": "maintenance", "csrf": csrf_of(page)},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303
    override = get_override(conn, "nightly")
    assert override is not None and (override.enabled, override.actor) == (False, "alice via web")
    ran = acting.post("/jobs/nightly/run", data={"params": "", "force": "on", "csrf": csrf_of(page)},
                      follow_redirects=False)  # fmt: skip
    assert ran.status_code == 303 and "/runs/" in ran.headers["location"]
    reset = acting.post("/jobs/nightly/reset", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert reset.status_code == 303 and get_override(conn, "nightly") is None


def test_a_login_never_redirects_off_the_site(acting: TestClient) -> None:
    answer = acting.post("/login", data={"name": "a", "token": TOKEN, "next": "//evil.example/"},
                         follow_redirects=False)  # fmt: skip
    assert answer.headers["location"] == "http://testserver/"
