"""Latency of the job server as a client sees it (``make bench``).

Starts the real server (``jobserver`` in a subprocess, SQLite store, local Spark), uploads the
example package, creates one warm context, then measures:

1. sync round trip of a job that does not touch Spark (EchoJob): HTTP in, result out;
2. a trivial Spark job (TimedCountJob) through the server, against the same Spark call timed
   inside the driver: the difference is what the server adds;
3. for comparison with 2, a job that does not touch Spark but takes as long (PythonSleepJob,
   80 ms): what the server adds to a job that leaves it idle that long, with Spark out of the
   picture (on a small VM that is most of the difference between rows 1 and 2).

Prints a table of p50/p99 in milliseconds. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def wait_healthy(session: aiohttp.ClientSession, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            async with session.get("/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not become healthy")


async def timed_requests(
    session: aiohttp.ClientSession, path: str, body: str, warm_up: int, requests: int
) -> list[tuple[float, Any]]:
    """``warm_up`` untimed sync jobs, then ``requests`` timed ones: (milliseconds, result) each."""
    for _ in range(warm_up):
        async with session.post(path, data=body) as response:
            await response.read()
    runs = []
    for _ in range(requests):
        started = time.perf_counter()
        async with session.post(path, data=body) as response:
            result = (await response.json())["result"]
            assert response.status == 200
        runs.append(((time.perf_counter() - started) * 1000.0, result))
    return runs


async def measure(base_url: str, requests: int) -> list[tuple[str, float, float]]:
    async with aiohttp.ClientSession(base_url=base_url) as session:
        await wait_healthy(session, 30)
        async with session.post(
            "/binaries/bench", data=WHEEL.read_bytes(), headers={"Content-Type": "application/python-wheel"}
        ) as response:
            assert response.status == 201, await response.text()
        async with session.post("/contexts/bench") as response:
            assert response.status == 200, await response.text()

        echo = "/jobs?appName=bench&classPath=example_jobs.echo.EchoJob&context=bench&sync=true"
        timed = "/jobs?appName=bench&classPath=example_jobs.timed.TimedCountJob&context=bench&sync=true"
        sleep = "/jobs?appName=bench&classPath=example_jobs.sleep_job.PythonSleepJob&context=bench&sync=true"
        # warm-up first: imports, JIT, connection pool
        echo_runs = await timed_requests(session, echo, json.dumps({"input": {"bench": True}}), 50, requests)
        echo_ms = [elapsed for elapsed, _ in echo_runs]
        timed_runs = await timed_requests(session, timed, "{}", 20, requests)
        round_trip_ms = [elapsed for elapsed, _ in timed_runs]
        spark_ms = [result["spark_ms"] for _, result in timed_runs]
        overhead_ms = [elapsed - result["spark_ms"] for elapsed, result in timed_runs]
        sleep_body = json.dumps({"sleep": {"seconds": SLEEP_S}})
        sleep_runs = await timed_requests(session, sleep, sleep_body, 10, requests)
        idle_ms = [elapsed - SLEEP_S * 1000.0 for elapsed, _ in sleep_runs]
        async with session.delete("/contexts/bench") as response:
            await response.read()
    return [
        ("sync no-Spark job (EchoJob), round trip", percentile(echo_ms, 0.5), percentile(echo_ms, 0.99)),
        (
            "trivial Spark job through the server",
            percentile(round_trip_ms, 0.5),
            percentile(round_trip_ms, 0.99),
        ),
        ("same Spark call timed in the driver", percentile(spark_ms, 0.5), percentile(spark_ms, 0.99)),
        (
            "server's share (round trip - Spark call)",
            statistics.median(overhead_ms),
            percentile(overhead_ms, 0.99),
        ),
        (
            "80 ms job without Spark, round trip - 80 ms",
            statistics.median(idle_ms),
            percentile(idle_ms, 0.99),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    arguments = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobserver-bench-") as work_dir:
        config = Path(work_dir) / "bench.conf"
        config.write_text(
            f'spark.jobserver.port = {port}\nspark.jobserver.work-dir = "{work_dir}/work"\n'
            'spark.master = "local[2]"\nspark.context-settings.spark.ui.enabled = false\n'
        )
        log = open(Path(work_dir) / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "jobserver"), str(config)], stdout=log, stderr=log
        )
        try:
            rows = asyncio.run(measure(f"http://127.0.0.1:{port}", arguments.requests))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
    print(f"\n{arguments.requests} sequential requests per row, one warm context, SQLite store, local[2]\n")
    print(f"| {'measurement':<44} | {'p50 ms':>8} | {'p99 ms':>8} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|")
    for name, p50, p99 in rows:
        print(f"| {name:<44} | {p50:8.2f} | {p99:8.2f} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
