"""The month-dependent cron forms through the CLI: `cron next/prev`, `config validate`, `jobs show`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.errors import ExitCode


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("SP_DATABASE_URL", "SP_PROFILE", "SP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def config_with(tmp_path: Path, schedule: str, timezone: str = "UTC") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "scheduler:\n  enabled: true\n  jobs:\n"
        f'    - {{name: month_end, extension: core, job: database_cleanup, schedule: "{schedule}", enabled: true,'
        f" timezone: {timezone}}}\n"
    )
    return config


def test_cron_next_and_prev_preview_the_new_forms(runner: CliRunner) -> None:
    args = ["cron", "next", "0 0 18 * * FRIL", "--after", "2026-01-01T00:00:00", "-n", "3", "--tz", "Europe/Berlin"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "at 18:00:00 on the last Friday of the month (Europe/Berlin)",
        "2026-01-30T18:00:00+01:00",
        "2026-02-27T18:00:00+01:00",
        "2026-03-27T18:00:00+01:00",
    ]
    result = runner.invoke(cli, ["cron", "prev", "0 0 9 * * MON#1", "--before", "2026-03-01T00:00:00", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["times"][:2] == ["2026-02-02T09:00:00+00:00", "2026-01-05T09:00:00+00:00"]
    assert data["schedule_text"] == "at 09:00:00 on the first Monday of the month"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 L * *", "did you mean '0 0 0 L * *'?"),
        ("0 0 0 * * FRI-MON", "ranges cannot wrap: write FRI-SAT,SUN-MON"),
        ("0 0 0 * * 2#6", "x#n needs n from 1 to 5"),
    ],
)
def test_cron_next_errors_are_one_line(runner: CliRunner, expression: str, message: str) -> None:
    result = runner.invoke(cli, ["cron", "next", expression])
    assert result.exit_code == ExitCode.INVALID
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_config_validate_accepts_and_rejects_them(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["--config", str(config_with(tmp_path, "0 0 22 LW * *", "America/New_York")), "config", "validate"]
    )
    assert result.exit_code == 0, result.stderr
    assert "1 configured job(s)" in result.stdout
    result = runner.invoke(cli, ["--config", str(config_with(tmp_path, "0 0 L-30 2 *")), "config", "validate"])
    assert result.exit_code == ExitCode.INVALID
    assert "did you mean '0 0 0 L-30 2 *'?" in result.stderr
    result = runner.invoke(cli, ["--config", str(config_with(tmp_path, "0 0 0 L-30 2 *")), "config", "validate"])
    assert result.exit_code == ExitCode.INVALID
    assert "never fires: day L-30 does not occur in Feb" in result.stderr


def test_jobs_show_lists_the_next_runs(runner: CliRunner, tmp_path: Path) -> None:
    config = config_with(tmp_path, "0 30 2 * * SUNL", "Europe/Berlin")
    result = runner.invoke(cli, ["--config", str(config), "jobs", "show", "month_end", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schedule"] == "0 30 2 * * SUNL"
    assert data["schedule_text"] == "at 02:30:00 on the last Sunday of the month"
    assert len(data["next_runs"]) == 5
    for run in data["next_runs"]:
        when = datetime.fromisoformat(run).astimezone(ZoneInfo("Europe/Berlin"))
        assert when.isoweekday() == 7 and (when + timedelta(days=7)).month != when.month  # the last Sunday
        assert (when.hour, when.minute) in {(2, 30), (3, 0)}  # 03:00 on the spring-forward Sunday
