"""The OpenAPI description of schedules and workflows: their schemas and routes, merged into
``openapi.py``'s tables (kept apart so that each stays readable top to bottom)."""

from __future__ import annotations

from typing import Any

from jobserver.common.scheduling import RunState, StepState, WorkflowState

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
ERROR_MAP: Schema = {"type": "object", "additionalProperties": STRING}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required)}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": STRING}


def _body(schema: Schema, description: str) -> Schema:
    return {"description": description, "required": True, "content": {"application/json": {"schema": schema}}}


JOB_SPEC = _object(
    {
        **{
            name: STRING
            for name in (
                "appName",
                "classPath",
                "cp",
                "mainClass",
                "context",
                "cluster",
                "callbackUrl",
                "sql",
                "pool",
            )
        },
        "config": {
            "oneOf": [{"type": "object"}, STRING],
            "description": "The job's config: an object or HOCON text",
        },
    }
)
SCHEMAS: dict[str, Schema] = {
    "JobSpec": {**JOB_SPEC, "description": "POST /jobs's parameters and its body as `config`"},
    "WorkflowSpec": _object(
        {
            "name": STRING,
            "steps": {
                "type": "array",
                "items": _object(
                    {
                        "name": STRING,
                        "job": _ref("JobSpec"),
                        "after": {"type": "array", "items": STRING},
                        "continue-on-failure": {"type": "boolean"},
                    },
                    ("name", "job"),
                ),
            },
        },
        ("steps",),
    ),
    "Schedule": _object(
        {
            "name": STRING,
            "cron": {"type": "string", "description": "Five fields: minute hour day month weekday"},
            "timeZone": {"type": "string", "description": "An IANA time zone (UTC)"},
            "job": _ref("JobSpec"),
            "workflow": _ref("WorkflowSpec"),
            "catchUp": {
                "enum": ["skip", "last"],
                "description": "Missed due times: none runs, or the last once",
            },
            "overlap": {"enum": ["skip", "queue"], "description": "A due time while the previous run goes"},
            "paused": {"type": "boolean"},
            "nextDueAt": STRING,
            "createdAt": STRING,
            "user": STRING,
        },
        ("name", "cron"),
    ),
    "ScheduleRun": _object(
        {
            "dueAt": STRING,
            "state": {"enum": [state.value for state in RunState]},
            "claimedBy": {"type": "string", "description": "The server that claimed the due time"},
            "jobId": STRING,
            "workflowId": STRING,
            "status": {"type": "string", "description": "The state of its job or workflow"},
            "error": STRING,
        },
        ("dueAt", "state", "claimedBy"),
    ),
    "Workflow": _object(
        {
            "workflowId": STRING,
            "name": STRING,
            "state": {"enum": [state.value for state in WorkflowState]},
            "startTime": STRING,
            "endTime": STRING,
            "schedule": STRING,
            "user": STRING,
            "error": ERROR_MAP,
            "steps": {
                "type": "array",
                "items": _object(
                    {
                        "name": STRING,
                        "state": {"enum": [state.value for state in StepState]},
                        "after": {"type": "array", "items": STRING},
                        "jobId": STRING,
                        "error": ERROR_MAP,
                    },
                    ("name", "state", "after"),
                ),
            },
        },
        ("workflowId", "name", "state", "startTime", "steps"),
    ),
}

NAME = _path("name", "A schedule's name")
WORKFLOW_ID = _path("workflow_id", "A workflow's id")
LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": "At most this many (50)",
    "schema": {"type": "integer"},
}
SCHEDULE = _json(_ref("Schedule"), "The schedule")
WORKFLOW = _json(_ref("Workflow"), "The workflow, with its steps' states and job ids")

OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/schedules"): {
        "summary": "Schedules, by name",
        "responses": {"200": _json({"type": "array", "items": _ref("Schedule")}, "Schedules")},
    },
    ("POST", "/schedules"): {
        "summary": "Create a schedule: a job or a workflow at each due time of a cron expression",
        "requestBody": _body(
            _ref("Schedule"), "name, cron, timeZone, job or workflow, catchUp, overlap, paused"
        ),
        "responses": {"201": SCHEDULE},
    },
    ("GET", "/schedules/{name}"): {
        "summary": "One schedule",
        "parameters": [NAME],
        "responses": {"200": SCHEDULE},
    },
    ("PUT", "/schedules/{name}"): {
        "summary": "Replace a schedule (its next due time counts from now)",
        "parameters": [NAME],
        "requestBody": _body(_ref("Schedule"), "As for POST /schedules; the name is the path's"),
        "responses": {"200": SCHEDULE},
    },
    ("DELETE", "/schedules/{name}"): {
        "summary": "Delete a schedule and its runs' records (its jobs and workflows stay)",
        "parameters": [NAME],
        "responses": {"200": _json(_ref("Success"), "Deleted")},
    },
    ("POST", "/schedules/{name}/pause"): {
        "summary": "Pause a schedule: no runs start until it is resumed",
        "parameters": [NAME],
        "responses": {"200": SCHEDULE},
    },
    ("POST", "/schedules/{name}/resume"): {
        "summary": "Resume a schedule from its next due time (those while paused do not run)",
        "parameters": [NAME],
        "responses": {"200": SCHEDULE},
    },
    ("GET", "/schedules/{name}/runs"): {
        "summary": "The schedule's runs, newest due time first, with their jobs' or workflows' states",
        "parameters": [NAME, LIMIT],
        "responses": {"200": _json({"type": "array", "items": _ref("ScheduleRun")}, "Runs")},
    },
    ("GET", "/workflows"): {
        "summary": "Workflows, newest first",
        "parameters": [
            LIMIT,
            {
                "name": "status",
                "in": "query",
                "required": False,
                "description": "Only those in this state",
                "schema": {"enum": [s.value for s in WorkflowState]},
            },
        ],
        "responses": {"200": _json({"type": "array", "items": _ref("Workflow")}, "Workflows")},
    },
    ("POST", "/workflows"): {
        "summary": "Start a workflow: steps, each a job, after the steps they name",
        "requestBody": _body(_ref("WorkflowSpec"), "name, steps"),
        "responses": {"202": WORKFLOW},
    },
    ("GET", "/workflows/{workflow_id}"): {
        "summary": "A workflow's state and each step's state and job id",
        "parameters": [WORKFLOW_ID],
        "responses": {"200": WORKFLOW},
    },
    ("DELETE", "/workflows/{workflow_id}"): {
        "summary": "Kill a workflow: its running steps' jobs are killed, the others never start",
        "parameters": [WORKFLOW_ID],
        "responses": {"200": WORKFLOW},
    },
}
