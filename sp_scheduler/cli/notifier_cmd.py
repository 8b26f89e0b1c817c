"""`sp-scheduler notifier`: the process that delivers alerts (sp_scheduler/notifier.py)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.logfmt import configure_logging
from sp_scheduler.notifier import POLL, Notifier


@click.command("notifier")
@click.option(
    "--web-url",
    envvar="SP_WEB_URL",
    help="Dashboard base URL; alerts link to <URL>/runs/<id> [env SP_WEB_URL].",
)
@click.option(
    "--poll", type=click.FloatRange(0.05, 60), default=POLL, show_default=True, help="Seconds between passes."
)
@pass_state
def notifier_cmd(state: CliState, web_url: str | None, poll: float) -> None:
    """Deliver alerts from the outbox, pause jobs that keep failing, notice late jobs. SIGTERM stops it."""
    state.catalog()  # refuse a broken config, as beat and workers do
    with state.database():  # ...and an old schema
        pass
    configure_logging()
    on_delivery = None
    port = state.settings.metrics_port
    if port:
        from sp_scheduler.metrics import NotifierMetrics  # noqa: PLC0415 -- prometheus_client only with metrics on

        metrics = NotifierMetrics()
        metrics.serve(port)
        on_delivery = metrics.count
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    Notifier(state.settings, web_url=web_url, on_delivery=on_delivery).run(stop, poll)
