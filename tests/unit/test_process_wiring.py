"""How processes are wired: beat imports nothing of the worker, and Celery signals get one receiver per process."""

from __future__ import annotations

import subprocess
import sys

from celery.signals import worker_process_shutdown, worker_shutting_down

from sp_scheduler.celery_app import configured_app, settings_of
from sp_scheduler.messages import TASK_NAME
from sp_scheduler.settings import Settings
from sp_scheduler.worker import create_app

SETTINGS = Settings(redis_url="redis://127.0.0.1:1/0")  # never connected to: apps connect lazily


def test_importing_beat_imports_no_worker_runtime() -> None:
    code = (
        "import sys, sp_scheduler.beat\n"
        "worker = ('sp_scheduler.worker', 'sp_scheduler.runner', 'sp_scheduler.keeper')\n"
        "loaded = [m for m in worker if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_create_app_connects_no_receiver_per_call() -> None:
    create_app(SETTINGS)
    counts = len(worker_process_shutdown.receivers), len(worker_shutting_down.receivers)
    apps = [create_app(SETTINGS) for _ in range(3)]  # e.g. one per CLI call in a long process
    assert (len(worker_process_shutdown.receivers), len(worker_shutting_down.receivers)) == counts
    assert len({id(app.sp_runtime) for app in apps}) == 3


def test_process_shutdown_closes_the_runtime_of_every_app() -> None:
    apps = [create_app(SETTINGS), create_app(SETTINGS)]
    closed: list[int] = []
    for index, app in enumerate(apps):
        app.sp_runtime.close = lambda index=index: closed.append(index)  # type: ignore[method-assign]
    worker_process_shutdown.send(sender=None, pid=0, exitcode=0)
    assert sorted(closed) == [0, 1]


def test_apps_carry_the_settings_they_were_made_with() -> None:
    assert settings_of(configured_app(SETTINGS)) is SETTINGS
    assert settings_of(create_app(SETTINGS)) is SETTINGS
    assert not configured_app(SETTINGS).tasks.get(TASK_NAME)  # beat's and the CLI's app: no task


def test_each_app_runs_its_task_with_its_own_runtime() -> None:
    apps = [create_app(SETTINGS), create_app(SETTINGS)]
    for app in apps:
        fun = app.tasks[TASK_NAME]._decorated_fun
        assert any(cell.cell_contents is app.sp_runtime for cell in fun.__closure__)
