"""What an alert says: the JSON payload (docs/alerts.md, "Payload"), and the same as a Slack message
and a Discord embed. Pure: built from an outbox event, the dashboard's base URL and the time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sp_scheduler.store.alerts import OutboxEvent

SCHEMA_VERSION = 1
_HEADLINES = {
    "failed": "failed",
    "timeout": "timed out",
    "lost": "was lost (its worker stopped)",
    "missed": "missed its slot",
    "late": "is late: no success since its expected slot",
    "recovered": "recovered",
    "paused": "was paused after consecutive failures",
    "test": "test alert",
}
_COLOURS = {"recovered": 0x2ECC71, "late": 0xE67E22, "missed": 0xE67E22, "test": 0x3498DB}
_RED = 0xE74C3C
_DETAIL_MAX = 1500  # characters of error/message carried in chat messages


def run_link(web_url: str | None, run_id: str | None) -> str | None:
    """The dashboard's page of the run (`SP_WEB_URL` + `/runs/<id>`), when both are known."""
    if not web_url or not run_id:
        return None
    return f"{web_url.rstrip('/')}/runs/{run_id}"


def build_payload(event: OutboxEvent, web_url: str | None, *, test: bool = False) -> dict[str, Any]:
    """The generic webhook's JSON body, and what a command target reads on its stdin."""
    detail: Mapping[str, Any] = event.detail
    return {
        "version": SCHEMA_VERSION,
        "alert_id": event.id,  # the outbox row: the same for every attempt, so a receiver can deduplicate
        "event": event.event,
        "job": event.job_name,
        "run_id": event.run_id,
        "status": detail.get("status"),
        "scheduled_for": detail.get("scheduled_for"),
        "started_at": detail.get("started_at"),
        "finished_at": detail.get("finished_at"),
        "at": event.created_at.astimezone(UTC).isoformat(),
        "message": detail.get("message"),
        "error": detail.get("error"),
        "consecutive_failures": detail.get("consecutive_failures"),
        "renotify": bool(detail.get("renotify", False)),
        "details": {k: v for k, v in detail.items() if k not in _TOP_LEVEL},
        "link": run_link(web_url, event.run_id),
        "test": test,
    }


_TOP_LEVEL = frozenset(
    {"status", "scheduled_for", "started_at", "finished_at", "message", "error", "consecutive_failures", "renotify"}
)


def headline(payload: Mapping[str, Any]) -> str:
    """One line: `sp-scheduler: job 'x' failed (3 failures in a row)`."""
    kind = "test" if payload.get("test") else str(payload["event"])
    text = f"sp-scheduler: job '{payload['job']}' {_HEADLINES.get(kind, kind)}"
    failures = payload.get("consecutive_failures")
    if kind in ("failed", "timeout", "lost", "paused") and isinstance(failures, int) and failures > 1:
        text += f" ({failures} failures in a row)"
    if payload.get("renotify"):
        text += " (still)"
    return text


def _body_lines(payload: Mapping[str, Any]) -> list[str]:
    lines = []
    for label, key in (("slot", "scheduled_for"), ("run", "run_id"), ("at", "at")):
        if payload.get(key):
            lines.append(f"{label}: {payload[key]}")
    reason = payload.get("error") or payload.get("message")
    if reason:
        text = str(reason)
        lines.append(text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…")
    if payload.get("link"):
        lines.append(str(payload["link"]))
    return lines


def slack_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body (also understood by Mattermost, Rocket.Chat and the like)."""
    return {"text": "\n".join([f"*{headline(payload)}*", *_body_lines(payload)])}


def discord_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Discord webhook body: one embed, no pings whatever the job's error says."""
    kind = "test" if payload.get("test") else str(payload["event"])
    embed: dict[str, Any] = {
        "title": headline(payload)[:256],
        "description": "\n".join(_body_lines(payload))[:4096],
        "color": _COLOURS.get(kind, _RED),
        "timestamp": str(payload["at"]),
    }
    if payload.get("link"):
        embed["url"] = payload["link"]
    return {"username": "sp-scheduler", "embeds": [embed], "allowed_mentions": {"parse": []}}


def event_for_alerts_test(target: str, now: datetime) -> OutboxEvent:
    """What `alerts test TARGET` sends: an event of no job run, marked as a test."""
    return OutboxEvent(
        id=0,
        job_name="alerts-test",
        event="failed",
        run_id=None,
        detail={"status": "test", "message": f"test alert to target '{target}' from sp-scheduler alerts test"},
        created_at=now,
    )
