"""`--json` on the read commands that need no server: cron next/prev and config validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "services" / "scheduler" / "config.yaml"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("SP_DATABASE_URL", "SP_PROFILE", "SP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_cron_next_json(runner: CliRunner) -> None:
    args = ["cron", "next", "0 */15 * * * *", "--after", "2026-03-29T01:50:00", "--tz", "Europe/Berlin", "-n", "2"]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "expression": "0 */15 * * * *",
        "schedule_text": "every 15 minutes",
        "timezone": "Europe/Berlin",
        "after": "2026-03-29T01:50:00",
        "times": ["2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"],
    }


def test_cron_prev_lists_earlier_fires_newest_first(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["cron", "prev", "0 0 9 * * MON-FRI", "--before", "2026-12-07T08:00:00", "-n", "2"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "at 09:00:00, Monday through Friday (UTC)",
        "2026-12-04T09:00:00+00:00",
        "2026-12-03T09:00:00+00:00",
    ]
    result = runner.invoke(cli, ["cron", "prev", "0 0 9 * * MON-FRI", "--before", "2026-12-07T08:00:00", "--json"])
    assert json.loads(result.stdout)["times"][0] == "2026-12-04T09:00:00+00:00"
    result = runner.invoke(cli, ["cron", "prev", "0 0 0 29 2 *", "--before", "0004-03-01T00:00:00", "-n", "3"])
    assert result.exit_code == ExitCode.INVALID and "no fire time before" in result.stderr


def test_config_validate_json_ok(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--config", str(SHIPPED), "config", "validate", "--json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["configured"] == 10 and report["problems"] == []
    assert report["config"] == str(SHIPPED)


def test_config_validate_json_lists_problems_and_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "scheduler:\n  enabled: true\n  jobs:\n"
        '    - {name: a, extension: core, job: nope, schedule: "0 0 * * * *", enabled: true}\n'
    )
    result = runner.invoke(cli, ["--config", str(config), "config", "validate", "--json"])
    assert result.exit_code == ExitCode.INVALID
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("has no job 'nope'" in problem["reason"] and problem["job"] == "a" for problem in report["problems"])
