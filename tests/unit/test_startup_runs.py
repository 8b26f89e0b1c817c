"""Startup runs: chosen once the overrides are known, sent once their rows exist, retried while the broker is away."""

from __future__ import annotations

from typing import Any, ClassVar

from sp_scheduler.beat_ledger import StartupRun
from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.config import JobConfig
from sp_scheduler.messages import RunRequest
from sp_scheduler.startup import StartupRuns
from tests.support.jobs import Noop


class AtStartup(Noop):
    run_on_startup: ClassVar[bool] = True


def definition(name: str, *, startup: bool = True, enabled: bool = True) -> JobDefinition:
    entry = JobConfig(name=name, extension="testing", job="noop", schedule="", enabled=enabled, queue="q_" + name)
    return JobDefinition(name, "testing", AtStartup() if startup else Noop(), entry, None)


class Ledger:
    """The three calls StartupRuns makes of BeatLedger; rows are 'committed' when the test says so."""

    def __init__(self) -> None:
        self.version = 0
        self.overrides_: dict[str, bool] = {}
        self.queued: list[StartupRun] = []
        self.committed: list[StartupRun] = []

    def overrides(self) -> tuple[int, dict[str, bool]]:
        return self.version, self.overrides_

    def queue_startup(self, runs: list[StartupRun]) -> None:
        self.queued.extend(runs)

    def take_queued(self) -> list[StartupRun]:
        taken, self.committed = self.committed, []
        return taken


CATALOG = Catalog(
    True,
    (
        definition("boot"),
        definition("off", enabled=False),
        definition("overridden"),
        definition("plain", startup=False),
    ),
)


def startup(ledger: Ledger, sent: list[tuple[RunRequest, str, float | None]], fail: list[bool]) -> StartupRuns:
    def send(request: RunRequest, queue: str, timeout: float | None) -> None:
        if fail and fail.pop(0):
            raise OSError("broker away")
        sent.append((request, queue, timeout))

    runs: Any = ledger  # a stand-in for BeatLedger
    return StartupRuns(runs, lambda: CATALOG, send)


def test_startup_jobs_are_sent_once_their_rows_are_committed() -> None:
    ledger, sent = Ledger(), []
    runs = startup(ledger, sent, [])
    runs.step()
    assert ledger.queued == [] and not runs.done  # the overrides are not read yet: nothing decided
    ledger.version, ledger.overrides_ = 1, {"overridden": False}
    runs.step()
    assert [r.job_name for r in ledger.queued] == ["boot"] and sent == []
    ledger.committed = list(ledger.queued)
    runs.step()
    assert [(r.job_name, r.trigger, r.run_id, q) for r, q, _ in sent] == [
        ("boot", "startup", ledger.queued[0].run_id, "q_boot")
    ]
    assert runs.done
    runs.step()
    assert len(sent) == 1 and len(ledger.queued) == 1  # once per process


def test_a_failed_publish_is_retried_under_the_same_run_id() -> None:
    ledger, sent = Ledger(), []
    ledger.version = 1
    runs = startup(ledger, sent, [True])
    runs.step()
    ledger.committed = list(ledger.queued)
    runs.step()
    assert sent == [] and not runs.done
    runs.step()
    assert [r.run_id for r, _, _ in sent] == [r.run_id for r in ledger.queued]  # boot and overridden
    assert runs.done


def test_a_disabled_scheduler_starts_nothing() -> None:
    ledger = Ledger()
    ledger.version = 1
    runs = StartupRuns(ledger, lambda: Catalog(False, CATALOG.definitions), lambda *_: None)  # type: ignore[arg-type]
    runs.step()
    assert ledger.queued == [] and runs.done
