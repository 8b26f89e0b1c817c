"""Prometheus metrics for workers and beat, served on `SP_METRICS_PORT` when it is set.

Worker pool processes are forked, so run metrics use prometheus_client's multiprocess mode: each
process writes its samples to files under `PROMETHEUS_MULTIPROC_DIR`, and the worker's main process
serves their sum. Metric objects are created per process and registered nowhere global.

The per-job label is `job_name`, not `job`: Prometheus adds a `job` label (the scrape job) to every
series and would rename ours to `exported_job`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sp_scheduler.ledger_metrics import LastRuns, ScheduledJob, job_timestamps
from sp_scheduler.store import RunRecord

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by `sp-scheduler worker` before this module is imported
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
JOB_LABEL = "job_name"  # not "job": Prometheus owns that label
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300)


def serve_multiprocess(port: int) -> None:
    """Serve the sum of every pool process's samples (the worker's main process calls this)."""
    dead_letters_counter()  # its series exist from the start, at 0, so increase() sees the first one
    registry = CollectorRegistry()
    prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)


def mark_process_dead(pid: int) -> None:
    """Drop a finished pool process's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        prom_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


_dead_letters: Counter | None = None
# The kinds of item workers set aside (queue_guard.py, worker.refuse_message); each series starts at 0.
DEAD_LETTER_KINDS = (
    "not_json",
    "not_envelope",
    "bad_body",
    "not_task",
    "unknown_task",
    "invalid_task",
    "unhandled",
    "bad_arguments",
)


def dead_letters_counter() -> Counter:
    """Queue items a worker set aside (dead_letters.py), by kind; created on first use in that process."""
    global _dead_letters  # noqa: PLW0603 - one counter per process, like the run metrics
    if _dead_letters is None:
        _dead_letters = Counter(
            "sp_scheduler_dead_letters", "Queue items set aside as unusable", ["kind"], registry=None
        )
        for kind in DEAD_LETTER_KINDS:
            _dead_letters.labels(kind)
    return _dead_letters


class RunMetrics:
    """Counters and histograms a worker process updates as runs start and finish."""

    def __init__(self) -> None:
        job = [JOB_LABEL]
        self.runs = Counter("sp_scheduler_runs", "Runs recorded", [JOB_LABEL, "trigger", "status"], registry=None)
        self.duration = Histogram(
            "sp_scheduler_run_duration_seconds", "Run duration", job, buckets=DURATION_BUCKETS, registry=None
        )
        self.lateness = Histogram(
            "sp_scheduler_run_lateness_seconds",
            "Start of a scheduled run minus its slot",
            job,
            buckets=LATENESS_BUCKETS,
            registry=None,
        )
        self.items_processed = Counter("sp_scheduler_items_processed", "Items processed", job, registry=None)
        self.items_failed = Counter("sp_scheduler_items_failed", "Items failed", job, registry=None)
        self.running = Gauge(
            "sp_scheduler_runs_running", "Runs executing now", job, registry=None, multiprocess_mode="livesum"
        )

    def started(self, record: RunRecord) -> None:
        self.running.labels(record.job_name).inc()
        # A backfill run is late by design (days, for an old slot): it says nothing of the schedule's health.
        if record.lateness_ms is not None and record.trigger == "schedule":
            self.lateness.labels(record.job_name).observe(record.lateness_ms / 1000)

    def finished(self, record: RunRecord, *, was_running: bool = True) -> None:
        if was_running:
            self.running.labels(record.job_name).dec()
        self.runs.labels(record.job_name, record.trigger, record.status).inc()
        if record.duration_ms is not None:
            self.duration.labels(record.job_name).observe(record.duration_ms / 1000)
        self.items_processed.labels(record.job_name).inc(record.items_processed)
        self.items_failed.labels(record.job_name).inc(record.items_failed)


class BeatMetrics:
    """Gauges and counters a beat process keeps current on every tick, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.leader = Gauge("sp_scheduler_beat_leader", "1 while this beat leads", registry=registry)
        self.tick_lag = Gauge(
            "sp_scheduler_beat_tick_lag_seconds", "How late the newest slot was sent", registry=registry
        )
        self.entries = Gauge("sp_scheduler_schedule_entries", "Jobs on the live schedule", registry=registry)
        self.sent = Counter("sp_scheduler_beat_slots_sent", "Slot messages sent", [JOB_LABEL], registry=registry)
        self.missed = Counter("sp_scheduler_beat_slots_missed", "Slots recorded missed", [JOB_LABEL], registry=registry)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


class NotifierMetrics:
    """The alert notifier's counters (`sp-scheduler notifier`), on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "sp_scheduler_alert_deliveries",
            "Alert delivery attempts by target and outcome (delivered, retry, gave_up)",
            ["target", "outcome"],
            registry=self.registry,
        )

    def count(self, target: str, outcome: str) -> None:
        self.deliveries.labels(target=target, outcome=outcome).inc()

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


class LedgerTimestamps(Collector):
    """Last success / last failure / success due per scheduled job, read on each scrape (leader only).

    `read(names)` queries Postgres, `jobs()` is the live schedule, `leading()` says whether this beat
    leads: standbys serve no such series, so there is one copy of each (see ledger_metrics.py).
    """

    def __init__(
        self,
        read: Callable[[Sequence[str]], LastRuns],
        jobs: Callable[[], Mapping[str, ScheduledJob]],
        leading: Callable[[], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.read, self.jobs, self.leading, self.clock = read, jobs, leading, clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self.leading():
            return
        jobs = dict(self.jobs())
        up = GaugeMetricFamily("sp_scheduler_ledger_read_up", "1 when the last-run timestamps could be read")
        try:
            last = self.read(sorted(jobs))
        except Exception as exc:  # a scrape must answer even while Postgres is away
            log.warning("cannot read last runs for metrics", extra={"error": str(exc)})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        labels = [JOB_LABEL]
        success = GaugeMetricFamily(
            "sp_scheduler_job_last_success_timestamp_seconds", "When the job last succeeded", labels=labels
        )
        failure = GaugeMetricFamily(
            "sp_scheduler_job_last_failure_timestamp_seconds",
            "When the job last failed, timed out or was lost",
            labels=labels,
        )
        due = GaugeMetricFamily(
            "sp_scheduler_job_success_due_timestamp_seconds",
            "The newest slot whose success is due by now (its late grace has passed)",
            labels=labels,
        )
        for sample in job_timestamps(jobs, last, self.clock()):
            if sample.last_success is not None:
                success.add_metric([sample.job_name], sample.last_success)
            if sample.last_failure is not None:
                failure.add_metric([sample.job_name], sample.last_failure)
            due.add_metric([sample.job_name], sample.success_due)
        yield success
        yield failure
        yield due
