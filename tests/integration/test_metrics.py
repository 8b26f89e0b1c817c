"""Prometheus metrics from a real worker and a real beat: names, labels, and counters that move."""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import System
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, [])  # a family with no series yet is still exported
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == want for k, want in labels.items()))


def answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def test_worker_and_beat_metrics_move(system: System) -> None:
    system.configure(
        [
            {
                "name": "pulse",
                "extension": "testing",
                "job": "chatty",
                "schedule": "* * * * * *",
                "enabled": True,
                "overlap": "allow",
            },
            {"name": "explode", "extension": "testing", "job": "explode", "schedule": "", "enabled": True},
        ]
    )
    worker_port, beat_port = free_port(), free_port()
    system.worker(concurrency=2, SP_METRICS_PORT=str(worker_port))
    system.beat(SP_METRICS_PORT=str(beat_port))
    wait_until(lambda: answers(worker_port) and answers(beat_port), timeout=20)

    def pulses() -> float:
        return value(
            scrape(worker_port), "sp_scheduler_runs_total", job_name="pulse", trigger="schedule", status="succeeded"
        )

    first = wait_until(pulses, timeout=20, message="no succeeded pulse in the worker metrics")
    wait_until(lambda: pulses() >= first + 2, timeout=20, message="the runs counter did not move")
    assert system.cli("jobs", "run", "explode", "--wait", "--timeout", "30").exit_code == 1
    worker = scrape(worker_port)
    assert value(worker, "sp_scheduler_runs_total", job_name="explode", trigger="manual", status="failed") == 1
    assert value(worker, "sp_scheduler_run_duration_seconds_count", job_name="pulse") >= first
    assert value(worker, "sp_scheduler_run_lateness_seconds_count", job_name="pulse") >= first
    assert value(worker, "sp_scheduler_items_processed_total", job_name="pulse") >= 2 * first
    assert value(worker, "sp_scheduler_items_failed_total", job_name="pulse") >= first
    assert "sp_scheduler_runs_running" in worker

    beat = scrape(beat_port)
    assert value(beat, "sp_scheduler_beat_leader") == 1
    assert value(beat, "sp_scheduler_schedule_entries") == 1
    assert value(beat, "sp_scheduler_beat_slots_sent_total", job_name="pulse") >= first
    assert 0 <= value(beat, "sp_scheduler_beat_tick_lag_seconds") < 1
    assert all("job" not in labels for samples in (*worker.values(), *beat.values()) for labels, _ in samples)
    # Every series the shipped alert rules use is one these processes export.
    used = set(re.findall(r"sp_scheduler_\w+", ALERT_RULES.read_text()))
    assert used and used <= set(worker) | set(beat), used - set(worker) - set(beat)


def ledger_time(system: System, name: str, status: str) -> float:
    row = next(r for r in system.history(name) if r["status"] == status)
    return datetime.fromisoformat(row["finished_at"]).timestamp()


def test_last_success_and_failure_come_from_the_ledger_through_the_leading_beat_only(system: System) -> None:
    yearly = {"extension": "testing", "schedule": "0 0 0 1 1 *", "enabled": True}
    system.configure(
        [
            {"name": "pulse", "extension": "testing", "job": "noop", "schedule": "* * * * * *", "enabled": True},
            {"name": "rare", "job": "noop", **yearly},
            {"name": "boom", "job": "explode", **yearly},
        ]
    )
    leader_port, standby_port = free_port(), free_port()
    system.worker("w1")
    system.worker("w2")  # two workers: each sees only its own runs, the ledger sees all
    system.beat("beat1", SP_METRICS_PORT=str(leader_port))
    system.beat("beat2", lead=False, SP_METRICS_PORT=str(standby_port))
    wait_until(lambda: answers(leader_port) and answers(standby_port), timeout=20)

    def leader_has(name: str, **labels: str) -> float:
        return value(scrape(leader_port), name, **labels)

    success = "sp_scheduler_job_last_success_timestamp_seconds"
    failure = "sp_scheduler_job_last_failure_timestamp_seconds"
    wait_until(lambda: leader_has(success, job_name="pulse"), timeout=30, message="no pulse success exported")
    assert system.cli("jobs", "run", "rare", "--wait", "--timeout", "30").exit_code == 0  # a manual success
    assert system.cli("jobs", "run", "boom", "--wait", "--timeout", "30").exit_code == 1
    rare_done, boom_failed = ledger_time(system, "rare", "succeeded"), ledger_time(system, "boom", "failed")

    def with_boom() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        samples = scrape(leader_port)
        return samples if value(samples, failure, job_name="boom") else None

    leader = wait_until(with_boom, timeout=30)
    assert value(leader, success, job_name="rare") == pytest.approx(rare_done, abs=0.001)
    assert value(leader, failure, job_name="boom") == pytest.approx(boom_failed, abs=0.001)
    assert success not in leader or all(labels["job_name"] != "boom" for labels, _ in leader[success])
    assert len(leader[success]) == 2  # pulse and rare, once each, whichever worker ran them
    assert value(leader, "sp_scheduler_ledger_read_up") == 1
    due = value(leader, "sp_scheduler_job_success_due_timestamp_seconds", job_name="rare")
    year_start = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC).timestamp()
    assert due in (year_start, datetime(datetime.now(UTC).year - 1, 1, 1, tzinfo=UTC).timestamp())
    standby = scrape(standby_port)
    assert value(standby, "sp_scheduler_beat_leader") == 0
    assert success not in standby and failure not in standby  # one copy of each series: the leader's
