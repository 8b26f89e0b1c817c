"""A ledger that can be cut off or made to refuse, wrapped round a real one (fault injection)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sp_scheduler.ledger import Ledger, LedgerRefused, LedgerUnavailable


class FlakyLedger:
    """Delegates every `Ledger` call to `inner`, except while `down` (each call: `LedgerUnavailable`)
    and for calls `refuse(name, args, kwargs)` picks (`LedgerRefused`). `calls` counts calls by name."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.refuse: Callable[[str, tuple[Any, ...], dict[str, Any]], bool] = lambda name, args, kwargs: False
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.down.is_set():
                raise LedgerUnavailable("connection refused (the test cut the ledger off)")
            if self.refuse(name, args, kwargs):
                raise LedgerRefused(f"{name} refused by the test")
            return target(*args, **kwargs)

        return call
