"""The API described for machines: an OpenAPI 3.1 document at ``/openapi.json`` and the same
rendered as one plain HTML page at ``/docs`` (no script, nothing fetched from elsewhere).

Every route the application registers is described here; the test suite checks that, and checks
the answers it records against the schemas (``tests/openapi_answers.py``). The schemas are JSON
Schema 2020-12, as OpenAPI 3.1 has them. Both routes are open, like ``/healthz``: they describe
the API, not anything stored in it.

Past 400 lines on purpose: it is one table of every route and every schema, read top to bottom
like the README's API table; split, a route and the schemas it answers with would drift apart.
"""

from __future__ import annotations

import functools
import html
import json
from typing import Any

from aiohttp import web

from jobserver.common.records import BinaryType
from jobserver.common.states import ContextState, JobState
from jobserver.web import openapi_scheduling
from jobserver.web.render import raw_json_response

routes = web.RouteTableDef()

Schema = dict[str, Any]

TITLE = "Spark Job Server for Python"
VERSION = "1"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), **more: Any) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required), **more}


STRING: Schema = {"type": "string"}
LIST_OF_STRINGS: Schema = {"type": "array", "items": STRING}
SCHEMAS: dict[str, Schema] = {
    "Success": _object(
        {"status": {"const": "SUCCESS"}, "result": STRING}, ("status",), additionalProperties=False
    ),
    "ErrorMap": _object(
        {"message": STRING, "errorClass": STRING, "stack": STRING},
        ("message",),
        description="An exception as the job server reports it: message, class and stack trace.",
    ),
    "Error": _object(
        {
            "status": {
                "type": "string",
                "description": "ERROR, VALIDATION FAILED, JOB LOADING FAILED, NO SLOTS AVAILABLE, …",
            },
            "result": {"oneOf": [STRING, _ref("ErrorMap")]},
        },
        ("status", "result"),
        additionalProperties=False,
        description="The contract's error envelope.",
    ),
    "JobReport": _object(
        {
            "jobId": STRING,
            "startTime": STRING,
            "classPath": STRING,
            "context": STRING,
            "contextId": {"type": ["string", "null"]},
            "duration": STRING,
            "status": {"enum": [state.value for state in JobState]},
            "user": STRING,
            "result": {"description": "The job's result (any JSON), or its error map when it failed."},
            "progress": _ref("Progress"),
        },
        ("jobId", "startTime", "classPath", "context", "duration", "status"),
    ),
    "Counts": _object(
        {name: {"type": "integer", "minimum": 0} for name in ("total", "active", "completed", "failed")},
        ("total", "active", "completed", "failed"),
        additionalProperties=False,
    ),
    "Progress": _object(
        {
            "jobs": _ref("Counts"),
            "stages": _ref("Counts"),
            "tasks": _ref("Counts"),
            "updated": {"type": "string", "description": "When the driver measured it"},
        },
        ("jobs", "stages", "tasks", "updated"),
        additionalProperties=False,
        description="A running job's Spark jobs, stages and tasks from Spark's status tracker for its "
        "job group, measured every job-progress.interval while it runs (not before its first "
        "interval), kept in the memory of the server that runs its context; absent once it ended.",
    ),
    "LogPage": _object(
        {
            "from": {"type": "integer", "minimum": 0, "description": "The first line's number (from 0)"},
            "total": {"type": "integer", "minimum": 0, "description": "How many lines the log has"},
            "log": {"type": "array", "items": STRING},
        },
        ("from", "total", "log"),
        additionalProperties=False,
        description="Lines of a log, Livy's shape.",
    ),
    "JobAnswer": _object(
        {
            "jobId": STRING,
            "status": {"enum": [JobState.ERROR.value, JobState.KILLED.value]},
            "result": {"description": "The result (any JSON); the error map when status is there."},
        },
        ("jobId",),
        additionalProperties=False,
        description="A sync job's end: its result, or its status and error map when it failed.",
    ),
    "KillAnswer": _object(
        {"status": {"enum": ["KILLED", "ERROR"]}, "ERROR": _ref("ErrorMap")},
        ("status",),
        additionalProperties=False,
    ),
    "Context": _object(
        {
            "id": STRING,
            "name": STRING,
            "startTime": STRING,
            "endTime": STRING,
            "state": {"enum": [state.value for state in ContextState]},
            "applicationId": STRING,
            "url": STRING,
            "error": {"oneOf": [STRING, _ref("ErrorMap")], "description": "Why it ended, when it failed"},
            "user": STRING,
            "stuckJobs": {"type": "array", "items": STRING},
        },
        ("id", "name", "startTime", "endTime", "state"),
    ),
    "Binary": _object(
        {
            "app-name": STRING,
            "binary-type": {"enum": [kind.value for kind in BinaryType]},
            "upload-time": STRING,
        },
        ("binary-type", "upload-time"),
    ),
    "Cluster": _object(
        {
            "name": STRING,
            "master": STRING,
            "deployMode": {"enum": ["client", "cluster"]},
            "default": {"type": "boolean"},
            "kerberosPrincipal": {"type": ["string", "null"]},
            "contexts": {"type": "array", "items": STRING},
        },
        ("name", "master", "deployMode", "default", "contexts"),
    ),
    "Pool": _object(
        {
            "name": STRING,
            "size": {"type": "integer", "description": "Idle drivers the pool keeps warm"},
            "maxJobs": {"type": "integer", "description": "Jobs a driver runs before it is replaced"},
            "idle": {"type": "integer", "description": "Drivers ready for a job"},
            "busy": {"type": "integer", "description": "Drivers running a job (or being checked after it)"},
            "launching": {"type": "integer", "description": "Drivers starting"},
            "rejoining": {"type": "integer", "description": "Drivers of an earlier server, not back yet"},
            "contextIds": LIST_OF_STRINGS,
        },
        ("name", "size", "maxJobs", "idle", "busy", "launching", "rejoining", "contextIds"),
        additionalProperties=False,
    ),
    "NamedObject": _object({"name": STRING, "type": STRING, "storageLevel": STRING}, ("name", "type")),
}

