"""The JSON API under /api/v1/: the same documents as the CLI's `--json`, built by `sp_scheduler.documents`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sp_scheduler.dashboard.context import dashboard
from sp_scheduler.dashboard.openapi import openapi_document
from sp_scheduler.documents.jobs import read_job_details, read_jobs_list
from sp_scheduler.documents.runs import LOG_BATCH, RunFilter, parse_limit, run_document, run_logs, runs_page
from sp_scheduler.documents.status import StatusReport, queues_of, read_redis_facts, read_status
from sp_scheduler.errors import UsageError

SHOWN_NEXT_RUNS = 5  # as `jobs show`'s default --count


class JSONDocument(JSONResponse):
    """JSON as the CLI prints it: values it cannot encode natively (dates in params) as strings."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False, separators=(",", ":")).encode()


def whole_number(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A query value between `low` and `high`; a 400 naming it otherwise."""
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} {text!r}: expected a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} {value}: expected a whole number from {low} to {high}")
    return value


async def list_jobs(request: Request) -> JSONDocument:
    state = dashboard(request)
    catalog = state.catalog()
    now = datetime.now(UTC)
    return JSONDocument(await state.database.run(lambda conn: read_jobs_list(catalog, conn, now)))


async def show_job(request: Request) -> JSONDocument:
    state = dashboard(request)
    catalog = state.catalog()
    name = request.path_params["name"]
    catalog.get(name)  # an unknown job is a 404 without a database round trip
    count = whole_number(request, "count", SHOWN_NEXT_RUNS, 0, 100)
    now = datetime.now(UTC)
    return JSONDocument(await state.database.run(lambda conn: read_job_details(catalog, name, conn, now, count)))


async def list_runs(request: Request) -> JSONDocument:
    runs = RunFilter.from_query(request.query_params)
    return JSONDocument(await dashboard(request).database.run(lambda conn: runs_page(conn, runs)))


async def show_run(request: Request) -> JSONDocument:
    run_id = request.path_params["run_id"]
    return JSONDocument(await dashboard(request).database.run(lambda conn: run_document(conn, run_id)))


async def run_log_lines(request: Request) -> JSONDocument:
    run_id = request.path_params["run_id"]
    after = whole_number(request, "after", 0, 0, 2**63 - 1)
    limit = parse_limit(request.query_params.get("limit"), LOG_BATCH, LOG_BATCH)
    return JSONDocument(await dashboard(request).database.run(lambda conn: run_logs(conn, run_id, after, limit)))


async def status_report(request: Request, *, with_schema: bool = False) -> StatusReport:
    """Redis's facts and the ledger's, each read in a worker thread."""
    state = dashboard(request)
    catalog = state.catalog()
    facts = await run_in_threadpool(read_redis_facts, state.redis, state.settings.redis_url, queues_of(catalog))
    now = datetime.now(UTC)
    return await state.database.run(lambda conn: read_status(catalog, facts, conn, now, with_schema=with_schema))


async def status(request: Request) -> JSONDocument:
    return JSONDocument((await status_report(request)).to_dict())


async def openapi(request: Request) -> JSONDocument:
    return JSONDocument(openapi_document(request.scope.get("root_path", "")))


ROUTES = [
    Route("/api/v1/jobs", list_jobs),
    Route("/api/v1/jobs/{name}", show_job),
    Route("/api/v1/runs", list_runs),
    Route("/api/v1/runs/{run_id}", show_run),
    Route("/api/v1/runs/{run_id}/logs", run_log_lines),
    Route("/api/v1/status", status),
    Route("/api/v1/openapi.json", openapi),
]
