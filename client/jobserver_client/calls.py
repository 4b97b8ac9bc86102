"""What each operation sends and how its answer reads: pure, shared by the sync and asyncio
clients, which only carry the bytes."""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

FINAL_STATES = frozenset({"FINISHED", "ERROR", "KILLED"})  # a job's, and a workflow's

# Content types the server takes for binaries, by file name suffix.
BINARY_TYPES = {
    ".whl": "application/python-wheel",
    ".egg": "application/python-egg",
    ".zip": "application/python-archive",
    ".jar": "application/java-archive",
    ".py": "text/x-python",
}


class JobServerError(Exception):
    """The server answered with an error status; ``body`` is its answer (the error envelope)."""

    def __init__(self, status: int, body: Any, call: Call) -> None:
        message = body.get("result") if isinstance(body, dict) else body
        if isinstance(message, dict):
            message = message.get("message", message)
        super().__init__(f"{call.method} {call.path} answered {status}: {message}")
        self.status = status
        self.body = body


class JobFailed(Exception):
    """A job ended ERROR or KILLED; ``report`` is its final report."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        error = report.get("result")
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(
            f"job {report.get('jobId')} ended {report.get('status')}: {message or ''}".rstrip(": ")
        )
        self.report = dict(report)


@dataclass(frozen=True)
class Call:
    """One HTTP request, before any client sends it."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    expected: frozenset[int] = frozenset({200})

    def target(self) -> str:
        return self.path + (f"?{urlencode(self.query)}" if self.query else "")


def authorization(user: str | None, password: str | None, token: str | None) -> str | None:
    """The Authorization header: a bearer token, or HTTP Basic, or none."""
    if token:
        return f"Bearer {token}"
    if user is not None:
        credentials = f"{user}:{password or ''}".encode()
        return "Basic " + base64.b64encode(credentials).decode()
    return None


def config_body(config: Mapping[str, Any] | str | None) -> tuple[bytes | None, str | None]:
    """A job's or context's config: a mapping goes as JSON, a string as HOCON text."""
    if config is None:
        return None, None
    if isinstance(config, str):
        return config.encode(), "text/plain"
    return json.dumps(config).encode(), "application/json"


def _name(value: str) -> str:
    return quote(value, safe="")


# Binaries


def list_binaries() -> Call:
    return Call("GET", "/binaries")


def get_binary(name: str) -> Call:
    return Call("GET", f"/binaries/{_name(name)}")


def upload_binary(name: str, content: bytes, content_type: str) -> Call:
    return Call(
        "POST", f"/binaries/{_name(name)}", body=content, content_type=content_type, expected=frozenset({201})
    )


def binary_content_type(path: Path) -> str:
    """The content type for a package file, by its suffix (a wheel, an egg, a jar, a module)."""
    known = BINARY_TYPES.get(path.suffix.lower())
    if known is None:
        guessed = mimetypes.guess_type(path.name)[0]
        raise ValueError(f"cannot tell the binary type of {path.name} ({guessed}): give content_type")
    return known


def delete_binary(name: str) -> Call:
    return Call("DELETE", f"/binaries/{_name(name)}")


# Contexts


def list_contexts() -> Call:
    return Call("GET", "/contexts")


def get_context(name: str) -> Call:
    return Call("GET", f"/contexts/{_name(name)}")


def create_context(name: str, settings: Mapping[str, Any] | None = None) -> Call:
    """A context with its settings (``num-cpu-cores``, ``spark.*``, …) as query parameters."""
    query = {key: _text(value) for key, value in (settings or {}).items()}
    return Call("POST", f"/contexts/{_name(name)}", query=query)


def delete_context(name: str, *, force: bool = False) -> Call:
    query = {"force": "true"} if force else {}
    return Call("DELETE", f"/contexts/{_name(name)}", query=query, expected=frozenset({200, 202}))


# Jobs


