"""The `sp-scheduler` command: operators' single entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sp_scheduler import __version__
from sp_scheduler.cli.lazy import LazyGroup
from sp_scheduler.cli.state import CliState
from sp_scheduler.errors import ConfigError, ExitCode, SchedulerError
from sp_scheduler.settings import Settings

_COMMANDS = {
    "jobs": "sp_scheduler.cli.jobs_cmd:jobs_group",
    "cron": "sp_scheduler.cli.cron_cmd:cron_group",
    "config": "sp_scheduler.cli.config_cmd:config_group",
    "db": "sp_scheduler.cli.db_cmd:db_group",
    "worker": "sp_scheduler.cli.process_cmd:worker_cmd",
    "beat": "sp_scheduler.cli.process_cmd:beat_cmd",
    "dev": "sp_scheduler.cli.dev_cmd:dev_cmd",
    "health": "sp_scheduler.cli.health_cmd:health_cmd",
    "logs": "sp_scheduler.cli.logs_cmd:logs_group",
    "demo": "sp_scheduler.cli.demo_cmd:demo_group",
    "queue": "sp_scheduler.cli.queue_cmd:queue_group",
    "alerts": "sp_scheduler.cli.alerts_cmd:alerts_group",
    "notifier": "sp_scheduler.cli.notifier_cmd:notifier_cmd",
    "web": "sp_scheduler.cli.web_cmd:web_cmd",
}


class _Root(LazyGroup):
    """Turns expected errors into one line on stderr and a named exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            ctx.exit(exc.exit_code)
        except SchedulerError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(
    cls=_Root,
    lazy=_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="sp-scheduler")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="SP_CONFIG",
    help="Scheduler config file [env SP_CONFIG; default services/scheduler/config.yaml].",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(path_type=Path),
    envvar="SP_PROFILE",
    help="Profile override file (schedule/enabled per extension+job) [env SP_PROFILE].",
)
@click.option("--database-url", envvar="SP_DATABASE_URL", help="Postgres URL [env SP_DATABASE_URL].")
@click.option("--redis-url", envvar="SP_REDIS_URL", help="Redis URL for broker and schedule [env SP_REDIS_URL].")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    profile_path: Path | None,
    database_url: str | None,
    redis_url: str | None,
) -> None:
    """sp-scheduler: cron jobs on Celery workers, with every run recorded in Postgres."""
    settings = Settings.from_env(
        config_path=config_path, profile_path=profile_path, database_url=database_url, redis_url=redis_url
    )
    ctx.obj = CliState(settings)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sp-scheduler")


__all__ = ["ExitCode", "cli", "main"]
