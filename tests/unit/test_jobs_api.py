"""The job API: JobResult builder, JobContext, PipelineStats, and a core free of service clients."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import sys

import pytest

from sp_scheduler import Extension, Job, JobContext, JobResult, PipelineStats
from sp_scheduler.errors import JobNotAvailable


def make_ctx(**overrides: object) -> JobContext:
    values: dict[str, object] = {
        "job_name": "demo",
        "run_id": "00000000-0000-0000-0000-000000000001",
        "trigger": "manual",
        "logger": logging.getLogger("test.demo"),
    }
    values.update(overrides)
    return JobContext(**values)  # type: ignore[arg-type]


def test_success_builder_matches_the_seeds() -> None:
    result = JobResult.success().with_stats(42, 1).with_duration(17).with_message("Processed 42 items")
    assert result.success is True
    assert (result.items_processed, result.items_failed, result.duration_ms) == (42, 1, 17)
    assert result.message == "Processed 42 items"


def test_failure_is_not_success_and_carries_its_message() -> None:
    result = JobResult.failure("Database not available")
    assert result.success is False
    assert result.message == "Database not available"


def test_results_are_immutable_and_builders_return_copies() -> None:
    base = JobResult.success()
    changed = base.with_message("x")
    assert base.message is None and changed.message == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.message = "y"  # type: ignore[misc]


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        JobResult.success().with_stats(-1, 0)


def test_to_dict_uses_the_seed_field_names() -> None:
    assert JobResult.failure("boom").with_stats(1, 2).to_dict() == {
        "success": False,
        "message": "boom",
        "items_processed": 1,
        "items_failed": 2,
        "duration_ms": None,
    }


def test_get_parameter_converts_cli_text_to_the_default_type() -> None:
    ctx = make_ctx(parameters={"days": "7", "dry_run": "true", "ratio": "0.5", "name": "x", "native": 3})
    assert ctx.get_parameter("days", 30) == 7
    assert ctx.get_parameter("dry_run", False) is True
    assert ctx.get_parameter("ratio", 1.0) == 0.5
    assert ctx.get_parameter("name", "y") == "x"
    assert ctx.get_parameter("native", 10) == 3
    assert ctx.get_parameter("missing", 30) == 30
    assert ctx.get_parameter("missing") is None


def test_get_parameter_names_the_bad_value() -> None:
    ctx = make_ctx(parameters={"days": "seven"})
    with pytest.raises(ValueError, match="'days': 'seven' is not a valid int"):
        ctx.get_parameter("days", 30)


def test_db_pool_without_a_database_is_a_clear_error() -> None:
    with pytest.raises(JobNotAvailable, match="asked for the database"):
        _ = make_ctx().db_pool


def test_pipeline_stats_isolates_failing_steps(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def ok(name: str) -> None:
        ran.append(name)

    async def broken() -> None:
        raise RuntimeError("template error")

    async def pipeline() -> JobResult:
        stats = PipelineStats(logging.getLogger("test.pipeline"))
        await stats.step("ingest", lambda: ok("ingest"))
        await stats.step("render", broken)
        await stats.step("sitemap", lambda: ok("sitemap"))
        return stats.result()

    with caplog.at_level(logging.ERROR):
        result = asyncio.run(pipeline())
    assert ran == ["ingest", "sitemap"]
    assert result.success is False
    assert (result.items_processed, result.items_failed) == (2, 1)
    assert result.message is not None and "render (RuntimeError: template error)" in result.message
    assert any(getattr(r, "step", None) == "render" for r in caplog.records)


def test_pipeline_stats_all_good_is_success() -> None:
    async def pipeline() -> JobResult:
        stats = PipelineStats(logging.getLogger("test.pipeline"))
        for name in ("a", "b"):
            await stats.step(name, lambda: asyncio.sleep(0))
        return stats.result()

    result = asyncio.run(pipeline())
    assert result.success is True and result.message == "2 of 2 steps succeeded"


def test_extension_returns_its_jobs() -> None:
    class Hello(Job):
        name = "hello"

        async def execute(self, ctx: JobContext) -> JobResult:
            return JobResult.success()

    extension = Extension("demo", (Hello(),))
    assert [job.name for job in extension.jobs()] == ["hello"]
    assert Hello.run_on_startup is False and Hello.schedule == ""


def test_core_modules_import_without_service_clients() -> None:
    code = (
        "import sys, sp_scheduler, sp_scheduler.jobs, sp_scheduler.cron, sp_scheduler.config;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'celery', 'kombu', 'redis', 'psycopg', "
        "'psycopg_pool', 'redbeat'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""
