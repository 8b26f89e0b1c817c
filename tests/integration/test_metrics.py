"""Prometheus metrics from a real worker and a real beat: names, labels, and counters that move."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import System
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
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
            scrape(worker_port), "sp_scheduler_runs_total", job="pulse", trigger="schedule", status="succeeded"
        )

    first = wait_until(pulses, timeout=20, message="no succeeded pulse in the worker metrics")
    wait_until(lambda: pulses() >= first + 2, timeout=20, message="the runs counter did not move")
    assert system.cli("jobs", "run", "explode", "--wait", "--timeout", "30").exit_code == 1
    worker = scrape(worker_port)
    assert value(worker, "sp_scheduler_runs_total", job="explode", trigger="manual", status="failed") == 1
    assert value(worker, "sp_scheduler_run_duration_seconds_count", job="pulse") >= first
    assert value(worker, "sp_scheduler_run_lateness_seconds_count", job="pulse") >= first
    assert value(worker, "sp_scheduler_items_processed_total", job="pulse") >= 2 * first
    assert value(worker, "sp_scheduler_items_failed_total", job="pulse") >= first
    assert "sp_scheduler_runs_running" in worker

    beat = scrape(beat_port)
    assert value(beat, "sp_scheduler_beat_leader") == 1
    assert value(beat, "sp_scheduler_schedule_entries") == 1
    assert value(beat, "sp_scheduler_beat_slots_sent_total", job="pulse") >= first
    assert 0 <= value(beat, "sp_scheduler_beat_tick_lag_seconds") < 1
