"""Latency of the job server as a client sees it (``make bench``).

Starts the real server (``jobserver`` in a subprocess, SQLite store, local Spark), uploads the
example package, creates one warm context, then measures:

1. sync round trip of a job that does not touch Spark (EchoJob): HTTP in, result out;
2. a trivial Spark job (TimedCountJob) through the server, against the same Spark call timed
   inside the driver: the difference is what the server adds;
3. for comparison with 2, a job that does not touch Spark but takes as long (PythonSleepJob,
   80 ms): what the server adds to a job that leaves it idle that long, with Spark out of the
   picture;
4. for reference, row 1 through aiohttp's client, and how much slower this machine runs a fixed
   piece of Python after 80 ms idle than back to back (on a small VM that is most of the
   difference between rows 1 and 2).

Rows 1-3 use a minimal HTTP/1.1 client (one keep-alive connection, blocking socket), so that what
is measured is the server, not a client library: aiohttp's client costs more than half a
millisecond of its own per request, which row 4 shows.

With ``--auth basic`` every request carries HTTP Basic credentials, checked against a users file
(bcrypt) and then answered from the login cache: the price of authentication on the job path.

Prints a table of p50/p99 in milliseconds. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SLEEP_S = 0.08  # about as long as the trivial Spark job
WHEEL = REPO / "examples" / "dist" / "sjs_python_examples-0.1.0-py3-none-any.whl"
ECHO = "/jobs?appName=bench&classPath=example_jobs.echo.EchoJob&context=bench&sync=true"
ECHO_BODY = json.dumps({"input": {"bench": True}})
TIMED = "/jobs?appName=bench&classPath=example_jobs.timed.TimedCountJob&context=bench&sync=true"
SLEEP = "/jobs?appName=bench&classPath=example_jobs.sleep_job.PythonSleepJob&context=bench&sync=true"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class LeanClient:
    """HTTP/1.1 over one keep-alive connection, nothing more: the server sends Content-Length."""

    def __init__(self, port: int, authorization: str = "") -> None:
        self._extra = f"Authorization: {authorization}\r\n" if authorization else ""
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"):
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
            f"{self._extra}Content-Length: {len(body)}\r\n\r\n"
        )
        self._socket.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self._buffer:
            self._read()
        head_bytes, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._read()
        answer, self._buffer = self._buffer[:length], self._buffer[length:]
        return status, answer

    def _read(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def close(self) -> None:
        self._socket.close()


def basic_login(users_file: Path) -> str:
    """A users file with one user, and the Authorization header that logs in as it."""
    import bcrypt  # the server's own dependency; as a users file made by jobserver-passwd holds it

    users_file.write_text(f"bench:{bcrypt.hashpw(b'bench password', bcrypt.gensalt(12)).decode()}\n")
    return "Basic " + base64.b64encode(b"bench:bench password").decode()


def wait_healthy(port: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            client = LeanClient(port)
            try:
                if client.request("GET", "/healthz")[0] == 200:
                    return
            finally:
                client.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


def timed_requests(
    client: LeanClient, path: str, body: str, warm_up: int, requests: int
) -> list[tuple[float, Any]]:
    """``warm_up`` untimed sync jobs, then ``requests`` timed ones: (milliseconds, result) each."""
    payload = body.encode()
    for _ in range(warm_up):
        client.request("POST", path, payload)
    runs = []
    for _ in range(requests):
        started = time.perf_counter()
        status, answer = client.request("POST", path, payload)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        assert status == 200, answer
        runs.append((elapsed_ms, json.loads(answer)["result"]))
    return runs


async def aiohttp_round_trips(port: int, requests: int, authorization: str) -> list[float]:
    """Row 1 again through aiohttp's client: how much of a round trip a client library takes."""
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}", headers=headers) as session:
        runs = []
        for number in range(50 + requests):
            started = time.perf_counter()
            async with session.post(ECHO, data=ECHO_BODY) as response:
                assert response.status == 200
                await response.read()
            if number >= 50:
                runs.append((time.perf_counter() - started) * 1000.0)
        return runs