# Every answer may be one of these errors, besides what its route lists.
ERRORS = {
    "400": "Bad request: a malformed parameter or body",
    "401": "Authentication is on and the request carries no valid credentials",
    "403": "The caller lacks the route's permission (or a setting is not allowed)",
    "404": "Not found",
    "409": "Conflict: the context is stopping, or the name is taken",
    "413": "Body too large",
    "415": "Unsupported media type",
    "500": "Internal error, or a context that failed to start (CONTEXT INIT ERROR)",
    "502": "The server that runs the context (a peer on the same database) did not answer",
    "503": "Unavailable: no slots, the metadata store or an authentication service is down",
}


def _parameter(name: str, where: str = "query", description: str = "", **schema: Any) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or STRING,
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


CONFIG_BODY = {
    "description": "A HOCON or JSON config (text/plain or application/json).",
    "required": False,
    "content": {"text/plain": {"schema": STRING}, "application/json": {"schema": {"type": "object"}}},
}
NAME = _parameter("name", "path", "A binary's or a context's name")
JOB_ID = _parameter("job_id", "path", "A job's id")
TAIL = _parameter("tail", "path", "Anything (ignored)")
LIST = {"type": "array", "items": STRING}
LOG_PAGING = [
    _parameter("from", description="The first line (from 0); default: the last `size` lines", type="integer"),
    _parameter("size", description="At most this many lines (100)", type="integer"),
]