def job_parameters(
    class_path: str | None,
    app_name: str | None,
    cp: list[str] | None,
    context: str | None,
    sql: str | None,
    callback_url: str | None,
) -> dict[str, str]:
    """What a job runs, as POST /jobs's parameters: a class of ``app_name``, or a main class of
    ``cp``, or ``sql``; in ``context`` or ad hoc."""
    parameters: dict[str, str] = {}
    if cp:
        parameters["cp"] = ",".join(cp)
        if class_path:
            parameters["mainClass"] = class_path
    else:
        if app_name:
            parameters["appName"] = app_name
        if class_path:
            parameters["classPath"] = class_path
    for key, value in (("context", context), ("sql", sql), ("callbackUrl", callback_url)):
        if value:
            parameters[key] = value
    return parameters


def submit_job(
    class_path: str | None = None,
    *,
    app_name: str | None = None,
    cp: list[str] | None = None,
    context: str | None = None,
    config: Mapping[str, Any] | str | None = None,
    sync: bool = False,
    timeout_s: int | None = None,
    sql: str | None = None,
    callback_url: str | None = None,
) -> Call:
    """``POST /jobs``: a class (or ``module:function``) from ``app_name`` or ``cp``, or ``sql``;
    in ``context``, or ad hoc in a context of its own."""
    query = job_parameters(class_path, app_name, cp, context, sql, callback_url)
    if sync:
        query["sync"] = "true"
    if timeout_s is not None:
        query["timeout"] = str(int(timeout_s))
    body, content_type = config_body(config)
    return Call(
        "POST", "/jobs", query=query, body=body, content_type=content_type, expected=frozenset({200, 202})
    )


def get_job(job_id: str) -> Call:
    return Call("GET", f"/jobs/{_name(job_id)}")


def job_config(job_id: str) -> Call:
    return Call("GET", f"/jobs/{_name(job_id)}/config")


def list_jobs(*, limit: int | None = None, status: str | None = None) -> Call:
    query = {key: str(value) for key, value in (("limit", limit), ("status", status)) if value is not None}
    return Call("GET", "/jobs", query=query)


def kill_job(job_id: str) -> Call:
    return Call("DELETE", f"/jobs/{_name(job_id)}")


def job_logs(job_id: str, *, start: int | None = None, size: int | None = None) -> Call:
    """What the job printed: ``{"from", "total", "log"}`` (the last lines unless ``start``)."""
    query = {key: str(value) for key, value in (("from", start), ("size", size)) if value is not None}
    return Call("GET", f"/jobs/{_name(job_id)}/logs", query=query)


def follow_logs(job_id: str, *, start: int = 0) -> Call:
    """The job's lines from ``start`` as Server-Sent Events, until it ends."""
    return Call("GET", f"/jobs/{_name(job_id)}/logs", query={"follow": "true", "from": str(start)})


def job_events(job_id: str) -> Call:
    """The job's state changes and progress as Server-Sent Events, until it ends."""
    return Call("GET", f"/jobs/{_name(job_id)}/events")


class EventReader:
    """Server-Sent Events from the lines of a stream: ``feed`` each line (bytes, newline and all),
    get ``(event, data)`` once an event is complete; data is JSON decoded, except a ``log`` line."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, raw: bytes) -> tuple[str, Any] | None:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line:
            field_name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field_name == "event":
                self._event = value
            elif field_name == "data":
                self._data.append(value)
            return None
        if not self._data:
            return None
        event, text = self._event, "\n".join(self._data)
        self._event, self._data = "message", []
        return event, text if event == "log" else json.loads(text)


def progress_line(progress: Mapping[str, Any], width: int = 30) -> str:
    """``[#####.....] 12/40 tasks, stage 1/2, 1 Spark job`` from a job's ``progress``."""
    tasks, stages, jobs = progress.get("tasks", {}), progress.get("stages", {}), progress.get("jobs", {})
    total, done = int(tasks.get("total", 0)), int(tasks.get("completed", 0))
    filled = width * done // total if total else 0
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {done}/{total} tasks, stages {stages.get('completed', 0)}/{stages.get('total', 0)},"
        f" {jobs.get('total', 0)} Spark job(s)"
    )


