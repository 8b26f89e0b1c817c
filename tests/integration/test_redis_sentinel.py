"""Redis behind Sentinel: the master is SIGKILLed under two beats and two workers, and slots flow again.

Real servers on loopback (tests/support/sentinel.py: a master, a replica, three Sentinels, with a
master password and a distinct Sentinel password), real `sp-scheduler beat` and `worker` processes on
the `redis+sentinel://` URL, and a job every second. After the kill the test waits for the promotion
and for the first run message published to the new master, then checks every slot from before the
kill to after the recovery: each has a final ledger row (run, or `missed` with its reason), and the
job's own journal shows no slot executed twice. bench/redis_failover.py runs the longer version.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sp_scheduler.config import DEFAULT_QUEUE
from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.sentinel import MASTER_NAME, SentinelCluster, fail_over, sentinel_cluster
from tests.support.slot_audit import audit_slots, journal_entry

pytestmark = pytest.mark.integration

JOB = "journal"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path / "redis") as servers:
        yield servers


@pytest.fixture
def sentinel_system(database_url: str, cluster: SentinelCluster, tmp_path: Path) -> Iterator[System]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    world = System(database_url, cluster.url(), tmp_path / "config.yaml", log_dir)
    world.configure()
    yield world
    for process in world.processes:
        process.stop()


def succeeded_after(system: System, journal: Path, since: datetime, count: int) -> bool:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return sum(1 for line in lines if datetime.fromisoformat(line.split()[0]) > since) >= count


def test_slots_flow_again_after_the_master_is_killed(
    sentinel_system: System, cluster: SentinelCluster, tmp_path: Path
) -> None:
    system = sentinel_system
    journal = tmp_path / "journal.txt"
    system.configure([journal_entry(journal, JOB)])
    system.worker("w1", concurrency=2)
    system.worker("w2", concurrency=2)
    system.beat("beat1")
    system.beat("beat2", lead=False)
    started = datetime.now(UTC)
    wait_until(lambda: succeeded_after(system, journal, started, 3), timeout=30, message="no slots before the kill")

    status = system.cli_json("jobs", "status")
    assert status["redis_master"] == f"127.0.0.1:{cluster.master_port()}"

    cluster.wait_replicas_in_sync()
    failover = fail_over(cluster)
    killed = datetime.fromtimestamp(failover.killed_at, UTC)
    print(
        f"\nmaster killed: promoted after {failover.promoted_after:.2f} s, "
        f"first slot published through the new master {failover.first_publish_after:.2f} s after the kill"
    )
    assert failover.first_publish_after < 15.0

    recovered = killed + timedelta(seconds=failover.first_publish_after)
    wait_until(
        lambda: succeeded_after(system, journal, recovered, 3),
        timeout=30,
        message="slots did not run again after the failover",
    )
    status = system.cli_json("jobs", "status")
    assert status["redis_master"] == f"127.0.0.1:{failover.new_port}"

    start = started + timedelta(seconds=2)  # beat may start mid-second
    end = recovered + timedelta(seconds=3)

    def settled() -> bool:
        audit = audit_slots(system.database_url, JOB, journal, start, end)
        return not (audit.absent or audit.unfinished)

    # Missed slots are written by beat's ledger thread and late receipts by the workers: give them time.
    try:
        wait_until(settled, timeout=30, interval=0.2)
    finally:
        audit = audit_slots(system.database_url, JOB, journal, start, end)
        print(audit.summary())
    assert audit.complete, audit.summary()
    reasons = {message for status, message in audit.rows.values() if status == "missed"}
    for reason in reasons:  # beat's, for the slots it could not send; a worker's, for a slot it got too late
        assert "while the broker (Redis) was unreachable" in (reason or "") or "when a worker received it" in (
            reason or ""
        ), reason
    assert audit.count("succeeded") >= 3 and killed < end
    for process in system.processes:
        assert process.popen.poll() is None, f"{process.name} exited:\n{process.output()[-3000:]}"
    logs = "".join(process.output() for process in system.processes)
    assert cluster.password not in logs and cluster.sentinel_password not in logs


def test_jobs_status_names_the_master_the_sentinels_report(sentinel_system: System, cluster: SentinelCluster) -> None:
    human = sentinel_system.cli("jobs", "status")
    assert human.exit_code == 0, human.output
    master = f"127.0.0.1:{cluster.master_port()}"
    assert f"redis:    master {master} ({MASTER_NAME}, from Sentinel)" in human.output
    assert cluster.password not in human.output and cluster.sentinel_password not in human.output


def test_a_manual_run_is_published_to_the_master_through_the_sentinels(
    sentinel_system: System, cluster: SentinelCluster
) -> None:
    sentinel_system.configure([{"name": "n", "extension": "testing", "job": "noop", "schedule": "", "enabled": True}])
    result = sentinel_system.cli("jobs", "run", "n")
    assert result.exit_code == 0, result.output
    client = cluster.data_client(cluster.master_port())
    try:
        assert client.llen(DEFAULT_QUEUE) == 1
    finally:
        client.close()
    (row,) = sentinel_system.history("n")
    assert row["status"] == "queued"


def test_a_master_name_no_sentinel_monitors_is_one_line_naming_each_sentinel(
    sentinel_system: System, cluster: SentinelCluster
) -> None:
    wrong = cluster.url().replace(f"/{MASTER_NAME}/", "/nosuchmaster/")
    result = sentinel_system.cli("--redis-url", wrong, "jobs", "status")
    assert result.exit_code == 69
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert "no Sentinel reports a master named 'nosuchmaster'" in line
    assert line.count("monitors no master of that name") == len(cluster.sentinels)
    assert cluster.password not in line and cluster.sentinel_password not in line
