"""`sp-scheduler worker`: the processes an operator runs."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from typing import Any

import click
from celery.bin.celery import celery
from celery.signals import beat_init, worker_process_shutdown

from sp_scheduler.celery_app import configured_app
from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import UsageError
from sp_scheduler.logfmt import configure_logging


def preflight(state: CliState) -> None:
    """Refuse to start against a broken config or an old schema, with a one-line reason."""
    state.catalog()
    with state.database():
        pass


@click.command("worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_state
def worker_cmd(state: CliState, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker for the job queues; extra arguments go to `celery worker` (e.g. -c 4)."""
    args = list(celery_args)
    check_pool(args)
    preflight(state)
    configure_logging()
    catalog = state.catalog()
    if not any(arg in ("-Q", "--queues") or arg.startswith("--queues=") for arg in args):
        queues = sorted({DEFAULT_QUEUE, *(definition.queue for definition in catalog)})
        args += ["-Q", ",".join(queues)]
    if not any(arg.startswith(("-l", "--loglevel")) for arg in args):
        args += ["--loglevel", "INFO"]
    quiet_celery_task_lines(args)
    # Gossip and mingle serve Celery features the scheduler does not use, and gossip logs an ERROR
    # traceback at every broker reconnect; the ledger is what workers share.
    args += [flag for flag in ("--without-gossip", "--without-mingle") if flag not in args]
    if state.settings.metrics_port:
        # Before prometheus_client is first imported (it picks its value class then), so every pool
        # process writes its samples to files the main process can sum.
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sp-scheduler-metrics-")
        _serve_worker_metrics(state.settings.metrics_port)
    # The beat command shares this module and must not load the worker runtime (runner, keeper, pools).
    from sp_scheduler.worker import create_app  # noqa: PLC0415

    app = create_app(state.settings)
    app.sp_runtime.load_before_fork()
    code = run_celery(app, ["worker", *args])
    if code:  # e.g. Celery's "Unrecoverable error": a supervisor must see a failure and restart it
        raise SystemExit(code)


def run_celery(app: Any, argv: list[str]) -> int:
    """Run a `celery` command in-process and return its exit status (`app.worker_main` drops it)."""
    celery.params[0].default = app
    try:
        code = celery.main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    finally:
        celery.params[0].default = None
    return code if isinstance(code, int) else 0


SUPPORTED_POOLS = ("prefork", "solo")
# Celery's per-task lines: "Task sp_scheduler.run_job[<id>] received" and "... succeeded in 0.003s".
CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def quiet_celery_task_lines(args: list[str]) -> None:
    """Show Celery's two per-task INFO lines only at `--loglevel DEBUG`.

    Every run is one task with the same name, so those lines say neither which job ran nor which run
    it was; the runner's own "job started" / "job succeeded" lines carry both, and its failures are
    logged with their traceback. Celery's warnings and errors (retries aside) still show.
    """
    levels = option_values(args, "-l", "--loglevel")
    if (levels[-1] if levels else "INFO").upper() != "DEBUG":
        for name in CELERY_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def check_pool(args: list[str]) -> None:
    """Refuse pools that run several tasks in one process: each process has one event loop and one
    run keeper, and the ledger's overlap rule relies on a process running one run at a time."""
    for pool in option_values(args, "-P", "--pool"):
        if pool not in SUPPORTED_POOLS:
            raise UsageError(f"worker pool {pool!r} is not supported: use {' or '.join(SUPPORTED_POOLS)}")


def option_values(args: list[str], short: str, long: str) -> list[str]:
    """The values given to a `celery worker` option, in order: `-P x`, `--pool x`, `--pool=x` or `-Px`
    (an option given last without its value counts as an empty value)."""
    values = []
    for index, arg in enumerate(args):
        if arg in (short, long):
            values.append(args[index + 1] if index + 1 < len(args) else "")
        elif arg.startswith(f"{long}="):
            values.append(arg.split("=", 1)[1])
        elif arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            values.append(arg[len(short) :])
    return values


def _serve_worker_metrics(port: int) -> None:
    # After PROMETHEUS_MULTIPROC_DIR is set.
    from sp_scheduler.metrics import mark_process_dead, serve_multiprocess  # noqa: PLC0415

    serve_multiprocess(port)

    @worker_process_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _forget(pid: int | None = None, **_: Any) -> None:
        if pid is not None:
            mark_process_dead(pid)


@click.command("beat", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_state
def beat_cmd(state: CliState, celery_args: tuple[str, ...]) -> None:
    """Run the scheduler (celery beat on RedBeat); start several for standby, one leads. SIGHUP re-syncs."""
    preflight(state)
    configure_logging()
    args = list(celery_args)
    if not any(arg.startswith(("-l", "--loglevel")) for arg in args):
        args += ["--loglevel", "INFO"]

    @beat_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _reload_on_hangup(sender: Any = None, **_: Any) -> None:
        scheduler = sender.scheduler
        signal.signal(signal.SIGHUP, lambda *_: scheduler.request_sync())

    app = configured_app(state.settings)  # beat's own resources come from its settings (beat_resources.py)
    app.start(["beat", "-S", "sp_scheduler.beat:SlotScheduler", *args])
