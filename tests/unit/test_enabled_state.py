"""The effective enabled state: scheduler switch, override (unless expired), YAML, unconfigured."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sp_scheduler.catalog import Catalog, JobDefinition, effective_enabled
from sp_scheduler.config import JobConfig
from tests.support.jobs import Noop

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Flag:
    """Stands for store.Override: what effective_enabled reads from it."""

    enabled: bool
    expires_at: datetime | None = None


def configured(enabled: bool) -> JobDefinition:
    entry = JobConfig(name="job", extension="testing", job="noop", schedule="0 * * * * *", enabled=enabled)
    return JobDefinition("job", "testing", Noop(), entry)


UNCONFIGURED = JobDefinition("job", "testing", Noop())


@pytest.mark.parametrize("yaml", [True, False])
def test_without_an_override_the_config_decides(yaml: bool) -> None:
    state = effective_enabled(Catalog(True, ()), configured(yaml))
    assert (state.value, state.job, state.source, state.scheduler) == (yaml, yaml, "config", True)


@pytest.mark.parametrize("override", [True, False, Flag(True), Flag(False)])
def test_an_override_wins_over_the_config(override: bool | Flag) -> None:
    flag = override if isinstance(override, bool) else override.enabled
    for yaml in (True, False):
        state = effective_enabled(Catalog(True, ()), configured(yaml), override)
        assert (state.value, state.job, state.source) == (flag, flag, "override")


def test_an_unconfigured_job_is_off_unless_overridden() -> None:
    catalog = Catalog(True, ())
    assert effective_enabled(catalog, UNCONFIGURED).source == "not configured"
    assert not effective_enabled(catalog, UNCONFIGURED).value
    assert effective_enabled(catalog, UNCONFIGURED, True).value


def test_the_scheduler_switch_turns_every_job_off_but_keeps_the_jobs_own_state() -> None:
    catalog = Catalog(False, ())
    state = effective_enabled(catalog, configured(True), Flag(True))
    assert not state.value and state.job and not state.scheduler and state.source == "override"


def test_an_expired_override_no_longer_counts() -> None:
    catalog = Catalog(True, ())
    expired = Flag(False, NOW - timedelta(seconds=1))
    assert effective_enabled(catalog, configured(True), expired, now=NOW).source == "config"
    assert effective_enabled(catalog, configured(True), expired, now=NOW).value
    at_expiry = Flag(False, NOW)
    assert effective_enabled(catalog, configured(True), at_expiry, now=NOW).source == "config"
    live = Flag(False, NOW + timedelta(seconds=1))
    assert not effective_enabled(catalog, configured(True), live, now=NOW).value
    # Without `now` the caller has filtered already: the record counts as given.
    assert not effective_enabled(catalog, configured(True), expired).value