def job_outcome(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """A sync answer as a report: ``{"jobId", "result"}`` reads FINISHED, an error keeps its status."""
    if "status" in answer:
        return answer
    return {**answer, "status": "FINISHED"}


# Schedules and workflows (docs/workflows.md)


def job_spec(
    class_path: str | None = None,
    *,
    app_name: str | None = None,
    cp: list[str] | None = None,
    context: str | None = None,
    config: Mapping[str, Any] | str | None = None,
    sql: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """A job as a schedule or a workflow step names it: POST /jobs's parameters and ``config``
    (an object, or HOCON text), the same options as ``submit_job``."""
    spec: dict[str, Any] = job_parameters(class_path, app_name, cp, context, sql, callback_url)
    if config is not None:
        spec["config"] = config if isinstance(config, str) else dict(config)
    return spec


def schedule_document(
    cron: str,
    *,
    job: Mapping[str, Any] | None = None,
    workflow: Mapping[str, Any] | None = None,
    time_zone: str | None = None,
    catch_up: str | None = None,
    overlap: str | None = None,
    paused: bool | None = None,
) -> dict[str, Any]:
    """A schedule's body: ``job`` (see ``job_spec``) or ``workflow`` at each due time of ``cron``;
    what is left out takes the server's default (UTC, catchUp last, overlap skip, not paused)."""
    if (job is None) == (workflow is None):
        raise ValueError("a schedule runs either a job or a workflow")
    document: dict[str, Any] = {"cron": cron}
    document["job" if job is not None else "workflow"] = dict(job or workflow or {})
    for key, value in (
        ("timeZone", time_zone),
        ("catchUp", catch_up),
        ("overlap", overlap),
        ("paused", paused),
    ):
        if value is not None:
            document[key] = value
    return document


def _json_call(method: str, path: str, document: Mapping[str, Any], expected: int) -> Call:
    return Call(
        method,
        path,
        body=json.dumps(document).encode(),
        content_type="application/json",
        expected=frozenset({expected}),
    )


def list_schedules() -> Call:
    return Call("GET", "/schedules")


def get_schedule(name: str) -> Call:
    return Call("GET", f"/schedules/{_name(name)}")


def create_schedule(name: str, document: Mapping[str, Any]) -> Call:
    return _json_call("POST", "/schedules", {**document, "name": name}, 201)


def replace_schedule(name: str, document: Mapping[str, Any]) -> Call:
    return _json_call("PUT", f"/schedules/{_name(name)}", {**document, "name": name}, 200)


def delete_schedule(name: str) -> Call:
    return Call("DELETE", f"/schedules/{_name(name)}")


def pause_schedule(name: str) -> Call:
    return Call("POST", f"/schedules/{_name(name)}/pause")


def resume_schedule(name: str) -> Call:
    return Call("POST", f"/schedules/{_name(name)}/resume")


def schedule_runs(name: str, *, limit: int | None = None) -> Call:
    query = {"limit": str(limit)} if limit is not None else {}
    return Call("GET", f"/schedules/{_name(name)}/runs", query=query)


def start_workflow(workflow: Mapping[str, Any]) -> Call:
    """``{"name", "steps": [{"name", "job", "after", "continue-on-failure"}]}``: 202 when started."""
    return _json_call("POST", "/workflows", workflow, 202)


def list_workflows(*, limit: int | None = None, status: str | None = None) -> Call:
    query = {key: str(value) for key, value in (("limit", limit), ("status", status)) if value is not None}
    return Call("GET", "/workflows", query=query)


def get_workflow(workflow_id: str) -> Call:
    return Call("GET", f"/workflows/{_name(workflow_id)}")


def kill_workflow(workflow_id: str) -> Call:
    return Call("DELETE", f"/workflows/{_name(workflow_id)}")


# Data files


def list_data() -> Call:
    return Call("GET", "/data")


def upload_data(prefix: str, content: bytes) -> Call:
    return Call("POST", f"/data/{_name(prefix)}", body=content, content_type="application/octet-stream")


def delete_data(filename: str) -> Call:
    return Call("DELETE", f"/data/{quote(filename, safe='')}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
