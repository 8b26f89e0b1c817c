"""`jobs status --check` exit codes, `health --json` and `jobs history --job NOSUCH`, against real servers."""

from __future__ import annotations

import json

import pytest

from sp_scheduler.errors import ExitCode
from sp_scheduler.status import CheckCode
from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration


def job(name: str, schedule: str, job_name: str = "noop", **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": job_name, "schedule": schedule, "enabled": True, **options}


def check(system: System) -> int:
    return system.cli("jobs", "status", "--check").exit_code


def test_status_check_exit_codes_follow_the_most_severe_problem(system: System) -> None:
    pulse = job("pulse", "* * * * * *", overlap="allow")
    system.configure([pulse, job("stuck", "* * * * * *", job_name="explode")])
    result = system.cli("jobs", "status", "--check")
    assert result.exit_code == CheckCode.NO_BEAT == 10
    assert "no beat leads" in result.stderr
    assert system.cli("jobs", "status").exit_code == 0  # without --check: a report, not a verdict

    system.beat()
    wait_until(lambda: check(system) == CheckCode.NO_WORKER, timeout=30)
    assert system.cli_json("jobs", "status")["check"] == {"code": 11, "problem": "no_worker"}

    system.worker()
    wait_until(lambda: check(system) == CheckCode.LATE, timeout=30)  # `stuck` fails: late
    result = system.cli("jobs", "status", "--check", "--json")
    assert result.exit_code == 12 and "late: stuck" in result.stderr
    assert [j["name"] for j in json.loads(result.stdout)["jobs"] if j["late"]] == ["stuck"]

    system.configure([pulse])  # beat and the CLI read the edited config: no job is late any more
    assert wait_until(lambda: check(system) == CheckCode.OK, timeout=30) is True


def test_health_json(system: System) -> None:
    result = system.cli("health", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["postgres"]["schema"] and report["redis"]
    system.worker("w9")
    wait_until(lambda: system.cli("health", "--role", "worker").exit_code == 0, timeout=30)
    report = json.loads(system.cli("health", "--role", "worker", "--json").stdout)
    assert report["role"] == "worker" and report["process"].startswith("worker w9@")
    failed = system.cli("health", "--role", "beat", "--json")
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["ok"] is False and report["exit_code"] == 1 and "no beat on host" in report["error"]
    assert "no beat on host" in failed.stderr


def test_history_of_an_unknown_job_exits_3(system: System) -> None:
    system.configure([job("real", "", job_name="noop")])
    result = system.cli("jobs", "history", "--job", "reall")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "reall" in result.stderr and "real" in result.stderr
    assert system.cli("jobs", "history", "--job", "real").exit_code == 0  # known, no runs yet: an empty table