# (method, canonical path) → operation; the trailing-slash twins share their twin's operation.
OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/healthz"): {"summary": "Liveness", "responses": {"200": _json(_ref("Success"), "Alive")}},
    ("GET", "/healthz/{tail}"): {
        "summary": "Liveness (any path below)",
        "parameters": [TAIL],
        "responses": {"200": _json(_ref("Success"), "Alive")},
    },
    ("GET", "/openapi.json"): {
        "summary": "This description",
        "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
    },
    ("GET", "/docs"): {
        "summary": "This description as an HTML page",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": STRING}}}},
    },
    ("GET", "/metrics"): {
        "summary": "Counters, histograms and gauges in Prometheus' text format (permission metrics:read)",
        "responses": {
            "200": {"description": "Prometheus text", "content": {"text/plain": {"schema": STRING}}}
        },
    },
    ("GET", "/"): {
        "summary": "The web console",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": STRING}}}},
    },
    ("GET", "/console/{name}"): {
        "summary": "The web console's script and style sheet",
        "parameters": [_parameter("name", "path", "console.js or console.css")],
        "responses": {"200": {"description": "The file", "content": {"text/javascript": {"schema": STRING}}}},
    },
    ("GET", "/binaries"): {
        "summary": "List binaries",
        "responses": {
            "200": _json({"type": "object", "additionalProperties": _ref("Binary")}, "Binaries by name")
        },
    },
    ("GET", "/binaries/{name}"): {
        "summary": "One binary",
        "parameters": [NAME],
        "responses": {"200": _json(_ref("Binary"), "The binary")},
    },
    ("POST", "/binaries/{name}"): {
        "summary": "Upload a binary (wheel, egg, zip, jar, a single module, or a URI as text)",
        "parameters": [NAME],
        "requestBody": {
            "required": True,
            "content": {
                "application/python-wheel": {"schema": {"type": "string", "format": "binary"}},
                "application/python-egg": {"schema": {"type": "string", "format": "binary"}},
                "application/python-archive": {"schema": {"type": "string", "format": "binary"}},
                "application/java-archive": {"schema": {"type": "string", "format": "binary"}},
                "text/x-python": {"schema": STRING},
                "text/uri-list": {"schema": STRING},
            },
        },
        "responses": {"201": _json(_ref("Success"), "Stored")},
    },
    ("DELETE", "/binaries/{name}"): {
        "summary": "Delete a binary",
        "parameters": [NAME],
        "responses": {"200": _json(_ref("Success"), "Deleted")},
    },
    ("GET", "/clusters"): {
        "summary": "The clusters contexts run on, with their contexts",
        "responses": {"200": _json({"type": "array", "items": _ref("Cluster")}, "The default first")},
    },
    ("GET", "/contexts"): {
        "summary": "Names of the running contexts",
        "responses": {"200": _json(LIST, "Context names")},
    },
    ("GET", "/contexts/{name}"): {
        "summary": "One context",
        "parameters": [NAME],
        "responses": {"200": _json(_ref("Context"), "The context")},
    },
    ("GET", "/contexts/{name}/objects"): {
        "summary": "The context's named objects",
        "parameters": [NAME],
        "responses": {"200": _json({"type": "array", "items": _ref("NamedObject")}, "Named objects")},
    },
    ("GET", "/contexts/{name}/logs"): {
        "summary": "The driver's log of the newest context of that name (spark-submit, Spark, the driver)",
        "parameters": [NAME, *LOG_PAGING],
        "responses": {"200": _json(_ref("LogPage"), "Lines of the log")},
    },
    ("POST", "/contexts/{name}"): {
        "summary": "Start a context; its settings as query parameters or in the body",
        "parameters": [
            NAME,
            _parameter("num-cpu-cores", description="Cores", type="integer"),
            _parameter("memory-per-node", description="Executor memory, e.g. 512m"),
            _parameter("context-factory", description="The context's factory class name"),
            _parameter("cluster", description="The cluster it runs on (GET /clusters; default: the first)"),
        ],
        "requestBody": CONFIG_BODY,
        "responses": {"200": _json(_ref("Success"), "Context initialized")},
    },
    ("DELETE", "/contexts/{name}"): {
        "summary": "Stop a context",
        "parameters": [NAME, _parameter("force", description="Kill at once", type="boolean")],
        "responses": {
            "200": _json(_ref("Success"), "Context stopped"),
            "202": {"description": "Still stopping; Location names the context"},
        },
    },
    ("PUT", "/contexts"): {
        "summary": "Stop every context (reset=reboot)",
        "parameters": [
            _parameter("reset", description="reboot", enum=["reboot"]),
            _parameter("sync", description="Wait for the stop", type="boolean"),
        ],
        "responses": {"200": _json(_ref("Success"), "Context reset")},
    },
    ("PUT", "/contexts/{tail}"): {
        "summary": "Stop every context (reset=reboot), any path below",
        "parameters": [TAIL, _parameter("reset", description="reboot", enum=["reboot"])],
        "responses": {"200": _json(_ref("Success"), "Context reset")},
    },
    ("GET", "/jobs"): {
        "summary": "Jobs, newest first",
        "parameters": [
            _parameter("limit", description="At most this many (50)", type="integer"),
            _parameter("status", description="Only jobs in this state", enum=[s.value for s in JobState]),
        ],
        "responses": {"200": _json({"type": "array", "items": _ref("JobReport")}, "Job reports")},
    },
    ("POST", "/jobs"): {
        "summary": "Run a job in a context, or ad hoc in a context of its own",
        "parameters": [
            _parameter("appName", description="The binary holding the job"),
            _parameter("classPath", description="The job's class or module:function"),
            _parameter("cp", description="Binaries or URIs, comma-separated"),
            _parameter("mainClass", description="The job's class or module:function (with cp)"),
            _parameter("context", description="A running context's name (none: ad hoc)"),
            _parameter("cluster", description="The cluster of an ad-hoc job's context"),
            _parameter("sync", description="Answer with the result", type="boolean"),
            _parameter("timeout", description="Seconds a sync request waits", type="integer"),
            _parameter("callbackUrl", description="Where the job's end is POSTed"),
            _parameter("sql", description="An SQL statement (no binary needed)"),
            _parameter("pool", description="A warm driver pool for an ad-hoc job (GET /pools)"),
        ],
        "requestBody": CONFIG_BODY,
        "responses": {
            "200": _json(_ref("JobAnswer"), "A sync job's end"),
            "202": _json(_ref("JobReport"), "Accepted: the job runs on"),
        },
    },
    ("GET", "/pools"): {
        "summary": "Warm driver pools for ad-hoc jobs: sizes, idle, busy and launching drivers",
        "responses": {"200": _json({"type": "array", "items": _ref("Pool")}, "The pools")},
    },
    ("GET", "/jobs/{job_id}"): {
        "summary": "A job's report, with its result when it finished",
        "parameters": [JOB_ID],
        "responses": {"200": _json(_ref("JobReport"), "The job")},
    },
    ("GET", "/jobs/{job_id}/config"): {
        "summary": "The config the job ran with",
        "parameters": [JOB_ID],
        "responses": {"200": _json({"type": "object"}, "The job's config")},
    },
    ("GET", "/jobs/{job_id}/logs"): {
        "summary": "What the job printed or logged (its thread's stdout, stderr and Python logging)",
        "parameters": [
            JOB_ID,
            *LOG_PAGING,
            _parameter(
                "follow",
                description="Stream the lines from `from` (0) as Server-Sent Events (`log`, the line's "
                "number as id; Last-Event-ID resumes) until the job ended, then an `end` event",
                type="boolean",
            ),
        ],
        "responses": {
            "200": {
                "description": "Lines of the log; with follow=true an event stream",
                "content": {
                    "application/json": {"schema": _ref("LogPage")},
                    "text/event-stream": {"schema": STRING},
                },
            }
        },
    },
    ("GET", "/jobs/{job_id}/events"): {
        "summary": "The job's state changes (`state`: its report) and progress (`progress`: "
        '{"jobId", "progress"}) as Server-Sent Events, ending after its final state',
        "parameters": [JOB_ID],
        "responses": {
            "200": {"description": "An event stream", "content": {"text/event-stream": {"schema": STRING}}}
        },
    },
    ("DELETE", "/jobs/{job_id}"): {
        "summary": "Kill a job",
        "parameters": [JOB_ID],
        "responses": {"200": _json(_ref("KillAnswer"), "Killed, or the job's error")},
    },
    ("GET", "/data"): {"summary": "Data files", "responses": {"200": _json(LIST, "File names")}},
    ("POST", "/data/{prefix}"): {
        "summary": "Upload a data file",
        "parameters": [_parameter("prefix", "path", "The file's name prefix")],
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        "responses": {
            "200": _json(
                _object({"result": _object({"filename": STRING}, ("filename",))}, ("result",)), "Stored"
            )
        },
    },
    ("DELETE", "/data/{filename}"): {
        "summary": "Delete a data file",
        "parameters": [_parameter("filename", "path", "The name the upload returned")],
        "responses": {"200": _json(_ref("Success"), "Deleted")},
    },
    ("PUT", "/data"): {
        "summary": "Delete every data file (reset=reboot)",
        "parameters": [_parameter("reset", description="reboot", enum=["reboot"])],
        "responses": {"200": _json(_ref("Success"), "Reset")},
    },
}
SCHEMAS.update(openapi_scheduling.SCHEMAS)
OPERATIONS.update(openapi_scheduling.OPERATIONS)
TWINS = {"/binaries/": "/binaries", "/contexts/": "/contexts", "/jobs/": "/jobs", "/data/": "/data"}


