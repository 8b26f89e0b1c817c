"""The OpenAPI 3.1 description of /api/v1/, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from sp_scheduler.jobs import TRIGGERS
from sp_scheduler.run_status import RUN_STATUSES

_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY_OBJECT = {"type": "object", "additionalProperties": True}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _answers(description: str, *errors: int) -> dict[str, Any]:
    reasons = {
        400: "a filter or parameter is wrong; `error` names it",
        401: "no valid token (actions need `Authorization: Bearer <SP_WEB_TOKEN>`)",
        403: "actions are turned off (start with --actions or SP_WEB_ACTIONS=1)",
        404: "unknown job or run",
        409: "refused: the job is disabled (pass force)",
        503: "Postgres or Redis does not answer; `service` names which",
    }
    answers: dict[str, Any] = {
        "200": {"description": description, "content": {"application/json": {"schema": _ANY_OBJECT}}}
    }
    for code in (*errors, 503):
        answers[str(code)] = {"description": reasons[code], "content": {"application/json": {"schema": _ERROR}}}
    return answers


def _action(summary: str, body: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [
                _path("name", "job name"),
                {"name": "X-Actor", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "who acts (recorded as '<X-Actor> via web'; default: the server's SP_ACTOR)"},
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object", "properties": body}}},
            },
            "responses": _answers("done", 400, 401, 403, 404, *errors),
        }
    }  # fmt: skip


def _actions() -> dict[str, Any]:
    """The POST actions: only with --actions (SP_WEB_ACTIONS=1) and the bearer token."""
    text = {"type": "string"}
    override = {"reason": text, "for": {"type": "string", "description": "30m, 2h, 1d"},
                "until": {"type": "string", "description": "ISO-8601"}}  # fmt: skip
    return {
        "/api/v1/jobs/{name}/run": _action(
            "Run now (202 with the run id), parameters checked as `jobs run -p` checks them",
            {"params": {"type": "object"}, "force": {"type": "boolean"}},
            409,
        ),
        "/api/v1/jobs/{name}/disable": _action("Disable (an override, as `jobs disable`)", override),
        "/api/v1/jobs/{name}/enable": _action("Enable (an override, as `jobs enable`)", override),
        "/api/v1/jobs/{name}/reset": _action("Reset to the config's value (as `jobs reset`)", {"reason": text}),
    }


def openapi_document(root_path: str = "") -> dict[str, Any]:
    """The description, with the server's path prefix (behind a proxy) as its server URL."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sp-scheduler API",
            "version": "1",
            "description": "Jobs, runs, log lines and scheduler status; the documents of the CLI's --json.",
        },
        "servers": [{"url": root_path or "/"}],
        "paths": {
            "/api/v1/jobs": {"get": {"summary": "Every job (as `jobs list --json`)", "responses": _answers("jobs")}},
            "/api/v1/jobs/{name}": {
                "get": {
                    "summary": "One job (as `jobs show NAME --json`)",
                    "parameters": [
                        _path("name", "job name"),
                        _query("count", "upcoming fire times to list (0-100, default 5)", {"type": "integer"}),
                    ],
                    "responses": _answers("the job", 400, 404),
                }
            },
            "/api/v1/runs": {
                "get": {
                    "summary": "Runs, newest first, one page at a time",
                    "parameters": [
                        _query("job", "only this job", {"type": "string"}),
                        _query("status", "only this status", {"type": "string", "enum": list(RUN_STATUSES)}),
                        _query("trigger", "only this trigger", {"type": "string", "enum": list(TRIGGERS)}),
                        _query("since", "created at or after (ISO-8601, or an age: 30m, 2d)", {"type": "string"}),
                        _query("until", "created before (ISO-8601, or an age)", {"type": "string"}),
                        _query("limit", "page size (1-10000, default 50)", {"type": "integer"}),
                        _query("cursor", "`next_cursor` of the previous page", {"type": "string"}),
                    ],
                    "responses": _answers("{runs: [...], next_cursor: string|null}", 400),
                }
            },
            "/api/v1/runs/{run_id}": {
                "get": {
                    "summary": "One run, every recorded field",
                    "parameters": [_path("run_id", "run id (UUID)")],
                    "responses": _answers("the run", 404),
                }
            },
            "/api/v1/runs/{run_id}/logs": {
                "get": {
                    "summary": "A run's log lines after a line id, oldest first",
                    "parameters": [
                        _path("run_id", "run id (UUID)"),
                        _query(
                            "after", "line id to start after (`next_after` of the last answer)", {"type": "integer"}
                        ),
                        _query("limit", "lines per answer (1-1000)", {"type": "integer"}),
                    ],
                    "responses": _answers("{run_id, status, finished, logs: [...], next_after}", 400, 404),
                }
            },
            **_actions(),
            "/api/v1/status": {
                "get": {
                    "summary": "Beat, workers, queues and per-job health (as `jobs status --json`)",
                    "responses": _answers("status"),
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "SP_WEB_TOKEN"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "service": {"type": "string"}},
                }
            },
        },
    }
