"""Offline commands load no server client: `cron next` and `config validate` start without psycopg,
redis or celery (the CLI imports a command's module only when that command runs, see cli/lazy.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "services" / "scheduler" / "config.yaml"
SERVER_CLIENTS = ("psycopg", "psycopg_pool", "redis", "celery", "kombu", "redbeat")

PROBE = """
import json, sys
from click.testing import CliRunner
from sp_scheduler.cli import cli
result = CliRunner().invoke(cli, json.loads(sys.argv[1]))
loaded = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
print(json.dumps({"exit": result.exit_code, "output": result.output, "loaded": loaded}))
"""


def loaded_by(*args: str) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter; (exit code, which of SERVER_CLIENTS it imported)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(SERVER_CLIENTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0, report["output"]
    return report["exit"], report["loaded"]


def test_importing_the_cli_loads_no_server_client() -> None:
    code, loaded = loaded_by("--version")
    assert code == 0 and loaded == []


def test_cron_next_loads_no_server_client() -> None:
    _, loaded = loaded_by("cron", "next", "0 */15 * * * *", "--count", "2")
    assert loaded == []


@pytest.mark.parametrize("args", [("config", "validate"), ("jobs", "list"), ("jobs", "show", "database_cleanup")])
def test_commands_that_need_no_server_load_no_broker_client(args: tuple[str, ...]) -> None:
    # The job modules the config names are imported to check it, and they use psycopg (core's
    # cleanup jobs import the store for its table list), so only the broker side is asserted here.
    _, loaded = loaded_by("--config", str(SHIPPED), *args)
    assert not {"redis", "celery", "kombu", "redbeat"} & set(loaded), loaded


def test_every_command_is_listed_and_an_unknown_one_is_a_usage_error() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    for name in ("beat", "config", "cron", "db", "demo", "dev", "health", "jobs", "logs", "queue", "worker"):
        assert f"\n  {name} " in top.output, name
    jobs = runner.invoke(cli, ["jobs", "--help"])
    for name in ("backfill", "cleanup-sessions", "disable", "enable", "history", "list", "log-cleanup", "reset", "run"):
        assert f"\n  {name} " in jobs.output, name
    assert "\n  status " in jobs.output and "\n  show " in jobs.output
    unknown = runner.invoke(cli, ["jobs", "frobnicate"])
    assert unknown.exit_code == 2 and "No such command 'frobnicate'" in unknown.output
