"""Per-run loggers whose records land in the `sp_logs` table, tagged with job name and run id.

Each run gets a private logger (not in logging's global registry) with a buffering handler; the
buffer is written in one round trip by the lease keeper's periodic flush and at the end of the run,
so a job that logs a lot costs few queries and `logs view --follow` still sees lines as they come.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sp_scheduler.store import LogRecordRow

# Attributes every LogRecord has; anything else a job passes in `extra=` is kept as a field.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Stored in their own columns (job_name, run_id) or implied by the run row; not repeated in `fields`.
_RUN_ATTRS = frozenset({"job", "run_id", "trigger", "scheduled_for"})
JOB_LOGGER_PARENT = "sp_scheduler.jobs"


class RunLogBuffer(logging.Handler):
    """Collects a run's records as rows; `drain()` hands them over for writing."""

    def __init__(self, job_name: str, run_id: str, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.job_name = job_name
        self.run_id = run_id
        self._rows: list[LogRecordRow] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        fields = {
            key: _jsonable(value)
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and key not in _RUN_ATTRS
        }
        if record.exc_info and "traceback" not in fields:
            fields["traceback"] = logging.Formatter().formatException(record.exc_info)
        row = LogRecordRow(
            created_at=datetime.fromtimestamp(record.created, UTC),
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
            job_name=self.job_name,
            run_id=self.run_id,
            fields=fields,
        )
        with self._lock:
            self._rows.append(row)

    def drain(self) -> list[LogRecordRow]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


class _RunFields(logging.Filter):
    """Stamps every record with the run's identity, so console and JSON logs carry job and run_id."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            setattr(record, key, value)
        return True


def run_logger(
    job_name: str, buffer: RunLogBuffer, *, trigger: str = "", scheduled_for: str | None = None
) -> logging.Logger:
    """A logger for one run: records go to `buffer` and propagate to `sp_scheduler.jobs` for the console."""
    # Deliberately outside logging's registry: one short-lived logger per run, no global handlers. Its
    # level is given to the constructor: `setLevel` would clear the cache of every registered logger
    # (a worker process has a few hundred), once per run.
    logger = logging.Logger(f"{JOB_LOGGER_PARENT}.{job_name}", logging.DEBUG)  # noqa: LOG001
    logger.parent = logging.getLogger(JOB_LOGGER_PARENT)
    fields = {"job": job_name, "run_id": buffer.run_id, "trigger": trigger}
    if scheduled_for:
        fields["scheduled_for"] = scheduled_for
    logger.addFilter(_RunFields(fields))
    logger.addHandler(buffer)
    return logger


def flush(buffer: RunLogBuffer, write: Callable[[Sequence[LogRecordRow]], object]) -> int:
    """Write what the buffer holds; on failure keep nothing twice but say so on the console."""
    rows = buffer.drain()
    if not rows:
        return 0
    try:
        write(rows)
    except Exception as exc:  # log storage must never fail the run itself
        logging.getLogger(__name__).warning(
            "could not store run log lines", extra={"run_id": buffer.run_id, "lines": len(rows), "error": str(exc)}
        )
        return 0
    return len(rows)
