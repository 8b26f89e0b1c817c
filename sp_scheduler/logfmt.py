"""Console logging for the processes: readable lines (default) or one JSON object per line (`SP_LOG_FORMAT=json`).

Both formats carry the same structured fields: whatever sp-scheduler code passes in `extra=` (job,
run_id, trigger, scheduled_for, ...). Other libraries' extras are left out, as their own business.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sp_scheduler.errors import UsageError

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
LOG_FORMATS = ("text", "json")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra=` fields, for sp-scheduler's own loggers only (the traceback is handled apart)."""
    if not record.name.startswith("sp_scheduler"):
        return {}
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and k != "traceback"}


class FieldsFormatter(logging.Formatter):
    """`2026-11-25 10:00:00 INFO sp_scheduler.runner: job started job=x run_id=...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        trace = getattr(record, "traceback", None)
        if trace:
            line += "\n" + str(trace).rstrip()
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: ts (ISO-8601 UTC), level, logger, message, the fields.

    `exc` holds a logged exception (`log.exception(...)`), `traceback` the one a run passes in `extra=`;
    `stack` the stack of `stack_info=True`. Values JSON cannot hold become strings (datetimes in ISO-8601).
    """

    RESERVED = ("ts", "level", "logger", "message", "exc", "traceback", "stack")

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            # A field may not overwrite the envelope: `extra={"level": ...}` is kept as `field_level`.
            document[f"field_{key}" if key in self.RESERVED else key] = _jsonable(value)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            document["exc"] = record.exc_text
        trace = getattr(record, "traceback", None)
        if trace:
            document["traceback"] = str(trace).rstrip()
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines inside strings, so a traceback never breaks the one-line rule.
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


def log_format(env: Mapping[str, str] | None = None) -> str:
    """`SP_LOG_FORMAT`: `text` (default) or `json`; anything else is a one-line usage error."""
    env = os.environ if env is None else env
    value = (env.get("SP_LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise UsageError(f"environment variable SP_LOG_FORMAT={value!r} must be one of: {', '.join(LOG_FORMATS)}")
    return value


def configure_logging(level: int = logging.INFO, env: Mapping[str, str] | None = None) -> None:
    """Install one stderr handler on the root logger (idempotent), in the format `SP_LOG_FORMAT` names."""
    root = logging.getLogger()
    if any(getattr(handler, "sp_scheduler", False) for handler in root.handlers):
        return
    formatter = JsonFormatter() if log_format(env) == "json" else FieldsFormatter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.sp_scheduler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
