"""Console logging for the processes: readable lines with the structured fields appended as key=value."""

from __future__ import annotations

import logging
import sys

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class FieldsFormatter(logging.Formatter):
    """`2026-11-25 10:00:00 INFO sp_scheduler.runner: job started job=x run_id=...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and k != "traceback"}
        if fields and record.name.startswith("sp_scheduler"):  # other libraries' extras are their own
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        trace = getattr(record, "traceback", None)
        if trace:
            line += "\n" + str(trace).rstrip()
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    if any(getattr(handler, "sp_scheduler", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter())
    handler.sp_scheduler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
