"""The failover scenario the test and the bench share: beat and a worker on a multi-host URL, the
primary killed, the standby promoted, and what the ledger says afterwards.

A `tally` job runs every second and appends its run id to a file once its work is done, so the file is
a record of finished runs kept outside Postgres: every id in it must end up `succeeded` in the ledger
of the promoted standby, or an outcome was lost. After the failover, `jobs disable tally` (the CLI on
the same URL) must reach beat, whose ledger thread reads the override from the new primary.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from tests.support import wait_until
from tests.support.postgres_pair import PostgresNode, PostgresPair
from tests.support.processes import ROOT, ManagedProcess, service_env, start_beat, start_worker, write_config

LEASE_SECONDS = 6.0  # short, so runs the kill orphaned are reaped within the test


@dataclass(frozen=True)
class FailoverReport:
    """What one failover did: timings (seconds) and the runs that were lost or stuck."""

    runs_before_kill: int
    seconds_kill_to_promoted: float
    seconds_kill_to_first_run: float
    runs_after_promotion: int
    finished_by_jobs: int
    outcomes_missing: list[str]
    stuck_running: list[str]
    statuses: dict[str, int]

    def lines(self) -> list[str]:
        return [
            f"runs recorded before the kill       {self.runs_before_kill}",
            f"kill -> standby promoted            {self.seconds_kill_to_promoted:.2f} s",
            f"kill -> first run on the new primary {self.seconds_kill_to_first_run:.2f} s",
            f"runs recorded after the promotion   {self.runs_after_promotion}",
            f"runs the job finished (side file)   {self.finished_by_jobs}",
            f"finished runs missing from ledger   {len(self.outcomes_missing)} {self.outcomes_missing[:5]}",
            f"runs still marked running           {len(self.stuck_running)} {self.stuck_running[:5]}",
            f"ledger by status                    {self.statuses}",
        ]


def succeeded_since(node: PostgresNode, since: datetime) -> int:
    """Succeeded tally runs started after `since`, read from `node` (a standby answers reads too)."""
    return int(
        _scalar(
            node,
            "SELECT count(*) FROM sp_job_runs WHERE job_name = 'tally' AND status = 'succeeded' AND started_at > %s",
            since,
        )
    )


def _scalar(node: PostgresNode, query: str, *args: Any) -> Any:
    with psycopg.connect(node.url(), connect_timeout=2, autocommit=True) as conn:
        row = conn.execute(query, args).fetchone()
    return row[0] if row else None


def migrate(database_url: str) -> None:
    """`sp-scheduler db migrate` as an operator runs it, on the multi-host URL."""
    cli(service_env(database_url, "redis://127.0.0.1:1/0", ROOT / "services/scheduler/config.yaml"), "db", "migrate")


def disable(database_url: str, redis_url: str, config: Path) -> None:
    """`sp-scheduler jobs disable tally`: an override in the ledger, beat flagged through Redis."""
    cli(service_env(database_url, redis_url, config), "jobs", "disable", "tally", "--reason", "after the failover")


def cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sp_scheduler", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_failover(
    pair: PostgresPair,
    redis_url: str,
    work_dir: Path,
    *,
    runs_before: int = 3,
    promote_after: float = 0.0,
    runs_after: int = 5,
    timeout: float = 60.0,
) -> FailoverReport:
    """Migrate, start beat and a worker, kill the primary once `runs_before` runs are in, promote the
    standby `promote_after` s later (a failover manager's detection time), wait for `runs_after` runs
    on it and for every orphaned run to be closed, check that beat applies an override written after
    the failover, stop the processes and compare the ledger with the side file. Raises AssertionError
    (naming the processes' log directory) when a wait times out."""
    migrate(pair.url)
    tally = work_dir / "tally.txt"
    tally.touch()
    config = write_config(
        work_dir / "config.yaml",
        [
            {
                "name": "tally",
                "extension": "testing",
                "job": "tally",
                "schedule": "* * * * * *",
                "enabled": True,
                "params": {"path": str(tally)},
            }
        ],
    )
    env = service_env(pair.url, redis_url, config, SP_RUN_LEASE=str(LEASE_SECONDS))
    log_dir = work_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    processes: list[ManagedProcess] = []
    try:
        processes.append(start_worker("failover-worker", env, log_dir, concurrency=2))
        processes.append(start_beat("failover-beat", env, log_dir))
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        wait_until(
            lambda: succeeded_since(pair.primary, epoch) >= runs_before,
            timeout=timeout,
            message=f"no {runs_before} runs before the kill; logs in {log_dir}",
        )
        before = succeeded_since(pair.primary, epoch)

        killed_at = datetime.now(UTC)
        kill_clock = time.monotonic()
        pair.kill_primary()
        if promote_after:
            time.sleep(promote_after)  # the failover manager's detection time, which this scenario stands in for
        pair.promote_standby()
        promoted = time.monotonic() - kill_clock

        wait_until(
            lambda: succeeded_since(pair.standby, killed_at) >= 1,
            timeout=timeout,
            interval=0.05,
            message=f"no run recorded on the promoted standby; logs in {log_dir}",
        )
        first_run = time.monotonic() - kill_clock
        wait_until(
            lambda: succeeded_since(pair.standby, killed_at) >= runs_after,
            timeout=timeout,
            message=f"fewer than {runs_after} runs after the promotion; logs in {log_dir}",
        )

        def orphans_closed() -> bool:  # runs claimed before the kill: their outcome, or the reaper's `lost`
            return not _scalar(
                pair.standby,
                "SELECT count(*) FROM sp_job_runs WHERE status = 'running' AND created_at <= %s",
                killed_at,
            )

        wait_until(
            orphans_closed, timeout=timeout, message=f"runs from before the kill stay running; logs in {log_dir}"
        )
        # The CLI and beat's ledger thread on the new primary: an override written there reaches beat,
        # which takes the job off the live schedule.
        disable(pair.url, redis_url, config)
        beat = processes[1]
        wait_until(
            lambda: "removed_jobs=tally" in beat.output(),
            timeout=timeout,
            message=f"beat did not apply an override written after the failover; logs in {log_dir}",
        )
        for process in reversed(processes):  # beat first, then the worker writes what it still holds
            process.stop()
        after = succeeded_since(pair.standby, killed_at)
    finally:
        for process in processes:
            process.stop()

    with psycopg.connect(pair.standby.url(), autocommit=True) as conn:
        rows = conn.execute("SELECT id::text, status FROM sp_job_runs").fetchall()
    status_of = dict(rows)
    finished = tally.read_text().split()
    statuses: dict[str, int] = {}
    for status in status_of.values():
        statuses[status] = statuses.get(status, 0) + 1
    return FailoverReport(
        runs_before_kill=before,
        seconds_kill_to_promoted=promoted,
        seconds_kill_to_first_run=first_run,
        runs_after_promotion=after,
        finished_by_jobs=len(finished),
        outcomes_missing=[run_id for run_id in finished if status_of.get(run_id) != "succeeded"],
        stuck_running=sorted(run_id for run_id, status in status_of.items() if status == "running"),
        statuses=statuses,
    )
