"""Posting one embed to a Discord webhook: within Discord's limits, through rate limits and outages.

A webhook URL is a credential (its path carries the token), so it is never logged, never put in a
message, and scrubbed from httpx's own request log lines while a post is under way. 429 answers are
honoured (`retry_after` in the body, else the headers); 5xx answers and network errors are retried
with exponential backoff; any other 4xx is final.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sp_scheduler.redact import capability_secret, redact_capability, url_host

if TYPE_CHECKING:  # httpx is imported when a report is posted, not whenever the extension is loaded
    import httpx

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

# Discord's documented embed limits (characters).
TITLE_MAX, DESCRIPTION_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX, FOOTER_MAX = 256, 4096, 256, 1024, 2048
FIELDS_MAX, EMBED_TOTAL_MAX = 25, 6000
GREEN, ORANGE, RED, BLUE = 0x2ECC71, 0xE67E22, 0xE74C3C, 0x3498DB


class WebhookError(Exception):
    """The report could not be delivered; the message never contains the webhook URL."""


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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts in all, backoff for 5xx/network errors, the longest 429 wait accepted."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    timeout: float = 10.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(slots=True)
class Delivery:
    """How a successful post went."""

    attempts: int = 0
    failures: list[str] = field(default_factory=list)  # why each earlier attempt did not get through


def webhook_host(url: str) -> str:
    """The part of a webhook URL that may be shown: its host."""
    return url_host(url)


def check_webhook_url(url: str) -> None:
    """A usable http(s) URL with a host; the error names the problem, not the URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WebhookError("the webhook URL is not an http(s) URL with a host")


async def post_embed(url: str, embed: Embed, *, logger: Logger, policy: RetryPolicy | None = None) -> Delivery:
    """POST the embed; retries per `policy`; WebhookError when it cannot be delivered."""
    import httpx  # noqa: PLC0415 -- config validate imports job modules; httpx only to post

    policy = policy or RetryPolicy()
    check_webhook_url(url)
    host = webhook_host(url)
    delivery = Delivery()
    scrub = _Scrub(url)
    logging.getLogger("httpx").addFilter(scrub)
    try:
        async with httpx.AsyncClient(timeout=policy.timeout, follow_redirects=False) as client:
            while True:
                delivery.attempts += 1
                delay, reason = await _attempt(client, url, embed, policy, delivery.attempts)
                if delay is None:
                    logger.info("report posted", extra={"host": host, "attempts": delivery.attempts})
                    return delivery
                delivery.failures.append(reason)
                if delivery.attempts >= policy.max_attempts:
                    raise WebhookError(f"gave up after {delivery.attempts} attempt(s): {'; '.join(delivery.failures)}")
                logger.warning(
                    "report not delivered, retrying",
                    extra={"host": host, "attempt": delivery.attempts, "reason": reason, "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
    finally:
        logging.getLogger("httpx").removeFilter(scrub)


async def _attempt(
    client: httpx.AsyncClient, url: str, embed: Embed, policy: RetryPolicy, attempt: int
) -> tuple[float | None, str]:
    """(None, "") when delivered; (seconds to wait, why) when worth retrying; raises when final."""
    import httpx  # noqa: PLC0415 -- config validate imports job modules; httpx only to post

    try:
        response = await client.post(url, json=embed.payload())
    except httpx.TransportError as exc:  # includes timeouts; the exception text may hold the URL
        return policy.backoff(attempt), f"network error ({type(exc).__name__})"
    if response.is_success:
        return None, ""
    if response.status_code == 429:
        wait = _retry_after(response)
        if wait is None:
            wait = policy.backoff(attempt)
        if wait > policy.max_retry_after:
            raise WebhookError(f"rate limited for {wait:g} s, longer than the {policy.max_retry_after:g} s accepted")
        return wait, f"HTTP 429 (retry after {wait:g} s)"
    if response.status_code >= 500:
        return policy.backoff(attempt), f"HTTP {response.status_code}"
    raise WebhookError(f"Discord refused the report: HTTP {response.status_code} {_excerpt(response, url)}".rstrip())


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: the JSON body's `retry_after` (Discord), else X-RateLimit-Reset-After or Retry-After."""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
            return max(0.0, float(body["retry_after"]))
    except ValueError:
        pass
    for header in ("x-ratelimit-reset-after", "retry-after"):
        try:
            return max(0.0, float(response.headers[header]))
        except (KeyError, ValueError):
            continue
    return None


def _excerpt(response: httpx.Response, url: str) -> str:
    text = " ".join(response.text.split())[:200]
    return redact_capability(text, url)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


class _Scrub(logging.Filter):
    """Rewrites httpx's "HTTP Request: POST <url>" lines so the webhook's path (its token) never reaches a log."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.secret = capability_secret(url)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_capability(str(arg), self.url) if self.secret in str(arg) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact_capability(record.msg, self.url)
        return True