def cold_factor(samples: int) -> float:
    """How many times longer a fixed piece of Python takes right after 80 ms idle than back to back."""
    document = {f"key{number}": [number, str(number), {"x": number}] for number in range(100)}

    def work() -> float:
        started = time.perf_counter()
        for _ in range(3):
            json.loads(json.dumps(document))
        return time.perf_counter() - started

    warm = [work() for _ in range(samples)]
    cold = []
    for _ in range(samples):
        time.sleep(SLEEP_S)
        cold.append(work())
    return statistics.median(cold) / statistics.median(warm)


def measure(port: int, requests: int, authorization: str) -> list[tuple[str, str, str]]:
    wait_healthy(port, 30)
    client = LeanClient(port, authorization)
    try:
        status, answer = client.request(
            "POST", "/binaries/bench", WHEEL.read_bytes(), "application/python-wheel"
        )
        assert status == 201, answer
        status, answer = client.request("POST", "/contexts/bench")
        assert status == 200, answer
        # warm-up first: imports, the JIT, Spark's Python worker
        echo_ms = [elapsed for elapsed, _ in timed_requests(client, ECHO, ECHO_BODY, 50, requests)]
        timed_runs = timed_requests(client, TIMED, "{}", 20, requests)
        sleep_body = json.dumps({"sleep": {"seconds": SLEEP_S}})
        sleep_runs = timed_requests(client, SLEEP, sleep_body, 10, requests)
        aiohttp_ms = asyncio.run(aiohttp_round_trips(port, requests, authorization))
        client.request("DELETE", "/contexts/bench")
    finally:
        client.close()
    round_trip_ms = [elapsed for elapsed, _ in timed_runs]
    spark_ms = [result["spark_ms"] for _, result in timed_runs]
    overhead_ms = [elapsed - result["spark_ms"] for elapsed, result in timed_runs]
    idle_ms = [elapsed - SLEEP_S * 1000.0 for elapsed, _ in sleep_runs]

    def row(name: str, samples: list[float]) -> tuple[str, str, str]:
        return name, f"{statistics.median(samples):.2f}", f"{percentile(samples, 0.99):.2f}"

    factor = cold_factor(100)
    return [
        row("sync no-Spark job (EchoJob), round trip", echo_ms),
        row("trivial Spark job through the server", round_trip_ms),
        row("same Spark call timed in the driver", spark_ms),
        row("server's share (round trip - Spark call)", overhead_ms),
        row("80 ms job without Spark, round trip - 80 ms", idle_ms),
        row("EchoJob round trip, aiohttp client", aiohttp_ms),
        ("Python after 80 ms idle / back to back", f"{factor:.2f}x", ""),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--auth", choices=("none", "basic"), default="none", help="authentication on the API")
    arguments = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobserver-bench-") as work_dir:
        config = Path(work_dir) / "bench.conf"
        settings = (
            f'spark.jobserver.port = {port}\nspark.jobserver.work-dir = "{work_dir}/work"\n'
            'spark.master = "local[2]"\nspark.context-settings.spark.ui.enabled = false\n'
        )
        authorization = ""
        if arguments.auth == "basic":
            authorization = basic_login(Path(work_dir) / "users")
            users = f'basic.users-file = "{work_dir}/users"'
            settings += f"spark.jobserver.auth {{ mechanisms = [basic], {users} }}\n"
        config.write_text(settings)
        log = open(Path(work_dir) / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "jobserver"), str(config)], stdout=log, stderr=log
        )
        try:
            rows = measure(port, arguments.requests, authorization)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
    login = "HTTP Basic (cached login) on every request" if authorization else "no authentication"
    setup = "one warm context, SQLite store, local[2]"
    print(f"\n{arguments.requests} sequential requests per row, {setup}, {login}\n")
    print(f"| {'measurement':<44} | {'p50 ms':>8} | {'p99 ms':>8} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|")
    for name, p50, p99 in rows:
        print(f"| {name:<44} | {p50:>8} | {p99:>8} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
