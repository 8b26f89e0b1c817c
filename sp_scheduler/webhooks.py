"""Posting JSON to a webhook through rate limits and outages, without ever showing its URL.

A webhook URL is a credential (its path carries the token), so it is never logged, never put in a
message, and scrubbed from httpx's own request log lines while a post is under way. 429 answers are
honoured (`retry_after` in the body, else the headers); 5xx answers and network errors are worth
another attempt after a backoff; any other 4xx is final. Used by the Discord reports of the web
extension (`post_json`, which waits and retries itself) and by the alert notifier (`post_once`,
whose retries are rows in the outbox, so a restart loses none).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sp_scheduler.redact import capability_secret, redact_capability, url_host

if TYPE_CHECKING:  # httpx is imported when something is posted, not whenever this module is
    import httpx

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class WebhookError(Exception):
    """The post could not be delivered and retrying will not help; the message never holds the URL."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts in all, backoff for 5xx/network errors, the longest 429 wait accepted."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    timeout: float = 10.0
    delays: tuple[float, ...] = ()  # a table of pauses (its last repeats) instead of the doubling backoff

    def backoff(self, attempt: int) -> float:
        if self.delays:
            return self.delays[min(attempt, len(self.delays)) - 1]
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


def judge(response: httpx.Response, url: str, policy: RetryPolicy, attempt: int, who: str) -> tuple[float | None, str]:
    """(None, "") when delivered; (seconds to wait, why) when worth retrying; WebhookError when final."""
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
    raise WebhookError(f"{who} refused it: HTTP {response.status_code} {_excerpt(response, url)}".rstrip())


def post_once(
    client: httpx.Client, url: str, payload: Mapping[str, Any], policy: RetryPolicy, attempt: int, who: str
) -> tuple[float | None, str]:
    """One synchronous POST, judged as `judge` does; a network error is worth retrying."""
    import httpx  # noqa: PLC0415 -- config validate imports job modules; httpx only to post

    check_webhook_url(url)
    with scrubbed(url):
        try:
            response = client.post(url, json=payload)
        except httpx.TransportError as exc:  # includes timeouts; the exception text may hold the URL
            return policy.backoff(attempt), f"network error ({type(exc).__name__})"
    return judge(response, url, policy, attempt, who)


async def post_json(
    url: str, payload: Mapping[str, Any], *, logger: Logger, policy: RetryPolicy | None = None, who: str = "the webhook"
) -> Delivery:
    """POST the payload; retries per `policy`, waiting here; WebhookError when it cannot be delivered."""
    import httpx  # noqa: PLC0415 -- config validate imports job modules; httpx only to post

    policy = policy or RetryPolicy()
    check_webhook_url(url)
    host = webhook_host(url)
    delivery = Delivery()
    with scrubbed(url):
        async with httpx.AsyncClient(timeout=policy.timeout, follow_redirects=False) as client:
            while True:
                delivery.attempts += 1
                delay: float | None
                try:
                    response = await client.post(url, json=dict(payload))
                except httpx.TransportError as exc:
                    delay, reason = policy.backoff(delivery.attempts), f"network error ({type(exc).__name__})"
                else:
                    delay, reason = judge(response, url, policy, delivery.attempts, who)
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


@contextmanager
def scrubbed(url: str) -> Iterator[None]:
    """While inside, httpx's request log lines show the URL without its secret path."""
    scrub = _Scrub(url)
    logging.getLogger("httpx").addFilter(scrub)
    try:
        yield
    finally:
        logging.getLogger("httpx").removeFilter(scrub)


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
