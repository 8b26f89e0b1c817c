"""Console log formats: readable lines by default, one JSON object per line with SP_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sp_scheduler.errors import UsageError
from sp_scheduler.logfmt import FieldsFormatter, JsonFormatter, configure_logging, log_format

SLOT = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def record(
    name: str = "sp_scheduler.runner",
    message: str = "job started",
    *args: object,
    level: int = logging.INFO,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    """A record made the way Logger.makeRecord makes it, extras included."""
    logger = logging.getLogger(name)
    return logger.makeRecord(name, level, __file__, 1, message, args, exc_info, extra=extra)


def as_json(rec: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    document: dict[str, Any] = json.loads(line)
    return document


def test_json_has_the_envelope_and_every_structured_field() -> None:
    rec = record(
        "sp_scheduler.runner",
        "run %s of %d",
        "tick",
        3,
        extra={"job": "tick", "run_id": "r-1", "trigger": "schedule", "scheduled_for": SLOT},
    )
    rec.created = SLOT.timestamp() + 0.25
    document = as_json(rec)
    assert document == {
        "ts": "2026-11-25T10:00:00.250Z",
        "level": "INFO",
        "logger": "sp_scheduler.runner",
        "message": "run tick of 3",
        "job": "tick",
        "run_id": "r-1",
        "trigger": "schedule",
        "scheduled_for": "2026-11-25T10:00:00+00:00",
    }
    assert datetime.fromisoformat(document["ts"]) == datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=UTC)


def test_json_carries_a_logged_exception_and_a_run_traceback() -> None:
    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        logged = record(level=logging.ERROR, message="beat tick failed", exc_info=sys.exc_info())
    document = as_json(logged)
    assert document["level"] == "ERROR"
    assert document["exc"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: kaboom" in document["exc"]
    assert "traceback" not in document

    trace = 'Traceback (most recent call last):\n  File "job.py", line 1\nRuntimeError: boom\n'
    raised = record(
        "sp_scheduler.jobs.explode", "job raised", extra={"error": "RuntimeError('boom')", "traceback": trace}
    )
    document = as_json(raised)
    assert document["traceback"] == trace.rstrip()
    assert document["error"] == "RuntimeError('boom')"
    assert "exc" not in document


def test_json_values_json_cannot_hold_become_strings_and_never_overwrite_the_envelope() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    rec = record(
        extra={"level": "custom", "ts": 1, "nested": {1: (SLOT, {"x"})}, "thing": Opaque(), "none": None, "ok": True}
    )
    document = as_json(rec)
    assert document["level"] == "INFO" and isinstance(document["ts"], str)
    assert document["field_level"] == "custom" and document["field_ts"] == 1
    assert document["nested"] == {"1": ["2026-11-25T10:00:00+00:00", ["x"]]}
    assert document["thing"] == "opaque!"
    assert document["none"] is None and document["ok"] is True


def test_other_libraries_extras_stay_out_in_both_formats() -> None:
    rec = record("celery.worker.strategy", "Task received", extra={"data": {"id": "abc"}})
    assert "data" not in as_json(rec)
    assert as_json(rec)["logger"] == "celery.worker.strategy"
    assert "data=" not in FieldsFormatter().format(rec)


def test_text_format_is_unchanged() -> None:
    rec = record(extra={"job": "tick", "run_id": "r-1"})
    line = FieldsFormatter().format(rec)
    assert line.endswith("INFO sp_scheduler.runner: job started job=tick run_id=r-1")
    trace = "Traceback (most recent call last):\nRuntimeError: boom\n"
    line = FieldsFormatter().format(record(extra={"job": "x", "traceback": trace}))
    assert line.splitlines()[0].endswith("job started job=x")
    assert line.splitlines()[1:] == ["Traceback (most recent call last):", "RuntimeError: boom"]


@pytest.mark.parametrize(("value", "expected"), [(None, "text"), ("", "text"), ("text", "text"), (" JSON ", "json")])
def test_log_format_reads_sp_log_format(value: str | None, expected: str) -> None:
    env = {} if value is None else {"SP_LOG_FORMAT": value}
    assert log_format(env) == expected


def test_an_unknown_log_format_is_a_one_line_usage_error() -> None:
    with pytest.raises(UsageError, match="SP_LOG_FORMAT='xml' must be one of: text, json"):
        log_format({"SP_LOG_FORMAT": "xml"})


@pytest.fixture
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without sp-scheduler's handler, restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [h for h in saved_handlers if not getattr(h, "sp_scheduler", False)]
    yield root
    root.handlers, root.level = saved_handlers, saved_level


def ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "sp_scheduler", False)]


@pytest.mark.parametrize(("env", "formatter"), [({}, FieldsFormatter), ({"SP_LOG_FORMAT": "json"}, JsonFormatter)])
def test_configure_logging_picks_the_format_once(
    bare_root: logging.Logger, env: dict[str, str], formatter: type[logging.Formatter]
) -> None:
    configure_logging(logging.DEBUG, env=env)
    configure_logging(env={"SP_LOG_FORMAT": "text" if formatter is JsonFormatter else "json"})  # idempotent
    (handler,) = ours(bare_root)
    assert type(handler.formatter) is formatter
    assert bare_root.level == logging.DEBUG


def test_configure_logging_reads_the_environment(bare_root: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP_LOG_FORMAT", "json")
    configure_logging()
    (handler,) = ours(bare_root)
    assert isinstance(handler.formatter, JsonFormatter)


def test_a_json_line_reaches_stderr(bare_root: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(env={"SP_LOG_FORMAT": "json"})
    logging.getLogger("sp_scheduler.beat").warning("slots missed", extra={"job": "tick", "missed": 3})
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line) | {"ts": None} == {
        "ts": None,
        "level": "WARNING",
        "logger": "sp_scheduler.beat",
        "message": "slots missed",
        "job": "tick",
        "missed": 3,
    }
