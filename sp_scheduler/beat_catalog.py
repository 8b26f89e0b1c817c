"""Beat's view of the config: the catalogue reloaded on a thread of its own, never on the tick.

Reading and checking a config of 10,000 jobs takes seconds; done on the tick (as CatalogWatch does
when asked), every slot due meanwhile would go out late or be missed. Here the tick waits only for
the first load (it cannot sync without one) and afterwards reads the newest good catalogue, which
the thread replaces when the files change.
"""

from __future__ import annotations

import logging
import threading
import time

from sp_scheduler.catalog import Catalog, CatalogWatch

log = logging.getLogger(__name__)

POLL = 0.5  # seconds between two looks at the config files' stamps (two stat calls)


class BeatCatalog:
    """The newest good catalogue and how many loads produced it (callers compare counts to see changes)."""

    def __init__(self, watch: CatalogWatch, *, poll: float = POLL) -> None:
        self.watch = watch
        self.poll = poll
        self._lock = threading.Lock()  # one reader of the watch at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._catalog: Catalog | None = None
        self._loads = 0

    @property
    def reloaded(self) -> int:
        return self._loads

    def catalog(self) -> Catalog:
        """The newest catalogue; the first call loads it here (raising ConfigError if it is broken)."""
        if self._catalog is None:
            self._refresh()
            self._start()
        assert self._catalog is not None
        return self._catalog

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll + 1)

    def _refresh(self) -> None:
        with self._lock:
            started = time.perf_counter()
            catalog = self.watch.catalog()  # reloads only when the files changed; keeps the last good
            if self.watch.reloaded != self._loads or self._catalog is None:
                self._catalog, self._loads = catalog, self.watch.reloaded
                seconds = time.perf_counter() - started
                log.info("config loaded", extra={"jobs": len(catalog), "duration_ms": round(seconds * 1000, 1)})

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sp-beat-config", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self._refresh()
            except Exception as exc:  # the watch keeps the last good catalogue; the next poll retries
                log.error("config reload failed", extra={"error": repr(exc)})
