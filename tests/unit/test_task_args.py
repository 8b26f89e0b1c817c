"""The run task's arguments: what each sender writes is accepted; anything else names its problem
and keeps what is still usable for the run's row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from sp_scheduler.runner import RunRequest
from sp_scheduler.task_args import UnusableArguments, UsableParts, request_from_task

SLOT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN_ID = str(uuid.uuid4())


def refused(args: list[object], kwargs: dict[str, object] | None = None) -> UnusableArguments:
    with pytest.raises(UnusableArguments) as caught:
        request_from_task(args, kwargs or {})
    return caught.value


def test_what_senders_write_round_trips() -> None:
    for request in (
        RunRequest("noop", "schedule", SLOT),
        RunRequest("noop", "manual", None, RUN_ID, {"days": 3}),
        RunRequest("noop", "startup", None, RUN_ID),
    ):
        assert request_from_task(request.task_args(), {}) == request
    assert request_from_task([], {"job_name": "noop", "trigger": "manual", "run_id": RUN_ID}) == RunRequest(
        "noop", "manual", None, RUN_ID
    )


def test_too_many_arguments_keep_the_job_and_slot() -> None:
    bad = refused(["noop", "schedule", SLOT.isoformat(), None, {}, "surplus"])
    assert bad.reason == "6 positional arguments, at most 5"
    assert bad.parts == UsableParts("noop", "schedule", SLOT, None)


def test_missing_and_unexpected_arguments_are_each_named() -> None:
    bad = refused([], {"run_id": RUN_ID, "colour": "red"})
    assert bad.reason == "unexpected argument 'colour'; missing argument 'job_name'; missing argument 'trigger'"
    assert bad.parts == UsableParts(None, None, None, RUN_ID)


def test_bad_values_say_which_argument_and_why() -> None:
    bad = refused(["noop", "bogus", "yesterday", "not-a-uuid", ["x"]])
    assert "argument 'trigger': must be one of schedule, startup, manual, backfill, not 'bogus'" in bad.reason
    assert "argument 'scheduled_for': not an ISO 8601 instant: 'yesterday'" in bad.reason
    assert "argument 'run_id': not a run id: 'not-a-uuid'" in bad.reason
    assert "argument 'params': params must be an object with text keys" in bad.reason
    assert bad.parts == UsableParts("noop", None, None, None)


def test_a_naive_slot_and_a_scheduled_run_without_one_are_refused() -> None:
    assert "needs its UTC offset" in refused(["noop", "schedule", "2026-03-01T12:00:00"]).reason
    assert refused(["noop", "schedule"]).reason == "a scheduled run needs its slot (scheduled_for)"
    assert refused(["noop", "manual"]).reason == "a manual run needs its run id"


def test_a_backfill_run_needs_its_slot_and_its_run_id() -> None:
    assert refused(["noop", "backfill", None, RUN_ID]).reason == "a backfill run needs its slot (scheduled_for)"
    bad = refused(["noop", "backfill", SLOT.isoformat()])
    assert bad.reason == "a backfill run needs its run id"
    assert bad.parts == UsableParts("noop", "backfill", None, None)  # no slot row for a backfill: its run id is its row
    request = request_from_task(["noop", "backfill", SLOT.isoformat(), RUN_ID, {}], {})
    assert (request.trigger, request.scheduled_for, request.run_id) == ("backfill", SLOT, RUN_ID)


def test_an_argument_given_twice_is_refused() -> None:
    bad = refused(["noop"], {"job_name": "other", "trigger": "manual", "run_id": RUN_ID})
    assert bad.reason == "argument 'job_name' given twice"
