"""How early beat wakes before a slot: long enough to prepare every message due at it.

Reading, decoding, planning and serialising one due entry costs beat some tens of microseconds, so
10,000 entries due in the same second need far more than the fixed 0.3 s that suits a thousand.
`Lookahead` keeps a moving estimate of that cost per entry, measured on beat's own large batches,
and sizes the wake-up to the number of entries due: small batches keep the floor, large ones get
SAFETY times their estimated preparation time. Waking early costs nothing but a sleep inside the tick;
waking late makes every message of the burst late.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOOR = 0.3  # seconds: the least look-ahead (covers the tick's fixed costs and a scheduling hiccup)
CEILING = 5.0  # seconds: never more (the tick holds the leader lock, 10 s, while it waits)
SAFETY = 2.0  # wake this many times the estimated preparation time before the slot
INITIAL_PER_ENTRY = 100e-6  # seconds per entry until beat has measured its own (deliberately high)
WEIGHT = 0.3  # weight of the newest measurement in the moving estimate
MIN_MEASURED = 100  # smaller batches are not measured: their fixed costs would dominate


@dataclass(slots=True)
class Lookahead:
    """A moving estimate of the preparation cost per due entry, and the look-ahead it implies."""

    per_entry: float = INITIAL_PER_ENTRY

    def observe(self, entries: int, seconds: float) -> None:
        """Fold in one tick's measurement: `seconds` spent preparing `entries` due entries."""
        if entries >= MIN_MEASURED and seconds >= 0:
            self.per_entry += WEIGHT * (seconds / entries - self.per_entry)

    def seconds(self, entries: int) -> float:
        """How long before a slot beat must wake to prepare `entries` messages on time."""
        return min(max(FLOOR, SAFETY * entries * self.per_entry), CEILING)
