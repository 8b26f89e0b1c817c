"""`sp-scheduler web`: the dashboard and HTTP API on uvicorn."""

from __future__ import annotations

import click
import uvicorn

from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.dashboard.app import create_app


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
@pass_state
def web_cmd(state: CliState, host: str, port: int, root_path: str, forwarded_allow_ips: str) -> None:
    """Serve the dashboard (jobs, runs, logs, system) and the JSON API under /api/v1/."""
    app = create_app(state.settings)
    click.echo(f"dashboard: http://{host}:{port}{root_path}/  (API: {root_path}/api/v1/openapi.json)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        root_path=root_path.rstrip("/"),
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="info",
    )
