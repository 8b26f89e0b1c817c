"""`sp-scheduler web`: the dashboard and HTTP API on uvicorn."""

from __future__ import annotations

import os

import click
import redis
import uvicorn

from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.dashboard.access import Access
from sp_scheduler.dashboard.app import create_app
from sp_scheduler.errors import BrokerUnavailable
from sp_scheduler.redact import redis_problem
from sp_scheduler.redis_clients import redis_client


def _check_services(state: CliState) -> None:
    """Fail at the start, as beat and worker do, when Postgres (schema current) or Redis does not answer;
    an outage after the start is answered with 503 until the server is back."""
    with state.database():
        pass
    client = redis_client(state.settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BrokerUnavailable(redis_problem(state.settings.redis_url, exc)) from None
    finally:
        client.close()


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--root-path",
    default="",
    envvar="SP_WEB_ROOT_PATH",
    help="Path prefix a reverse proxy serves the dashboard under, such as /scheduler [env SP_WEB_ROOT_PATH].",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    envvar="SP_WEB_FORWARDED_ALLOW_IPS",
    help="Proxies whose X-Forwarded-* headers are trusted [env SP_WEB_FORWARDED_ALLOW_IPS].",
)
@click.option(
    "--actions/--read-only",
    default=False,
    envvar="SP_WEB_ACTIONS",
    help="Allow run now, enable, disable and reset, to holders of the SP_WEB_TOKEN token [env SP_WEB_ACTIONS].",
)
@pass_state
def web_cmd(state: CliState, host: str, port: int, root_path: str, forwarded_allow_ips: str, actions: bool) -> None:
    """Serve the dashboard (jobs, runs, logs, system) and the JSON API under /api/v1/."""
    # The token only from the environment: a command-line argument shows in every process listing.
    access = Access(actions=actions, token=os.environ.get("SP_WEB_TOKEN") or None)
    _check_services(state)
    app = create_app(state.settings, access)
    mode = "actions on (token required)" if actions else "read-only"
    click.echo(f"dashboard: http://{host}:{port}{root_path}/  {mode}  (API: {root_path}/api/v1/openapi.json)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        root_path=root_path.rstrip("/"),
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="info",
    )
