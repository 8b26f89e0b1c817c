"""Integration fixtures: a per-test system (database, Redis db, config) and real worker processes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from sp_scheduler.cli import cli
from sp_scheduler.store import connect
from tests.support.processes import ManagedProcess, service_env, start_beat, start_worker, write_config
from tests.support.proxy import CuttableProxy, postgres_proxy

pytestmark = pytest.mark.integration


@dataclass
class System:
    """One test's slice of the world: its database, Redis db, config file and processes."""

    database_url: str
    redis_url: str
    config: Path
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.database_url, self.redis_url, self.config, **extra)

    def configure(self, jobs: Sequence[Mapping[str, object]] = (), *, enabled: bool = True) -> None:
        write_config(self.config, jobs, enabled=enabled)

    def worker(self, name: str = "w1", *, concurrency: int = 1, **extra_env: str) -> ManagedProcess:
        process = start_worker(name, self.env(**extra_env), self.log_dir, concurrency=concurrency)
        self.processes.append(process)
        return process

    def beat(self, name: str = "beat1", *, lead: bool = True, **extra_env: str) -> ManagedProcess:
        process = start_beat(name, self.env(**extra_env), self.log_dir, lead=lead)
        self.processes.append(process)
        return process

    def cli(self, *args: str, **extra_env: str) -> Result:
        """Run the CLI in-process against this system; never raises, check exit_code."""
        return CliRunner().invoke(cli, list(args), env=self.env(**extra_env), catch_exceptions=False)

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def history(self, job: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        args = ["jobs", "history", "--limit", str(limit)] + (["--job", job] if job else [])
        rows: list[dict[str, Any]] = self.cli_json(*args)
        return rows


@pytest.fixture
def system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    world = System(database_url, redis_url, tmp_path / "config.yaml", log_dir)
    world.configure()
    yield world
    for process in world.processes:
        process.stop()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test's database."""
    with connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def proxy(database_url: str) -> Iterator[CuttableProxy]:
    """A proxy in front of the test's Postgres (`tests.support.proxy.through` gives the URL), cut at the end."""
    cuttable = postgres_proxy(database_url)
    yield cuttable
    cuttable.cut()
