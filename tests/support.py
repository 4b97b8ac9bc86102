"""What the integration and end-to-end tests share: a real server on an ephemeral port, a client,
deadline-bounded waiting, and a census of the processes a server started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from driver.protocol import DriverSecrets
from jobserver.common.clock import Clock
from jobserver.common.config import Settings, load_settings
from jobserver.common.records import PendingCallback
from jobserver.storage import create_store
from jobserver.web.access import ROUTE_PERMISSIONS
from jobserver.web.app import create_app
from tests.openapi_answers import check_answer

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_WHEEL = REPO / "examples" / "dist" / "sjs_python_examples-0.1.0-py3-none-any.whl"
EXAMPLES_EGG = REPO / "examples" / "dist" / "sjs_python_examples-0.1.0-py3.11.egg"
FAKE_SPARK_HOMES = REPO / "tests" / "fakes"

# Light, fast local Spark for tests: two cores, no UI, a JVM tuned for start-up over throughput.
SPARK_TEST_OVERRIDES: dict[str, Any] = {
    "spark.master": "local[2]",
    "spark.context-settings.spark.ui.enabled": False,
    "spark.context-settings.spark.sql.shuffle.partitions": 2,
    "spark.context-settings.launcher.spark.driver.memory": "512m",
    "spark.context-settings.launcher.spark.driver.extraJavaOptions": (
        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    ),
}


async def wait_until(
    condition: Callable[[], Awaitable[Any]],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(
        f"timed out after {timeout_s} s waiting for {what or condition}; last value {last!r}"
    )


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.005,
    what: str = "",
) -> Any:
    """``wait_until`` for tests that wait on threads rather than on the event loop."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(
        f"timed out after {timeout_s} s waiting for {what or condition}; last value {last!r}"
    )


