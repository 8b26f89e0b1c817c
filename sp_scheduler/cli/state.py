"""What every CLI command shares: settings, the job catalogue and (lazily) the database."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from sp_scheduler.catalog import Catalog, load_catalog
from sp_scheduler.settings import Settings

if TYPE_CHECKING:
    import psycopg


@dataclass
class CliState:
    """Built once by the root command from flags and environment."""

    settings: Settings
    _catalog: Catalog | None = field(default=None, repr=False)

    def catalog(self) -> Catalog:
        """The validated catalogue; ConfigError (exit 2) when config or extensions are broken."""
        if self._catalog is None:
            self._catalog = load_catalog(self.settings)
        return self._catalog

    @property
    def has_database(self) -> bool:
        return bool(self.settings.database_url)

    @contextmanager
    def database(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection to a database whose schema is current (one-line errors otherwise)."""
        # Offline commands must not load psycopg.
        from sp_scheduler.store import connect, require_current_schema  # noqa: PLC0415

        with connect(self.settings.require_database_url()) as conn:
            require_current_schema(conn)
            yield conn

    @contextmanager
    def optional_database(self) -> Iterator[psycopg.Connection[Any] | None]:
        """`database()` when one is configured, else None: for the commands that also work offline."""
        if not self.has_database:
            yield None
            return
        with self.database() as conn:
            yield conn


pass_state = click.make_pass_decorator(CliState)


def iso(value: datetime | None) -> str:
    """ISO-8601 with offset, or '-'."""
    return value.isoformat() if value is not None else "-"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned table; the last column is not padded."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))
