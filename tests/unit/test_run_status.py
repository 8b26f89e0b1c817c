"""Run statuses come from one list (`sp_scheduler.run_status`); the CLI and the store offer that list.
The database's CHECK constraint is compared with it in tests/integration/test_store_schema.py."""

from __future__ import annotations

from typing import get_args

import click

from sp_scheduler import store
from sp_scheduler.cli.runs_cmd import history_cmd
from sp_scheduler.run_status import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    FINISHED_STATUSES,
    RUN_STATUSES,
    FinishStatus,
)


def test_history_offers_every_run_status_in_order() -> None:
    (option,) = [p for p in history_cmd.params if p.name == "status"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == RUN_STATUSES


def test_the_store_names_the_same_list() -> None:
    assert store.RUN_STATUSES is RUN_STATUSES
    assert store.FINISHED_STATUSES is FINISHED_STATUSES
    assert store.FAILED_STATUSES is FAILED_STATUSES


def test_every_status_is_active_or_finished_and_outcomes_and_failures_are_final() -> None:
    assert RUN_STATUSES == ("queued", "running", "succeeded", "failed", "timeout", "lost", "skipped", "missed")
    assert set(RUN_STATUSES) == ACTIVE_STATUSES | FINISHED_STATUSES
    assert not ACTIVE_STATUSES & FINISHED_STATUSES
    assert set(get_args(FinishStatus)) <= FINISHED_STATUSES
    assert set(FAILED_STATUSES) <= FINISHED_STATUSES
