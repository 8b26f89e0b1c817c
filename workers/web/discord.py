"""Posting one embed to a Discord webhook, within Discord's limits.

The delivery itself (429 and 5xx retries, the URL kept out of every message and log line) is
sp_scheduler/webhooks.py's, shared with the scheduler's alert notifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sp_scheduler.webhooks import (
    Delivery,
    Logger,
    RetryPolicy,
    WebhookError,
    check_webhook_url,
    post_json,
    webhook_host,
)

__all__ = [
    "BLUE",
    "GREEN",
    "ORANGE",
    "RED",
    "Delivery",
    "Embed",
    "EmbedField",
    "RetryPolicy",
    "WebhookError",
    "check_webhook_url",
    "post_embed",
    "webhook_host",
]

# Discord's documented embed limits (characters).
TITLE_MAX, DESCRIPTION_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX, FOOTER_MAX = 256, 4096, 256, 1024, 2048
FIELDS_MAX, EMBED_TOTAL_MAX = 25, 6000
GREEN, ORANGE, RED, BLUE = 0x2ECC71, 0xE67E22, 0xE74C3C, 0x3498DB


@dataclass(frozen=True, slots=True)
class EmbedField:
    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True, slots=True)
class Embed:
    """A Discord embed: what the report jobs compile, then post or render as text."""

    title: str
    description: str
    timestamp: datetime
    color: int = BLUE
    fields: tuple[EmbedField, ...] = ()
    footer: str = ""

    def payload(self, username: str = "sp-scheduler") -> dict[str, Any]:
        """The webhook request body, clipped to Discord's limits (an over-long embed is refused whole)."""
        budget = EMBED_TOTAL_MAX
        title = _clip(self.title, TITLE_MAX)
        footer = _clip(self.footer, FOOTER_MAX)
        budget -= len(title) + len(footer)
        fields: list[dict[str, Any]] = []
        for item in self.fields[:FIELDS_MAX]:
            name, value = _clip(item.name, FIELD_NAME_MAX), _clip(item.value or "-", FIELD_VALUE_MAX)
            if len(name) + len(value) > budget - 100:  # leave room for a short description
                break
            budget -= len(name) + len(value)
            fields.append({"name": name, "value": value, "inline": item.inline})
        embed: dict[str, Any] = {
            "title": title,
            "description": _clip(self.description, min(DESCRIPTION_MAX, max(budget, 1))),
            "color": self.color,
            "timestamp": self.timestamp.astimezone(UTC).isoformat(timespec="seconds"),
            "fields": fields,
        }
        if footer:
            embed["footer"] = {"text": footer}
        # No pings: a report must never mention @everyone because a page title said so.
        return {"username": username, "embeds": [embed], "allowed_mentions": {"parse": []}}

    def as_text(self) -> str:
        """The same report as plain text, for the run's result and log when no webhook is configured."""
        lines = [self.title, self.description, ""]
        for item in self.fields:
            lines += [f"{item.name}:", *[f"  {line}" for line in item.value.splitlines()]]
        if self.footer:
            lines += ["", self.footer]
        return "\n".join(lines).strip() + "\n"


async def post_embed(url: str, embed: Embed, *, logger: Logger, policy: RetryPolicy | None = None) -> Delivery:
    """POST the embed; retries per `policy` (sp_scheduler/webhooks.py); WebhookError when it cannot be delivered."""
    return await post_json(url, embed.payload(), logger=logger, policy=policy, who="Discord")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
