"""The report jobs post a Discord embed to a webhook (here a local stand-in) and survive 429s and 500s."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.receiver import Receiver, Reply
from workers.web.discord import GREEN, RED

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "T0ken-never-logged"
JOBS = ("daily_traffic_report", "daily_activity_summary")
FAST_RETRIES = ("retry_base_seconds=0.01",)


@pytest.fixture
def webhook_factory() -> Iterator[Any]:
    """Local stand-ins for Discord: each answers from its script and records every request."""
    servers: list[Receiver] = []

    def start(*replies: Reply) -> Receiver:
        hook = Receiver(list(replies), token=SECRET, prefix="/api/webhooks/1234/").start()
        servers.append(hook)
        return hook

    yield start
    for hook in servers:
        hook.stop()


@pytest.fixture(autouse=True)
def _configured(system: System) -> None:
    system.configure(
        [{"name": name, "extension": "web", "job": name, "schedule": "", "enabled": True} for name in JOBS]
    )


def report(system: System, job: str, url: str | None, *params: str) -> tuple[int, dict[str, Any]]:
    args = [arg for param in (f"now={NOW.isoformat()}", *params) for arg in ("-p", param)]
    env = {"SP_DISCORD_WEBHOOK_URL": url or ""}
    result = system.cli("jobs", "run", job, "--local", "--json", *args, **env)
    assert result.stdout.startswith("["), result.output
    (record,) = json.loads(result.stdout)
    return result.exit_code, record


def logged(system: System, job: str) -> list[tuple[str, str]]:
    with psycopg.connect(system.database_url) as conn:
        rows = conn.execute("SELECT message, fields::text FROM sp_logs WHERE job_name = %s ORDER BY id", (job,))
        return [(message, fields) for message, fields in rows.fetchall()]


def seed_traffic(conn: psycopg.Connection[Any]) -> None:
    """Now: hello 6 views (3 visitors), about 3 views (2 visitors). The day before: 6 views, 2 visitors."""
    ids = {}
    for slug, kind, title in (("hello", "blog", "Hello"), ("about", "page", "About")):
        ids[slug] = conn.execute(
            "INSERT INTO content (slug, kind, title, body, content_hash) VALUES (%s, %s, %s, '', 'x') RETURNING id",
            (slug, kind, title),
        ).fetchone()[0]  # type: ignore[index]
    views = [("hello", f"v{n}", timedelta(hours=n)) for n in (1, 2, 3) for _ in range(2)]
    views += [
        ("about", "v1", timedelta(hours=4)),
        ("about", "v4", timedelta(hours=5)),
        ("about", "v4", timedelta(hours=6)),
    ]
    views += [("hello", "v5", timedelta(hours=30))] * 4 + [("about", "v6", timedelta(hours=40))] * 2
    views += [("hello", "v7", timedelta(days=3))]  # older than both windows
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO engagement_events (content_id, session_id, visitor_id, viewed_at, time_on_page_ms)"
            " VALUES (%s, %s, %s, %s, 30000)",
            [(ids[slug], f"s-{visitor}", visitor, NOW - age) for slug, visitor, age in views],
        )


def test_the_traffic_report_survives_a_429_and_a_500(
    system: System, webhook_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with psycopg.connect(system.database_url, autocommit=True) as conn:
        seed_traffic(conn)
    rate_limited = (429, {"Content-Type": "application/json"}, b'{"message": "slow down", "retry_after": 0.05}')
    hook = webhook_factory(rate_limited, (500, {}, b"oops"), (204, {}, b""))

    code, record = report(system, "daily_traffic_report", hook.url, *FAST_RETRIES)
    assert code == 0 and record["status"] == "succeeded", record
    assert record["message"] == "report posted to 127.0.0.1 in 3 attempt(s)"
    wait_until(hook.settled, message="the webhook saw all three attempts")

    assert len(hook.requests) == 3 and all(r["path"] == f"/api/webhooks/1234/{SECRET}" for r in hook.requests)
    assert all(r["type"] == "application/json" for r in hook.requests)
    first, *others = hook.payloads()
    assert all(payload == first for payload in others), "every retry sends the same report"
    assert first == {
        "username": "sp-scheduler",
        "allowed_mentions": {"parse": []},
        "embeds": [
            {
                "title": "Traffic report: last 24 hours",
                "description": "Up to 2025-03-01 12:00 UTC, compared with the 24 hours before.",
                "color": GREEN,
                "timestamp": "2025-03-01T12:00:00+00:00",
                "fields": [
                    {"name": "Views", "value": "9 (+50% vs previous)", "inline": True},
                    {"name": "Visitors", "value": "4 (+100% vs previous)", "inline": True},
                    {"name": "Sessions", "value": "4 (+100% vs previous)", "inline": True},
                    {"name": "Avg. time on page", "value": "30s", "inline": True},
                    {
                        "name": "Top content",
                        "value": "1. Hello (/blog/hello/): 6 views, 3 visitors\n"
                        "2. About (/about/): 3 views, 2 visitors",
                        "inline": False,
                    },
                ],
                "footer": {"text": "daily_traffic_report · sp-scheduler"},
            }
        ],
    }

    lines = logged(system, "daily_traffic_report")
    retries = [fields for message, fields in lines if message == "report not delivered, retrying"]
    assert len(retries) == 2 and "HTTP 429 (retry after 0.05 s)" in retries[0] and "HTTP 500" in retries[1]
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records), "httpx's own log line is there"
    everything = caplog.text + json.dumps(lines) + json.dumps(record)
    assert SECRET not in everything and "/api/webhooks" not in everything, "the webhook URL is never logged"


def test_the_activity_summary_covers_runs_users_sessions_and_content(system: System, webhook_factory: Any) -> None:
    with psycopg.connect(system.database_url, autocommit=True) as conn:
        recent, old = NOW - timedelta(hours=2), NOW - timedelta(days=3)
        runs = [("a", "succeeded", recent), ("a", "failed", recent), ("b", "timeout", recent), ("b", "failed", old)]
        for job, status, when in runs:
            conn.execute(
                "INSERT INTO sp_job_runs (id, job_name, trigger, status, created_at)"
                " VALUES (gen_random_uuid(), %s, 'manual', %s, %s)",
                (job, status, when),
            )
        user = conn.execute(
            "INSERT INTO users (email, created_at, last_seen_at) VALUES ('a@example.test', %s, %s) RETURNING id",
            (recent, recent),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO users (is_anonymous, created_at) VALUES (true, %s), (true, %s)", (recent, old))
        conn.execute("INSERT INTO user_sessions (user_id, created_at) VALUES (%s, %s)", (user, recent))
        conn.execute(
            "INSERT INTO content (slug, kind, title, body, content_hash, published_at, created_at, updated_at)"
            " VALUES ('news', 'blog', 'News', '', 'x', %s, %s, %s)",
            (recent, recent, recent),
        )
    hook = webhook_factory((204, {}, b""))
    code, record = report(system, "daily_activity_summary", hook.url)
    assert code == 0, record
    wait_until(hook.settled, message="the webhook received the summary")
    (payload,) = hook.payloads()
    embed = payload["embeds"][0]
    assert embed["title"] == "Activity summary: last 24 hours" and embed["color"] == RED
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Job runs"] == "3 (1 failed, 1 succeeded, 1 timeout)"
    assert fields["Failing jobs"] == "a: 1\nb: 1"
    assert fields["Users"] == "2 new, 1 registered, 1 active, 3 in all"
    assert fields["Sessions"] == "1 started, 0 ended, 1 open now"
    assert fields["Content"] == "1 published, 0 updated, 1 live\nNews (/blog/news/)"


def test_without_a_webhook_the_report_lands_in_the_result(system: System) -> None:
    code, record = report(system, "daily_traffic_report", None)
    assert code == 0 and record["status"] == "succeeded", record
    assert record["message"].startswith("SP_DISCORD_WEBHOOK_URL is not set; report not posted:\n")
    assert "Traffic report: last 24 hours" in record["message"] and "No page views in this period." in record["message"]


@pytest.mark.parametrize(
    ("replies", "params", "requests", "reason"),
    [
        ([(500, {}, b"")] * 3, ("max_attempts=3",), 3, "gave up after 3 attempt(s): HTTP 500; HTTP 500; HTTP 500"),
        ([(404, {}, b'{"message": "Unknown Webhook", "code": 10015}')], (), 1, "HTTP 404"),
        ([(429, {"Retry-After": "120"}, b"")], (), 1, "rate limited for 120 s, longer than the 60 s accepted"),
    ],
    ids=["5xx-until-attempts-run-out", "4xx-is-final", "429-too-long"],
)
def test_undeliverable_reports_fail_the_run_without_naming_the_url(
    system: System, webhook_factory: Any, replies: list[Reply], params: tuple[str, ...], requests: int, reason: str
) -> None:
    hook = webhook_factory(*replies)
    code, record = report(system, "daily_traffic_report", hook.url, *FAST_RETRIES, *params)
    assert code != 0 and record["status"] == "failed"
    assert record["message"].startswith("report not posted to 127.0.0.1: ") and reason in record["message"]
    assert len(hook.requests) == requests
    assert SECRET not in json.dumps(logged(system, "daily_traffic_report")) + json.dumps(record)
