"""Sending one alert to one target, once: a webhook POST or a command run, and how it went.

One attempt per call; the notifier keeps retries in the outbox (a restart loses none). HTTP answers
are judged by sp_scheduler/webhooks.py (429 waits for as long as the target asks, 5xx and network
errors back off along ALERT_RETRY_DELAYS, other 4xx are final); a command's exit status 0 is
delivered, any other status or its timeout is retried, a command that cannot start is final. A
webhook URL is read from the environment variable the config names and never shown: errors name the
variable or the host.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sp_scheduler.alert_payload import discord_body, slack_body
from sp_scheduler.config_alerts import AlertTarget
from sp_scheduler.ledger.retry import ALERT_RETRY_DELAYS
from sp_scheduler.redact import redact_capability
from sp_scheduler.webhooks import RetryPolicy, WebhookError, post_once, webhook_host

MAX_RETRY_AFTER = 3600.0  # a target asking for a longer pause than this is given up on
_STDERR_MAX = 300


@dataclass(frozen=True, slots=True)
class SendResult:
    """Delivered; or not, with why and whether (and after how long) to try again."""

    delivered: bool
    error: str | None = None
    retry_in: float | None = None  # None when not delivered: final

    @property
    def final(self) -> bool:
        return not self.delivered and self.retry_in is None


def describe(target: AlertTarget, env: Mapping[str, str] | None = None) -> str:
    """Where a target sends, as it may be shown: `slack to hooks.slack.com`, `command /usr/bin/page`."""
    if target.kind == "command":
        return f"command {target.command[0]}"
    url = (env if env is not None else os.environ).get(target.url_env or "", "")
    return f"{target.kind} to {webhook_host(url)}" if url else f"{target.kind} ({target.url_env} not set)"


def send(
    target: AlertTarget, payload: Mapping[str, Any], attempt: int, env: Mapping[str, str] | None = None
) -> SendResult:
    """One attempt at delivering `payload` (build_payload's) to `target`; `attempt` counts from 1."""
    if target.kind == "command":
        return _run_command(target, payload, attempt)
    return _post(target, payload, attempt, env if env is not None else os.environ)


def _policy(target: AlertTarget) -> RetryPolicy:
    return RetryPolicy(timeout=target.timeout, max_retry_after=MAX_RETRY_AFTER, delays=ALERT_RETRY_DELAYS)


def _post(target: AlertTarget, payload: Mapping[str, Any], attempt: int, env: Mapping[str, str]) -> SendResult:
    url = env.get(target.url_env or "")
    if not url:
        return SendResult(False, f"environment variable {target.url_env} is not set")
    if target.kind == "slack":
        body = slack_body(payload)
    elif target.kind == "discord":
        body = discord_body(payload)
    else:
        body = dict(payload)
    try:
        with httpx.Client(timeout=target.timeout, follow_redirects=False) as client:
            delay, reason = post_once(client, url, body, _policy(target), attempt, who=webhook_host(url))
    except WebhookError as exc:
        return SendResult(False, redact_capability(str(exc), url))
    if delay is None:
        return SendResult(True)
    return SendResult(False, reason, retry_in=delay)


def _run_command(target: AlertTarget, payload: Mapping[str, Any], attempt: int) -> SendResult:
    retry_in = _policy(target).backoff(attempt)
    try:
        done = subprocess.run(  # the operator's own command from the config, no shell
            target.command,
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=target.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SendResult(False, f"command timed out after {target.timeout:g} s", retry_in=retry_in)
    except OSError as exc:
        return SendResult(False, f"command {target.command[0]} cannot start: {exc.strerror}")
    if done.returncode == 0:
        return SendResult(True)
    stderr = " ".join(done.stderr.decode(errors="replace").split())[:_STDERR_MAX]
    return SendResult(False, f"command exited with status {done.returncode}: {stderr}".rstrip(": "), retry_in=retry_in)
