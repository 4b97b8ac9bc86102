"""The asyncio client: the sync client's operations as coroutines, over one aiohttp session.

async with AsyncJobServerClient("http://localhost:8090") as client:
    job = await client.submit_job("example_jobs.native:word_count", app_name="examples",
                                  config={"input": {"strings": ["a"]}})
    print(await client.result(job["jobId"]))
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from jobserver_client import calls
from jobserver_client.calls import FINAL_STATES, Call, JobServerError
from jobserver_client.client import DEFAULT_TIMEOUT_S, JobServerClient
from jobserver_client.documents import read_document


class AsyncJobServerClient:
    """See ``JobServerClient``; use it with ``async with`` (or call ``close``)."""

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
        authorization = calls.authorization(user, password, token)
        self._headers = {"Authorization": authorization} if authorization else {}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncJobServerClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def stream(self, call: Call) -> AsyncIterator[tuple[str, Any]]:
        """The Server-Sent Events ``call`` answers with, until the server ends the stream; the
        read timeout applies between events."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self._timeout_s)
        async with self._session.request(
            call.method, self.url + call.target(), timeout=timeout, ssl=self._ssl
        ) as response:
            if response.status not in call.expected:
                raw = await response.read()
                body: Any = raw.decode("utf-8", "replace")
                if response.content_type == "application/json" and raw:
                    body = await response.json()
                raise JobServerError(response.status, body, call)
            reader = calls.EventReader()
            async for line in response.content:
                event = reader.feed(line)
                if event is not None:
                    yield event

    async def send(self, call: Call, *, timeout_s: float | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        headers = {"Content-Type": call.content_type} if call.content_type else None
        timeout = aiohttp.ClientTimeout(total=timeout_s or self._timeout_s)
        async with self._session.request(
            call.method,
            self.url + call.target(),
            data=call.body,
            headers=headers,
            timeout=timeout,
            ssl=self._ssl,
        ) as response:
            raw = await response.read()
            body: Any = raw.decode("utf-8", "replace")
            if response.content_type == "application/json" and raw:
                body = await response.json()
            if response.status not in call.expected:
                raise JobServerError(response.status, body, call)
            return body

    # Binaries

    async def binaries(self) -> dict[str, Any]:
        return dict(await self.send(calls.list_binaries()))

    async def binary(self, name: str) -> dict[str, Any]:
        return dict(await self.send(calls.get_binary(name)))

    async def upload_binary(self, name: str, path: str | Path, content_type: str | None = None) -> None:
        file = Path(path)
        kind = content_type or calls.binary_content_type(file)
        await self.send(calls.upload_binary(name, await asyncio.to_thread(file.read_bytes), kind))

    async def delete_binary(self, name: str) -> None:
        await self.send(calls.delete_binary(name))

    # Contexts

    async def contexts(self) -> list[str]:
        return list(await self.send(calls.list_contexts()))

    async def context(self, name: str) -> dict[str, Any]:
        return dict(await self.send(calls.get_context(name)))

    async def create_context(self, name: str, settings: Mapping[str, Any] | None = None) -> None:
        await self.send(calls.create_context(name, settings))

    async def delete_context(self, name: str, *, force: bool = False) -> None:
        await self.send(calls.delete_context(name, force=force))

    # Jobs

    async def submit_job(self, class_path: str | None = None, **options: Any) -> dict[str, Any]:
        call = calls.submit_job(class_path, **options)
        wait_s = options.get("timeout_s") if options.get("sync") else None
        answer = await self.send(call, timeout_s=(wait_s + self._timeout_s) if wait_s else None)
        return dict(calls.job_outcome(answer))

    async def job(self, job_id: str) -> dict[str, Any]:
        return dict(await self.send(calls.get_job(job_id)))

    async def job_config(self, job_id: str) -> dict[str, Any]:
        return dict(await self.send(calls.job_config(job_id)))

    async def jobs(self, *, limit: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return list(await self.send(calls.list_jobs(limit=limit, status=status)))

    async def kill_job(self, job_id: str) -> dict[str, Any]:
        return dict(await self.send(calls.kill_job(job_id)))

    async def logs(self, job_id: str, *, start: int | None = None, size: int | None = None) -> dict[str, Any]:
        return dict(await self.send(calls.job_logs(job_id, start=start, size=size)))

    async def follow_logs(self, job_id: str, *, start: int = 0) -> AsyncIterator[str]:
        async for event, data in self.stream(calls.follow_logs(job_id, start=start)):
            if event == "log":
                yield str(data)

    async def events(self, job_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async for event, data in self.stream(calls.job_events(job_id)):
            yield event, dict(data)

    async def wait(
        self, job_id: str, *, timeout_s: float | None = None, interval_s: float = 0.5
    ) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            report = await self.job(job_id)
            if report["status"] in FINAL_STATES:
                return report
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {report['status']} after {timeout_s} s")
            await asyncio.sleep(interval_s)

    async def result(self, job_id: str, *, timeout_s: float | None = None) -> Any:
        report = JobServerClient.raise_for_job(await self.wait(job_id, timeout_s=timeout_s))
        return report.get("result")

    # Schedules

    async def schedules(self) -> list[dict[str, Any]]:
        return list(await self.send(calls.list_schedules()))

    async def schedule(self, name: str) -> dict[str, Any]:
        return dict(await self.send(calls.get_schedule(name)))

    async def create_schedule(self, name: str, cron: str, **options: Any) -> dict[str, Any]:
        document = await _schedule_document(cron, options)
        return dict(await self.send(calls.create_schedule(name, document)))

    async def replace_schedule(self, name: str, cron: str, **options: Any) -> dict[str, Any]:
        document = await _schedule_document(cron, options)
        return dict(await self.send(calls.replace_schedule(name, document)))

    async def delete_schedule(self, name: str) -> None:
        await self.send(calls.delete_schedule(name))

    async def pause_schedule(self, name: str) -> dict[str, Any]:
        return dict(await self.send(calls.pause_schedule(name)))

    async def resume_schedule(self, name: str) -> dict[str, Any]:
        return dict(await self.send(calls.resume_schedule(name)))

    async def schedule_runs(self, name: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        return list(await self.send(calls.schedule_runs(name, limit=limit)))

    # Workflows

    async def start_workflow(self, workflow: Mapping[str, Any] | str | Path) -> dict[str, Any]:
        document = (
            workflow if isinstance(workflow, Mapping) else await asyncio.to_thread(read_document, workflow)
        )
        return dict(await self.send(calls.start_workflow(document)))

    async def workflows(self, *, limit: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return list(await self.send(calls.list_workflows(limit=limit, status=status)))

    async def workflow(self, workflow_id: str) -> dict[str, Any]:
        return dict(await self.send(calls.get_workflow(workflow_id)))

    async def kill_workflow(self, workflow_id: str) -> dict[str, Any]:
        return dict(await self.send(calls.kill_workflow(workflow_id)))

    async def wait_workflow(
        self, workflow_id: str, *, timeout_s: float | None = None, interval_s: float = 0.5
    ) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            workflow = await self.workflow(workflow_id)
            if workflow["state"] in FINAL_STATES:
                return workflow
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} still {workflow['state']} after {timeout_s} s")
            await asyncio.sleep(interval_s)

    # Data files

    async def data_files(self) -> list[str]:
        return list(await self.send(calls.list_data()))

    async def upload_data(self, prefix: str, path: str | Path) -> str:
        content = await asyncio.to_thread(Path(path).read_bytes)
        answer = await self.send(calls.upload_data(prefix, content))
        return str(answer["result"]["filename"])

    async def delete_data(self, filename: str) -> None:
        await self.send(calls.delete_data(filename))


async def _schedule_document(cron: str, options: Mapping[str, Any]) -> dict[str, Any]:
    workflow = options.get("workflow")
    if workflow is not None and not isinstance(workflow, Mapping):
        options = {**options, "workflow": await asyncio.to_thread(read_document, workflow)}
    return calls.schedule_document(cron, **options)