def driver_secrets(work_dir: Path, context_id: str) -> DriverSecrets:
    """What the server gave a context's driver (the test runs as the server's user)."""
    [path] = (work_dir / "drivers" / context_id).glob("driver-secrets-*.json")
    assert path.stat().st_mode & 0o777 == 0o600
    return DriverSecrets.from_json(path.read_text())


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (e.g. a server's work dir)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if text in command and state != b"Z":
            pids.append(int(entry))
    return pids


@dataclass
class Api:
    """A client of one running server, with the few helpers every test needs."""

    session: aiohttp.ClientSession
    settings: Settings

    async def call(
        self, method: str, path: str, *, data: Any = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.request(method, path, data=data, headers=headers) as response:
            raw = await response.read()
            body: Any = raw.decode() if raw else ""
            if response.content_type == "application/json" and raw:
                body = json.loads(raw)
                check_answer(method, path, response.status, response.content_type, body)
            return response.status, body, response

    async def upload(
        self,
        name: str,
        path: Path = EXAMPLES_WHEEL,
        media_type: str = "application/python-wheel",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        status, body, _ = await self.call(
            "POST",
            f"/binaries/{name}",
            data=path.read_bytes(),
            headers={"Content-Type": media_type, **(headers or {})},
        )
        assert status == 201, body

    async def job_state(self, job_id: str) -> str:
        status, body, _ = await self.call("GET", f"/jobs/{job_id}")
        assert status == 200, body
        return body["status"]

    async def wait_job_state(self, job_id: str, *states: str, timeout_s: float = 60.0) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            _, body, _ = await self.call("GET", f"/jobs/{job_id}")
            return body if body["status"] in states else None

        return await wait_until(reached, timeout_s=timeout_s, what=f"job {job_id} in {states}")

    async def wait_context_state(self, name: str, *states: str, timeout_s: float = 60.0) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            status, body, _ = await self.call("GET", f"/contexts/{name}")
            return body if status == 200 and body["state"] in states else None

        return await wait_until(reached, timeout_s=timeout_s, what=f"context {name} in {states}")


@asynccontextmanager
async def running_server(
    work_dir: Path, overrides: Mapping[str, Any] | None = None, *, clock: Clock | None = None
) -> AsyncIterator[Api]:
    """The real application from its factory, on an ephemeral port, with a real bus and store.

    On exit the server is stopped the way production stops it, and no process it started may
    outlive it.
    """
    settings = load_settings(None, {"spark.jobserver.work-dir": str(work_dir), **(overrides or {})})
    server = TestServer(create_app(settings, clock=clock), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
            yield Api(session=session, settings=settings)
    finally:
        await server.close()
        leaked = processes_mentioning(str(work_dir))
        assert not leaked, f"processes outlived their server: {leaked}"


class ServerProcess:
    """The real ``jobserver`` command in a child process, for restarts and crashes."""

    def __init__(self, config_file: Path, log_file: Path) -> None:
        self._config_file = config_file
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self, base_url: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        """Run the command and wait until ``base_url``/healthz answers (over https with
        ``ssl_context``, which must trust the server's certificate)."""
        jobserver = Path(sys.executable).parent / "jobserver"
        with open(self._log_file, "ab") as log:
            self._process = subprocess.Popen([str(jobserver), str(self._config_file)], stdout=log, stderr=log)

        async def healthy() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                log_text = self._log_file.read_text()
                raise AssertionError(f"server exited with {self._process.returncode}: {log_text}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{base_url}/healthz", ssl=ssl_context or True) as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(healthy, timeout_s=30, what="server answering /healthz")

    async def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        assert self._process is not None
        self._process.send_signal(signum)
        return await asyncio.to_thread(self._process.wait, timeout_s)

    def send_signal(self, signum: int) -> None:
        """Signal the server without waiting (SIGSTOP, SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signum)

    def kill_if_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CallbackListener:
    """A client's callbackUrl endpoint that refuses (503) its first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        self.attempts = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        attempt = self.attempts  # counted before the read: attempts may arrive at once
        body = json.loads(await request.read())
        if attempt <= self.failures:
            return web.Response(status=503)
        self.received.append(body)
        return web.Response(status=200)


@asynccontextmanager
async def callback_listener(
    failures: int = 0, *, port: int | None = None, max_body_bytes: int = 1 << 20
) -> AsyncIterator[tuple[CallbackListener, str]]:
    """A real HTTP listener on ``port`` (an ephemeral one by default), and its URL."""
    listener = CallbackListener(failures)
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post("/done", listener.handle)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield listener, str(server.make_url("/done"))
    finally:
        await server.close()


async def stored_callbacks(settings: Settings, scratch_dir: Path) -> list[PendingCallback]:
    """The callbacks pending in a server's store, read through a store of the test's own."""
    store = create_store(settings.store_url, blob_dir=scratch_dir / "probe-blobs")
    await store.open()
    try:
        return await store.list_callbacks()
    finally:
        await store.close()


def build_jar(folder: Path) -> Path:
    """Compile examples/jvm with javac against the Spark jars pyspark ships, into a jar."""
    import pyspark

    spark_jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    classes = folder / "classes"
    sources = sorted((REPO / "examples" / "jvm").rglob("*.java"))
    classpath = ":".join(str(jar) for jar in spark_jars)
    subprocess.run(["javac", "-d", str(classes), "-cp", classpath, *map(str, sources)], check=True)
    jar = folder / "sum-job.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        for compiled in sorted(classes.rglob("*.class")):
            archive.write(compiled, str(compiled.relative_to(classes)))
    return jar


# Values for the routes' placeholders (route_requests).
CONCRETE = {
    "{name}": "x",
    "{job_id}": "no-such-job",
    "{tail}": "x",
    "{prefix}": "x",
    "{filename}": "x",
    "{workflow_id}": "no-such-workflow",
}


def route_requests() -> list[tuple[str, str, str]]:
    """(method, a path, permission needed) for every route of the API, with paths where a caller
    holding the permission gets neither 401 nor 403 (and starts nothing)."""
    routes = []
    for (method, canonical), permission in sorted(ROUTE_PERMISSIONS.items()):
        path = canonical
        for placeholder, value in CONCRETE.items():
            path = path.replace(placeholder, value)
        if (method, canonical) == ("POST", "/contexts/{name}"):
            path = "/contexts/9-not-a-name"  # a 400, not a context started per credential
        if canonical == "/console/{name}":
            path = "/console/console.js"  # an open route's file that exists
        routes.append((method, path, permission))
    return routes
