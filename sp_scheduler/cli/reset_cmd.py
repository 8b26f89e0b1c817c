"""`sp-scheduler jobs reset NAME...`: clear enable/disable overrides, so the config's value stands again."""

from __future__ import annotations

import click

from sp_scheduler.cli.runs_cmd import signal_beat
from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.store import reset_override


@click.command("reset")
@click.argument("names", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the job's override history, shown by jobs show).")
@pass_state
def reset_cmd(state: CliState, names: tuple[str, ...], reason: str | None) -> None:
    """Clear the override of each job: back to the config's (YAML and profile) enabled value."""
    catalog = state.catalog()
    definitions = [catalog.get(name) for name in names]  # every name is checked before anything changes
    changed = False
    with state.database() as conn:
        for definition in definitions:
            cleared = reset_override(conn, definition.name, actor=state.settings.actor, reason=reason)
            config_value = "enabled" if definition.yaml_enabled else "disabled"
            if not definition.configured:
                config_value += ": not configured"
            if cleared is None:
                click.echo(f"{definition.name}: no override; the config's value stands ({config_value})")
                continue
            changed = True
            was = "enabled" if cleared.enabled else "disabled"
            click.echo(
                f"reset {definition.name} by {state.settings.actor}: was {was} by {cleared.actor}, "
                f"now the config's value ({config_value})"
            )
    if changed:
        signal_beat(state)
