"""How long ledger work waits between attempts while the ledger is away, and the one-retry rule.

The run keeper retries outcomes quickly (a run's outcome should land soon after Postgres is back);
beat's ledger thread backs off further (its work is never urgent and it shares the host with the
tick). Both walk a table of pauses whose last entry repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sp_scheduler.ledger.errors import LedgerUnavailable

log = logging.getLogger(__name__)
_R = TypeVar("_R")

KEEPER_RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts to write outcomes
BEAT_RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)  # pauses of beat's ledger thread after failures
# The alert notifier: pauses before another attempt at a delivery a target did not take (5xx, network
# error, a failing command), kept in the outbox row so a restart keeps them; and attempts in all.
ALERT_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0, 300.0)
ALERT_MAX_ATTEMPTS = 10


class Backoff:
    """Consecutive failures and the pause each calls for; `reset` after a success."""

    def __init__(self, delays: tuple[float, ...]) -> None:
        if not delays:
            raise ValueError("a backoff needs at least one delay")
        self.delays = delays
        self.failures = 0

    def next_delay(self) -> float:
        """The pause after one more failure (the table's last entry repeats)."""
        delay = self.delays[min(self.failures, len(self.delays) - 1)]
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


def retry_once(call: Callable[[], _R]) -> _R:
    """Run `call`; on `LedgerUnavailable` try once more, then give up with `LedgerUnavailable`.

    The worker's ledger pool skips the per-checkout health check to save a round trip, so the first
    use of a connection the server dropped fails; the retry gets a fresh one. A second failure means
    the ledger is really away.
    """
    try:
        return call()
    except LedgerUnavailable as exc:
        log.warning("ledger connection failed; retrying once", extra={"error": str(exc)})
    try:
        return call()
    except LedgerUnavailable as exc:
        raise LedgerUnavailable(f"ledger unavailable: {exc}") from exc
