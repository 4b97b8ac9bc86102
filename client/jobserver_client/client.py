"""The sync client: the standard library's HTTP, one method per operation."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jobserver_client import calls
from jobserver_client.calls import FINAL_STATES, Call, JobFailed, JobServerError
from jobserver_client.documents import read_document

DEFAULT_TIMEOUT_S = 60.0


class JobServerClient:
    """A job server at ``url`` (``http://host:8090``), logged in with HTTP Basic (``user``,
    ``password``) or a bearer ``token`` when authentication is on. ``ssl_context`` for https with a
    private CA or a client certificate."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self._authorization = calls.authorization(user, password, token)
        self._ssl_context = ssl_context
        self._timeout_s = timeout_s

    def _request(self, call: Call) -> urllib.request.Request:
        request = urllib.request.Request(self.url + call.target(), data=call.body, method=call.method)
        if call.content_type:
            request.add_header("Content-Type", call.content_type)
        if self._authorization:
            request.add_header("Authorization", self._authorization)
        return request

    def stream(self, call: Call) -> Iterator[tuple[str, Any]]:
        """The Server-Sent Events ``call`` answers with, until the server ends the stream; the
        read timeout applies between events."""
        request = self._request(call)
        try:
            response = urllib.request.urlopen(request, timeout=self._timeout_s, context=self._ssl_context)
        except urllib.error.HTTPError as error:
            raw = error.read()
            body: Any = (
                json.loads(raw) if error.headers.get_content_type() == "application/json" and raw else raw
            )
            raise JobServerError(error.code, body, call) from None
        reader = calls.EventReader()
        with response:
            for line in response:
                event = reader.feed(line)
                if event is not None:
                    yield event

    def send(self, call: Call, *, timeout_s: float | None = None) -> Any:
        """Send ``call``; its JSON answer (or text), or JobServerError for an unexpected status."""
        request = self._request(call)
        try:
            with urllib.request.urlopen(
                request, timeout=timeout_s or self._timeout_s, context=self._ssl_context
            ) as response:
                status, content_type, raw = (
                    response.status,
                    response.headers.get_content_type(),
                    response.read(),
                )
        except urllib.error.HTTPError as error:
            status, content_type, raw = error.code, error.headers.get_content_type(), error.read()
        body: Any = raw.decode("utf-8", "replace")
        if content_type == "application/json" and raw:
            body = json.loads(raw)
        if status not in call.expected:
            raise JobServerError(status, body, call)
        return body

    # Binaries

    def binaries(self) -> dict[str, Any]:
        return dict(self.send(calls.list_binaries()))

    def binary(self, name: str) -> dict[str, Any]:
        return dict(self.send(calls.get_binary(name)))

    def upload_binary(self, name: str, path: str | Path, content_type: str | None = None) -> None:
        """Upload a wheel, egg, zip, jar or single module; its type from its suffix unless given."""
        file = Path(path)
        kind = content_type or calls.binary_content_type(file)
        self.send(calls.upload_binary(name, file.read_bytes(), kind))

    def delete_binary(self, name: str) -> None:
        self.send(calls.delete_binary(name))

    # Contexts

    def contexts(self) -> list[str]:
        return list(self.send(calls.list_contexts()))

    def context(self, name: str) -> dict[str, Any]:
        return dict(self.send(calls.get_context(name)))

    def create_context(self, name: str, settings: Mapping[str, Any] | None = None) -> None:
        self.send(calls.create_context(name, settings))

    def delete_context(self, name: str, *, force: bool = False) -> None:
        self.send(calls.delete_context(name, force=force))

    # Jobs

    def submit_job(self, class_path: str | None = None, **options: Any) -> dict[str, Any]:
        """``POST /jobs`` (options: app_name, cp, context, config, sync, timeout_s, sql,
        callback_url). The 202 report of an async job, or a sync job's end as a report."""
        call = calls.submit_job(class_path, **options)
        wait_s = options.get("timeout_s") if options.get("sync") else None
        answer = self.send(call, timeout_s=(wait_s + self._timeout_s) if wait_s else None)
        return dict(calls.job_outcome(answer))

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's report; its result when it finished."""
        return dict(self.send(calls.get_job(job_id)))

    def job_config(self, job_id: str) -> dict[str, Any]:
        return dict(self.send(calls.job_config(job_id)))

    def jobs(self, *, limit: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return list(self.send(calls.list_jobs(limit=limit, status=status)))

    def kill_job(self, job_id: str) -> dict[str, Any]:
        return dict(self.send(calls.kill_job(job_id)))

    def logs(self, job_id: str, *, start: int | None = None, size: int | None = None) -> dict[str, Any]:
        """What the job printed or logged: ``{"from", "total", "log": [lines]}``."""
        return dict(self.send(calls.job_logs(job_id, start=start, size=size)))

    def follow_logs(self, job_id: str, *, start: int = 0) -> Iterator[str]:
        """The job's lines from ``start`` as they come, until it has ended."""
        for event, data in self.stream(calls.follow_logs(job_id, start=start)):
            if event == "log":
                yield str(data)

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``("state", report)`` at once and at each change, ``("progress", {"jobId", "progress"})``
        as it changes, until the job has ended."""
        for event, data in self.stream(calls.job_events(job_id)):
            yield event, dict(data)

    def wait(self, job_id: str, *, timeout_s: float | None = None, interval_s: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends; its final report. TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            report = self.job(job_id)
            if report["status"] in FINAL_STATES:
                return report
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {report['status']} after {timeout_s} s")
            time.sleep(interval_s)

    def result(self, job_id: str, *, timeout_s: float | None = None) -> Any:
        """Wait for the job and return its result; JobFailed when it ended ERROR or KILLED."""
        report = self.raise_for_job(self.wait(job_id, timeout_s=timeout_s))
        return report.get("result")

    @staticmethod
    def raise_for_job(report: Mapping[str, Any]) -> dict[str, Any]:
        """The report, or JobFailed when the job ended ERROR or KILLED."""
        if report.get("status") in ("ERROR", "KILLED"):
            raise JobFailed(report)
        return dict(report)

    # Schedules (a job or a workflow at each due time of a cron expression)

    def schedules(self) -> list[dict[str, Any]]:
        return list(self.send(calls.list_schedules()))

    def schedule(self, name: str) -> dict[str, Any]:
        return dict(self.send(calls.get_schedule(name)))

    def create_schedule(self, name: str, cron: str, **options: Any) -> dict[str, Any]:
        """The schedule as created, ``nextDueAt`` included (options: job, a ``calls.job_spec``;
        or workflow, a mapping or a JSON/HOCON file's path; time_zone, catch_up, overlap, paused)."""
        return dict(self.send(calls.create_schedule(name, _schedule_document(cron, options))))

    def replace_schedule(self, name: str, cron: str, **options: Any) -> dict[str, Any]:
        """``PUT``: the whole schedule anew (what is left out takes its default); its next due time
        counts from now."""
        return dict(self.send(calls.replace_schedule(name, _schedule_document(cron, options))))

    def delete_schedule(self, name: str) -> None:
        self.send(calls.delete_schedule(name))

    def pause_schedule(self, name: str) -> dict[str, Any]:
        return dict(self.send(calls.pause_schedule(name)))

    def resume_schedule(self, name: str) -> dict[str, Any]:
        return dict(self.send(calls.resume_schedule(name)))

    def schedule_runs(self, name: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest due time first: ``{"dueAt", "state", "jobId" | "workflowId", "status", …}``."""
        return list(self.send(calls.schedule_runs(name, limit=limit)))

    # Workflows (steps, each a job, after the steps they name)

    def start_workflow(self, workflow: Mapping[str, Any] | str | Path) -> dict[str, Any]:
        """Start ``workflow``: a mapping, or the path of a JSON or HOCON file. The workflow as
        started: ``workflowId``, ``state`` and each step's ``state``."""
        document = workflow if isinstance(workflow, Mapping) else read_document(workflow)
        return dict(self.send(calls.start_workflow(document)))

    def workflows(self, *, limit: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return list(self.send(calls.list_workflows(limit=limit, status=status)))

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        return dict(self.send(calls.get_workflow(workflow_id)))

    def kill_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Its running steps' jobs are killed, the others never start; the workflow, KILLED."""
        return dict(self.send(calls.kill_workflow(workflow_id)))

    def wait_workflow(
        self, workflow_id: str, *, timeout_s: float | None = None, interval_s: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the workflow ends (FINISHED, ERROR or KILLED); the workflow then.
        TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            workflow = self.workflow(workflow_id)
            if workflow["state"] in FINAL_STATES:
                return workflow
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} still {workflow['state']} after {timeout_s} s")
            time.sleep(interval_s)

    # Data files

    def data_files(self) -> list[str]:
        return list(self.send(calls.list_data()))

    def upload_data(self, prefix: str, path: str | Path) -> str:
        """Upload a data file; the name jobs open it by."""
        answer = self.send(calls.upload_data(prefix, Path(path).read_bytes()))
        return str(answer["result"]["filename"])

    def delete_data(self, filename: str) -> None:
        self.send(calls.delete_data(filename))


def _schedule_document(cron: str, options: Mapping[str, Any]) -> dict[str, Any]:
    workflow = options.get("workflow")
    if workflow is not None and not isinstance(workflow, Mapping):
        options = {**options, "workflow": read_document(workflow)}
    return calls.schedule_document(cron, **options)
