"""`sp-scheduler jobs status`: is the scheduler alive, and is every job on time?"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from sp_scheduler.cli.state import CliState, echo_json, echo_table, iso, pass_state
from sp_scheduler.documents.status import (
    RedisFacts,
    alert_text,
    queues_of,
    read_redis_facts,
    read_status,
    status_redis_client,
)
from sp_scheduler.redact import redis_where
from sp_scheduler.redis_url import parse_sentinel_url
from sp_scheduler.status import CheckCode, JobHealth


def _redis_facts(state: CliState, queues: list[str]) -> RedisFacts:
    client = status_redis_client(state.settings.redis_url)
    try:
        return read_redis_facts(client, state.settings.redis_url, queues)
    finally:
        client.close()


def _redis_in_use(url: str, master: str | None) -> str:
    """The Redis this process talks to, for the `redis:` line: the Sentinels' master, or the URL's server."""
    tls = " over TLS" if url.lower().startswith("rediss") else ""
    if master is not None:
        return f"master {master} ({parse_sentinel_url(url).master_name}, from Sentinel{tls})"
    return f"{redis_where(url)}{tls}"


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit non-zero on a problem: 10 no beat leads, 11 no worker seen, 12 a job is late (most severe wins).",
)
@pass_state
def status_cmd(state: CliState, as_json: bool, check: bool) -> None:
    """Beat leader and last tick, workers seen, queue depth, and per job last success/failure and lateness."""
    catalog = state.catalog()
    facts = _redis_facts(state, queues_of(catalog))
    with state.database() as conn:
        report = read_status(catalog, facts, conn, datetime.now(UTC))
    beat, seen, health, code = report.beat, report.workers, report.jobs, report.code
    if as_json:
        echo_json(report.to_dict())
        _exit_for(code, check, health)
        return
    if beat.leader and beat.lag_seconds is not None:
        stale = "" if beat.healthy else "  (STALE: no leader is ticking)"
        click.echo(f"beat:     leader {beat.leader}, last tick {beat.lag_seconds:.1f} s ago{stale}")
    else:
        click.echo("beat:     no leader (is `sp-scheduler beat` running?)")
    standby = [name for name in beat.instances if name != beat.leader]
    if standby:
        click.echo(f"          standby: {', '.join(standby)}")
    click.echo(f"workers:  {len(seen)} seen in the last minute" + (f" ({', '.join(seen)})" if seen else ""))
    click.echo("queues:   " + ", ".join(f"{queue} {depth} waiting" for queue, depth in report.queues.items()))
    click.echo(f"redis:    {_redis_in_use(state.settings.redis_url, report.redis_master)}")
    if report.dead_letters:
        click.echo(f"          {report.dead_letters} set aside as unusable (see `sp-scheduler queue dead-letters`)")
    delivery = report.delivery
    if delivery.retrying or delivery.gave_up:
        click.echo(
            f"alerts:   {delivery.retrying} delivery(ies) retrying, {delivery.gave_up} given up in the last day"
            f" (last error: {delivery.last_error or '-'}; see `sp-scheduler alerts history`)"
        )
    echo_table(
        ["JOB", "ENABLED", "NEXT RUN", "LAST SUCCESS", "LAST FAILURE", "LATE", "ALERT"],
        [
            [
                job.name,
                "yes" if job.enabled else "no",
                iso(job.next_run),
                iso(job.last_success),
                iso(job.last_failure),
                "LATE" if job.late else "",
                alert_text(report.alerts.get(job.name), report.overrides.get(job.name) is False),
            ]
            for job in health
        ],
    )
    _exit_for(code, check, health)


def _exit_for(code: CheckCode, check: bool, health: list[JobHealth]) -> None:
    """With --check, a one-line reason on stderr and the documented exit code."""
    if not check or code is CheckCode.OK:
        return
    problems = {
        CheckCode.NO_BEAT: "no beat leads (or the leader stopped ticking)",
        CheckCode.NO_WORKER: "no worker reported in the last minute",
        CheckCode.LATE: "late: " + ", ".join(job.name for job in health if job.late),
    }
    click.echo(f"check failed ({int(code)}): {problems[code]}", err=True)
    raise SystemExit(int(code))
