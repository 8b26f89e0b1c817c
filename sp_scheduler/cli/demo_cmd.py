"""`sp-scheduler demo seed`: realistic application data for dev mode, tests and benchmarks."""

from __future__ import annotations

import time

import click

from sp_scheduler import demo
from sp_scheduler.cli.state import CliState, echo_json, pass_state
from sp_scheduler.errors import UsageError
from sp_scheduler.store.application import APPLICATION_TABLES

SCALES = {"small": 1_000, "medium": 100_000, "large": 1_000_000}  # users; the other tables scale with them


@click.group("demo")
def demo_group() -> None:
    """Demo data for trying the core jobs."""


@demo_group.command("seed")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="small",
    show_default=True,
    help="Preset size: small 1k users, medium 100k, large 1M (other tables scale with it).",
)
@click.option("--users", type=click.IntRange(min=1), help="Exact number of users (overrides --scale).")
@click.option(
    "--days", default=60, show_default=True, type=click.IntRange(1, 3650), help="Spread rows over this many past days."
)
@click.option("--append", is_flag=True, help="Add to application tables that already hold rows.")
@click.option("--reset", is_flag=True, help="Empty the application tables (and earlier demo log lines) first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def seed_cmd(
    state: CliState, scale: str, users: int | None, days: int, append: bool, reset: bool, as_json: bool
) -> None:
    """Fill users, sessions, contexts, messages, OAuth codes/tokens, logs and content with demo rows."""
    if append and reset:
        raise UsageError("--append and --reset contradict each other: pick one")
    plan = demo.SeedPlan.for_users(users or SCALES[scale], days)
    began = time.monotonic()
    with state.database() as conn:
        if reset:
            demo.reset(conn)
        filled = not reset and demo.application_has_rows(conn)
        if filled and not append:
            raise UsageError("the application tables already hold rows: pass --append to add to them or --reset")
        # Empty tables get their indexes built once at the end instead of row by row (much faster).
        report = demo.seed(conn, plan, rebuild=() if filled else APPLICATION_TABLES)
    elapsed = time.monotonic() - began
    if as_json:
        steps = {step: round(seconds, 3) for step, seconds in report.seconds.items()}
        echo_json({"rows": report.rows, "seconds": round(elapsed, 3), "steps": steps})
        return
    listed = ", ".join(f"{count} {table}" for table, count in report.rows.items())
    click.echo(f"seeded {listed} in {elapsed:.1f} s")