def operation(method: str, canonical: str) -> Schema | None:
    """The description of a route (its trailing-slash twin's for ``/jobs/`` and the like)."""
    return OPERATIONS.get((method, TWINS.get(canonical, canonical)))


@functools.cache
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Schema]] = {}
    for (method, path), described in OPERATIONS.items():
        responses = {**{code: _json(_ref("Error"), text) for code, text in ERRORS.items()}}
        responses.update(described["responses"])
        paths.setdefault(path, {})[method.lower()] = {**described, "responses": responses}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "spark-jobserver's REST API for Spark 4, in Python (README.md: walk-through).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(document(), separators=(",", ":")).encode()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return raw_json_response(_document_bytes())


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html")


@functools.cache
def _page() -> str:
    """The document as one HTML page: each route with its parameters and answers."""
    sections = []
    for path, methods in document()["paths"].items():
        for method, described in methods.items():
            parameters = "".join(
                f"<li><code>{html.escape(p['name'])}</code> ({p['in']}) {html.escape(p['description'])}</li>"
                for p in described.get("parameters", [])
            )
            answers = "".join(
                f"<li><code>{code}</code> {html.escape(answer['description'])}</li>"
                for code, answer in described["responses"].items()
                if code not in ERRORS or code in OPERATIONS[(method.upper(), path)]["responses"]
            )
            sections.append(
                f'<section><h2><span class="m">{method.upper()}</span> <code>{html.escape(path)}</code></h2>'
                f"<p>{html.escape(described['summary'])}</p>"
                + (f"<h3>Parameters</h3><ul>{parameters}</ul>" if parameters else "")
                + f"<h3>Answers</h3><ul>{answers}</ul></section>"
            )
    errors = "".join(f"<li><code>{code}</code> {html.escape(text)}</li>" for code, text in ERRORS.items())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{TITLE}: API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "section{border-top:1px solid #ccc}.m{font-family:monospace;color:#06c}</style></head>"
        f"<body><h1>{TITLE}: API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. "
        f"Any route may also answer, in the error envelope:</p><ul>{errors}</ul>{''.join(sections)}"
        "</body></html>"
    )
