"""When a reaper may mark runs `lost`: never in the first lease after its own Postgres came back.

A lease that expired while Postgres was away says nothing about the run: its keeper could not renew
it either, and renews it within a lease once Postgres answers again (keeper.py). A reaper that reaped
at once would mark live runs `lost`, and an `overlap: skip` job could then start a second copy. So a
reaper that could not reach Postgres, or has just started (it cannot know whether Postgres was away
just before), holds back for one lease after its first successful contact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class ReaperGate:
    """Tells a reaper, on each pass that reached Postgres, whether it may reap yet."""

    def __init__(self, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._away = True  # at start, as after an outage: whether Postgres was just away is unknown
        self._hold_until = 0.0

    def unreachable(self) -> None:
        """A pass could not reach Postgres."""
        self._away = True

    def may_reap(self) -> bool:
        """A pass reached Postgres: True once it has answered for a whole lease since it was last away."""
        now = self._clock()
        if self._away:
            self._away = False
            self._hold_until = now + self.lease_seconds
            log.info("reaper holds back for one lease while runs renew theirs", extra={"seconds": self.lease_seconds})
        return now >= self._hold_until
