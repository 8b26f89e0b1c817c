"""`sp-scheduler db`: the ledger's schema."""

from __future__ import annotations

import click

from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.store import connect, describe_url, migrate, schema_version


@click.group("db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("migrate")
@pass_state
def migrate_cmd(state: CliState) -> None:
    """Apply pending schema migrations (idempotent; safe to run from several processes at once)."""
    url = state.settings.require_database_url()
    with connect(url) as conn:
        applied = migrate(conn)
        version = schema_version(conn)
    if applied:
        click.echo(f"migrated {describe_url(url)} to schema version {version} (applied {', '.join(map(str, applied))})")
    else:
        click.echo(f"{describe_url(url)} is up to date (schema version {version})")
