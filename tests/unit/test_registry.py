"""Extension discovery through entry points and import paths."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from sp_scheduler.errors import ExtensionError
from sp_scheduler.registry import discover, load_registry

SEED_JOBS = {
    ("core", "cleanup_anonymous_users"): "0 0 3 * * *",
    ("core", "cleanup_empty_contexts"): "0 0 * * * *",
    ("core", "cleanup_inactive_sessions"): "0 0 * * * *",
    ("core", "database_cleanup"): "0 0 4 * * *",
    ("core", "publish_content"): "0 */30 * * * *",
    ("core", "heartbeat"): "",
    ("core", "ledger_retention"): "0 30 4 * * *",
    ("web", "publish_pipeline"): "0 */15 * * * *",
    ("web", "content_analytics_aggregation"): "0 */15 * * * *",
    ("web", "daily_traffic_report"): "0 0 7,19 * * *",
    ("web", "daily_activity_summary"): "0 0 18 * * *",
}


def test_builtin_extensions_register_the_seed_jobs() -> None:
    registry = load_registry()
    assert {"core", "web"} <= set(registry.extensions)
    found = {key: entry.job.schedule for key, entry in registry.jobs.items() if key[0] in {"core", "web"}}
    assert found == SEED_JOBS
    assert registry.jobs[("web", "publish_pipeline")].job.run_on_startup is True
    assert all(entry.job.description for entry in registry.jobs.values())


def test_import_paths_add_extensions() -> None:
    registry = load_registry(["tests.support.jobs:extension"])
    assert registry.resolve("testing", "noop") is not None


def _point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="sp_scheduler.extensions")


def test_duplicate_job_names_across_extensions_are_an_error() -> None:
    points = [_point("testing", "tests.support.jobs:extension"), _point("clash", "tests.support.jobs:clashing")]
    registry, problems = discover(points=points)
    assert any("provided by both extension 'testing' and 'clash'" in p.reason for p in problems)
    assert registry.resolve("testing", "noop") is not None


def test_broken_entry_point_is_reported_not_raised() -> None:
    _, problems = discover(points=[_point("nope", "no_such_module_xyz:extension")])
    assert len(problems) == 1 and "cannot load" in problems[0].reason


def test_not_an_extension_is_reported() -> None:
    _, problems = discover(points=[_point("odd", "tests.support.jobs:NOT_AN_EXTENSION")])
    assert "needs a `name` string and a `jobs()` method" in problems[0].reason


def test_load_registry_raises_with_every_problem() -> None:
    with pytest.raises(ExtensionError, match="cannot import"):
        load_registry(["no_such_module_xyz:extension"])
