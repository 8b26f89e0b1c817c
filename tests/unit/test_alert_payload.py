"""What an alert says: the JSON payload, its Slack and Discord forms, the dashboard link, and the
retry pauses a delivery waits (pure: no services)."""

from __future__ import annotations

from datetime import UTC, datetime

from sp_scheduler.alert_payload import (
    build_payload,
    discord_body,
    event_for_alerts_test,
    headline,
    run_link,
    slack_body,
)
from sp_scheduler.ledger.retry import ALERT_RETRY_DELAYS
from sp_scheduler.store.alerts import OutboxEvent
from sp_scheduler.webhooks import RetryPolicy

AT = datetime(2026, 12, 5, 2, 3, 10, tzinfo=UTC)
RUN = "5b0e0f7e-8c57-5d0a-a0d1-6f1d8f6c2d11"


def event(kind: str = "failed", **detail: object) -> OutboxEvent:
    base = {"status": "failed", "scheduled_for": "2026-12-05T02:00:00+00:00", "message": "it broke",
            "error": "NotFound: bucket", "consecutive_failures": 1, "trigger": "schedule"}  # fmt: skip
    return OutboxEvent(7, "nightly_export", kind, RUN, {**base, **detail}, AT)  # type: ignore[arg-type]


def test_the_payload_carries_the_run_and_links_to_the_dashboard() -> None:
    payload = build_payload(event(), "https://dash.example/")
    assert payload["event"] == "failed" and payload["job"] == "nightly_export" and payload["run_id"] == RUN
    assert payload["alert_id"] == 7
    assert payload["at"] == AT.isoformat() and payload["error"] == "NotFound: bucket"
    assert payload["link"] == f"https://dash.example/runs/{RUN}"
    assert payload["details"] == {"trigger": "schedule"} and payload["test"] is False
    assert build_payload(event(), None)["link"] is None
    assert run_link("https://dash.example", None) is None


def test_headlines_say_what_happened_and_how_often() -> None:
    assert headline(build_payload(event(consecutive_failures=3), None)) == (
        "sp-scheduler: job 'nightly_export' failed (3 failures in a row)"
    )
    assert headline(build_payload(event("late", consecutive_failures=0), None)) == (
        "sp-scheduler: job 'nightly_export' is late: no success since its expected slot"
    )
    assert headline(build_payload(event(renotify=True), None)).endswith("failed (still)")


def test_slack_and_discord_bodies() -> None:
    payload = build_payload(event("recovered", status="succeeded"), "https://dash.example")
    slack = slack_body(payload)
    assert slack["text"].splitlines()[0] == "*sp-scheduler: job 'nightly_export' recovered*"
    assert f"https://dash.example/runs/{RUN}" in slack["text"]
    discord = discord_body(payload)
    (embed,) = discord["embeds"]
    assert embed["color"] == 0x2ECC71 and embed["url"] == f"https://dash.example/runs/{RUN}"
    assert discord["allowed_mentions"] == {"parse": []}
    assert discord_body(build_payload(event(), None))["embeds"][0]["color"] == 0xE74C3C


def test_a_test_alert_says_so() -> None:
    payload = build_payload(event_for_alerts_test("ops", AT), None, test=True)
    assert payload["test"] is True and headline(payload) == "sp-scheduler: job 'alerts-test' test alert"


def test_retry_pauses_follow_the_table_and_its_last_entry_repeats() -> None:
    policy = RetryPolicy(delays=ALERT_RETRY_DELAYS)
    assert [policy.backoff(n) for n in range(1, 8)] == [1.0, 5.0, 30.0, 120.0, 300.0, 300.0, 300.0]
    assert [RetryPolicy().backoff(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]  # the reports' doubling stays
