"""The server-rendered pages: jobs, one job, one run, the system."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sp_scheduler.dashboard.api import status_report
from sp_scheduler.dashboard.context import dashboard
from sp_scheduler.dashboard.render import render
from sp_scheduler.dashboard.svg import runs_plot
from sp_scheduler.dashboard.views import LedgerFacts, job_page, jobs_rows, ledger_reads, run_page
from sp_scheduler.documents.runs import RunFilter
from sp_scheduler.documents.status import alert_text
from sp_scheduler.jobs import TRIGGERS
from sp_scheduler.redact import redis_where
from sp_scheduler.run_status import RUN_STATUSES

STRIP_STATUSES = ("succeeded", "failed", "timeout", "lost", "skipped", "missed", "running", "queued")


async def jobs_page(request: Request) -> HTMLResponse:
    state = dashboard(request)
    catalog = state.catalog()
    now = datetime.now(UTC)
    reads = await asyncio.gather(*(state.database.run(read) for read in ledger_reads(catalog.names())))
    rows = await run_in_threadpool(jobs_rows, catalog, LedgerFacts(*reads), now)
    return render(
        request,
        "jobs.html",
        {"rows": rows, "scheduler_enabled": catalog.scheduler_enabled, "now": now, "statuses": STRIP_STATUSES},
    )


async def job_detail_page(request: Request) -> HTMLResponse:
    state = dashboard(request)
    catalog = state.catalog()
    name = request.path_params["name"]
    catalog.get(name)  # an unknown job is a 404 page without a database round trip
    runs = dataclasses.replace(RunFilter.from_query(request.query_params), job=name)
    now = datetime.now(UTC)
    page = await state.database.run(lambda conn: job_page(catalog, name, runs, conn, now))
    filters = {key: value for key, value in runs.query_values().items() if key != "job"}
    return render(
        request,
        "job.html",
        {
            "job": page.details,
            "runs": page.runs,
            "filters": filters,
            "limit": runs.limit,
            "next_page": urlencode({**filters, "limit": runs.limit, "cursor": page.next_cursor})
            if page.next_cursor
            else None,
            "statuses": RUN_STATUSES,
            "triggers": TRIGGERS,
            "plot": runs_plot(list(reversed(page.runs))),
        },
    )


async def run_detail_page(request: Request) -> HTMLResponse:
    run_id = request.path_params["run_id"]
    record, logs = await dashboard(request).database.run(lambda conn: run_page(conn, run_id))
    return render(request, "run.html", {"run": record, "fields": record.to_dict(), "logs": logs})


async def system_page(request: Request) -> HTMLResponse:
    state = dashboard(request)
    report = await status_report(request, with_schema=True)
    return render(
        request,
        "system.html",
        {
            "report": report,
            "standbys": [name for name in report.beat.instances if name != report.beat.leader],
            "database": state.database.where,
            "redis": redis_where(state.settings.redis_url),
            "alerts": [
                (name, alert_text(alert, report.overrides.get(name) is False), alert)
                for name, alert in sorted(report.alerts.items())
                if alert.state != "ok"
            ],
        },
    )


ROUTES = [
    Route("/", jobs_page, name="jobs"),
    Route("/jobs/{name}", job_detail_page, name="job"),
    Route("/runs/{run_id}", run_detail_page, name="run"),
    Route("/system", system_page, name="system"),
]
