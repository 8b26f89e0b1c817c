"""CLI commands that need no server: jobs list/show, cron next, config validate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.cli.process_cmd import CELERY_TASK_LOGGERS, check_pool, quiet_celery_task_lines
from sp_scheduler.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "services" / "scheduler" / "config.yaml"
SEED_NAMES = {
    "cleanup_anonymous_users",
    "cleanup_empty_contexts",
    "cleanup_inactive_sessions",
    "database_cleanup",
    "ledger_retention",
    "publish_content",
    "publish_pipeline",
    "content_analytics_aggregation",
    "daily_traffic_report",
    "daily_activity_summary",
}
REGISTERED_NAMES = {*SEED_NAMES, "heartbeat"}  # manual-only unless a profile schedules it (dev does)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("SP_DATABASE_URL", "SP_PROFILE", "SP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, config: Path = SHIPPED) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_jobs_list_shows_the_nine_seed_jobs(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "jobs", "list")
    assert code == 0
    for name in SEED_NAMES:
        assert name in out
    assert "0 0 7,19 * * *" in out


def test_jobs_list_json(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "jobs", "list", "--json")
    data = json.loads(out)
    assert code == 0 and {job["name"] for job in data["jobs"]} == REGISTERED_NAMES
    pipeline = next(job for job in data["jobs"] if job["name"] == "publish_pipeline")
    assert pipeline["schedule"] == "0 */15 * * * *" and pipeline["enabled"] is True
    assert pipeline["next_run"].endswith("+00:00")


def test_jobs_show_details_and_five_next_runs(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "jobs", "show", "publish_pipeline", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["run_on_startup"] == {"code": True, "effective": True}
    assert data["schedule"] == data["code_schedule"] == "0 */15 * * * *"
    assert data["schedule_text"] == "every 15 minutes"
    assert len(data["next_runs"]) == 5
    minutes = {run[14:16] for run in data["next_runs"]}
    assert minutes <= {"00", "15", "30", "45"}
    code, text, _ = invoke(runner, "jobs", "show", "publish_pipeline")
    assert code == 0 and "On startup:     yes (code: yes)" in text
    lines = text.splitlines()
    schedule = lines.index("Schedule:       0 */15 * * * *")
    assert lines[schedule + 1] == "                every 15 minutes (UTC)"


def test_jobs_show_a_manual_only_job_has_no_reading(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "jobs", "show", "heartbeat", "--json")
    assert code == 0 and json.loads(out)["schedule_text"] is None
    code, text, _ = invoke(runner, "jobs", "show", "heartbeat")
    lines = text.splitlines()
    assert code == 0 and lines[lines.index("Schedule:       (manual only)") + 1].startswith("Code default:")


def test_unknown_job_is_one_line_with_a_hint(runner: CliRunner) -> None:
    code, out, err = invoke(runner, "jobs", "show", "publish_pipelin")
    assert code == ExitCode.NOT_FOUND
    assert err.strip().splitlines() == [
        "error: unknown job 'publish_pipelin' (did you mean 'publish_pipeline'?); "
        "`sp-scheduler jobs list` shows the known jobs"
    ]
    assert "Traceback" not in out + err


def test_cron_next_across_the_berlin_spring_gap(runner: CliRunner) -> None:
    code, out, _ = invoke(
        runner,
        "cron",
        "next",
        "0 */15 * * * *",
        "--after",
        "2026-03-29T01:50:00",
        "--tz",
        "Europe/Berlin",
        "--count",
        "4",
    )
    assert code == 0
    assert out.splitlines() == [
        "every 15 minutes (Europe/Berlin)",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T03:45:00+02:00",
    ]


def test_cron_next_errors_are_one_line(runner: CliRunner) -> None:
    code, _, err = invoke(runner, "cron", "next", "0 * * * *")
    assert code == ExitCode.INVALID and "did you mean '0 0 * * * *'?" in err and len(err.strip().splitlines()) == 1
    code, _, err = invoke(runner, "cron", "next", "* * * * * *", "--tz", "Nowhere/City")
    assert code == ExitCode.INVALID and "unknown time zone 'Nowhere/City'" in err
    code, _, err = invoke(runner, "cron", "next", "* * * * * *", "--after", "yesterday")
    assert code == ExitCode.INVALID and "--after" in err


def test_config_validate_passes_on_the_shipped_config(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "config", "validate")
    assert code == 0 and "10 configured job(s)" in out


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '    - {name: a, extension: core, job: database_cleanup, schedule: "0 * * * *", enabled: true}\n',
            "did you mean '0 0 * * * *'?",
        ),
        (
            '    - {name: a, extension: core, job: nope, schedule: "0 0 * * * *", enabled: true}\n',
            "extension 'core' has no job 'nope'",
        ),
        (
            '    - {name: a, extension: core, job: database_cleanup, schedule: "0 0 * * * *", enabled: true}\n'
            '    - {name: a, extension: core, job: publish_content, schedule: "0 0 * * * *", enabled: true}\n',
            "duplicate job name",
        ),
        (
            '    - {name: a, extension: core, job: database_cleanup, schedule: "0 0 * * * *", enabled: true,'
            " timezone: Europe/Nowhere}\n",
            "unknown time zone 'Europe/Nowhere'",
        ),
        ("    - name: a\n   extension: [\n", "invalid YAML"),
    ],
    ids=["five-fields", "unknown-job", "duplicate", "bad-tz", "malformed-yaml"],
)
def test_config_validate_rejects(runner: CliRunner, tmp_path: Path, body: str, expected: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("scheduler:\n  enabled: true\n  jobs:\n" + body)
    code, _, err = invoke(runner, "config", "validate", config=config)
    assert code == ExitCode.INVALID
    assert expected in err
    assert f"{config}" in err
    assert "Traceback" not in err


def test_commands_that_need_a_database_say_how_to_configure_one(runner: CliRunner) -> None:
    code, _, err = invoke(runner, "jobs", "history")
    assert code == ExitCode.INVALID
    assert err.strip() == "error: no database configured: set SP_DATABASE_URL or pass --database-url"


@pytest.mark.parametrize("pool_args", [["-P", "threads"], ["--pool=gevent"], ["-Peventlet"], ["--pool", "custom"]])
def test_worker_refuses_pools_that_share_a_process_between_runs(runner: CliRunner, pool_args: list[str]) -> None:
    code, _, err = invoke(runner, "worker", *pool_args)
    assert code == ExitCode.INVALID
    assert err.startswith("error: worker pool ") and "is not supported: use prefork or solo" in err
    assert len(err.strip().splitlines()) == 1


def test_worker_pool_check_accepts_prefork_and_solo() -> None:
    for args in (["-P", "prefork"], ["--pool=solo"], ["-Psolo", "-c", "2"], ["-c", "4"]):
        check_pool(args)


@pytest.mark.parametrize(
    ("args", "quiet"),
    [
        ([], True),
        (["--loglevel", "INFO"], True),
        (["-l", "warning"], True),
        (["--loglevel=DEBUG"], False),
        (["-ldebug"], False),
    ],
)
def test_celery_per_task_lines_show_only_at_debug(args: list[str], quiet: bool) -> None:
    loggers = [logging.getLogger(name) for name in CELERY_TASK_LOGGERS]
    saved = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.NOTSET)
        quiet_celery_task_lines(args)
        assert [logger.level for logger in loggers] == [logging.WARNING if quiet else logging.NOTSET] * len(loggers)
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)
