"""Beat's config thread: the first catalogue loads on the caller, later edits on the thread, broken ones ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp_scheduler.beat_catalog import BeatCatalog
from sp_scheduler.catalog import CatalogWatch
from sp_scheduler.settings import Settings
from tests.support import wait_until
from tests.support.processes import write_config


def job(name: str) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": "noop", "schedule": "* * * * * *", "enabled": True}


def test_edits_are_picked_up_by_the_thread_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path / "config.yaml", [job("first")])
    beat_catalog = BeatCatalog(CatalogWatch(Settings(config_path=config)), poll=0.02)
    try:
        assert beat_catalog.catalog().find("first") is not None and beat_catalog.reloaded == 1
        write_config(config, [job("first"), job("second")])
        wait_until(lambda: beat_catalog.reloaded == 2, timeout=5)
        assert beat_catalog.catalog().find("second") is not None
        config.write_text(config.read_text().replace("* * * * * *", "* * * * *"))  # five fields: refused
        wait_until(lambda: "keeping the last good config" in caplog.text, timeout=5)
        assert beat_catalog.reloaded == 2 and beat_catalog.catalog().find("second") is not None
    finally:
        beat_catalog.stop()
