"""The notifier's signal to beat after an auto-pause goes through the project's Redis client, so it
works (or fails with a logged warning) for every URL form, the Sentinel form included."""

from __future__ import annotations

import logging

import pytest

from sp_scheduler.notifier import Notifier
from sp_scheduler.settings import Settings
from tests.support import free_port

DATABASE_URL = "postgresql://nobody@127.0.0.1:1/never"  # the signal needs no database


@pytest.mark.parametrize("scheme", ["redis+sentinel", "redis"])
def test_an_unreachable_redis_is_a_warning_not_an_exception(scheme: str, caplog: pytest.LogCaptureFixture) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}/" + ("spmaster/0" if scheme == "redis+sentinel" else "0")
    notes = Notifier(Settings(redis_url=url, database_url=DATABASE_URL))
    with caplog.at_level(logging.WARNING, logger="sp_scheduler.notifier"):
        notes._flag_beat()
    assert [record.getMessage() for record in caplog.records] == ["could not signal beat after an auto-pause"]
