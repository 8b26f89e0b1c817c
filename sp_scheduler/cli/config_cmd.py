"""`sp-scheduler config`: check the configuration before deploying it."""

from __future__ import annotations

import os

import click

from sp_scheduler.catalog import check_catalog
from sp_scheduler.cli.state import CliState, echo_json, pass_state
from sp_scheduler.config import SchedulerConfig
from sp_scheduler.config_alerts import unset_url_variables
from sp_scheduler.errors import ExitCode, Problem


@click.group("config")
def config_group() -> None:
    """Inspect and validate services/scheduler/config.yaml."""


@config_group.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the exit code is the same).")
@pass_state
def validate(state: CliState, as_json: bool) -> None:
    """Report every problem in the config, profile and extensions; exit 2 if there are any."""
    catalog, problems, warnings = check_catalog(state.settings)
    if catalog.config is not None:
        warnings = [*warnings, *_unset_alert_urls(catalog.config)]
    if as_json:
        settings = state.settings
        echo_json(
            {
                "ok": not problems,
                "config": str(settings.config_path),
                "profile": str(settings.profile_path) if settings.profile_path else None,
                "configured": sum(1 for definition in catalog if definition.configured),
                "registered": len(catalog),
                "problems": [_problem(p) for p in problems],
                "warnings": [_problem(w) for w in warnings],
            }
        )
        if problems:
            raise SystemExit(ExitCode.INVALID)
        return
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"{len(problems)} problem(s) found", err=True)
        raise SystemExit(ExitCode.INVALID)
    settings = state.settings
    where = str(settings.config_path) + (f" + {settings.profile_path}" if settings.profile_path else "")
    scheduled = sum(1 for definition in catalog if definition.configured)
    click.echo(f"ok: {where}: {scheduled} configured job(s), {len(catalog)} registered")


def _unset_alert_urls(config: SchedulerConfig) -> list[Problem]:
    where = str(config.path) if config.path else "config"
    return [
        Problem(where, None, f"alerts target {name!r}: {variable} is not set here; the notifier needs it to send")
        for name, variable in unset_url_variables(config.alerts, os.environ)
    ]


def _problem(problem: Problem) -> dict[str, str | None]:
    return {"file": problem.file, "job": problem.job, "reason": problem.reason, "message": str(problem)}
