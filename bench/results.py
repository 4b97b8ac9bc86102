"""A 100 MB job result through the job server (``make bench``): how fast, and how much the
server's memory grows.

Starts the real server (``jobserver`` in a subprocess, SQLite store, local Spark), uploads a lone
module whose job returns a 100 MiB string (the base64 text of random bytes, made once when the
module is imported), creates one warm context, then, ``--runs`` times:

1. a sync ``POST /jobs`` of that job, timed from the request to the answer's last byte: the
   driver's JSON encoding (about 0.3 s of it on the machine this was written on), the trip over
   the bus, the store and the answer to the client;
2. ``GET /jobs/<id>`` of the stored result, timed likewise: the store to the client.

The client reads each answer as it comes and keeps none of it. The server's peak RSS growth is its
``VmHWM`` at the end (reset to the current RSS through ``/proc/<pid>/clear_refs`` after the
warm-up) minus its ``VmRSS`` after the warm-up: what a large result costs the server's memory.
The warm-up ends with one 100 MB result, whose one-time growth is reported on its own row.

Prints a table. Not a test: nothing here passes or fails.
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

import aiohttp

BIG_RESULT = """
import base64
import random

# Made once, when the warm-up job imports the module: the runs time the server, not the job.
TEXT = base64.b64encode(random.Random(0).randbytes(75 << 20)).decode()


def main(spark, config):
    size = int(config.get("chars"))
    return TEXT if size >= len(TEXT) else TEXT[:size]
"""
TEXT_CHARS = 100 << 20  # base64 of 75 MiB
JOB = "/jobs?cp=big_result&mainClass=big_result:main&context=bench&sync=true&timeout=600"
MIB = float(1 << 20)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False when the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def read_answer(
    session: aiohttp.ClientSession, method: str, path: str, body: str = ""
) -> tuple[float, int, bytes]:
    """Seconds to the last byte, bytes received, and the answer's first bytes."""
    started = time.perf_counter()
    size = 0
    head = b""
    async with session.request(method, path, data=body or None) as response:
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {(await response.read())[:500]!r}")
        async for chunk in response.content.iter_chunked(1 << 20):
            if len(head) < 200:
                head += chunk[:200]
            size += len(chunk)
    return time.perf_counter() - started, size, head


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


async def measure(port: int, pid: int, runs: int) -> list[tuple[str, str]]:
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=timeout) as session:
        await wait_healthy(session, 60)
        headers = {"Content-Type": "text/x-python"}
        async with session.post("/binaries/big_result", data=BIG_RESULT, headers=headers) as response:
            assert response.status == 201, await response.text()
        async with session.post("/contexts/bench") as response:
            assert response.status == 200, await response.text()
        small = json.dumps({"chars": 1024})
        await read_answer(session, "POST", JOB, small)  # warm-up: imports, the module, the store
        # The first large result costs the server a one-time growth (malloc's arenas for the
        # worker threads that write and read the chunks, the sockets' buffers); later results
        # reuse that memory. Both are reported: the first as it is, the later ones as the peak
        # over the runs.
        small_kib = status_kib(pid, "VmRSS")
        _, _, head = await read_answer(session, "POST", JOB, json.dumps({"chars": TEXT_CHARS}))
        first_id = json.loads(head.split(b",", 1)[0] + b"}")["jobId"]
        await read_answer(session, "GET", f"/jobs/{first_id}")
        baseline_kib = status_kib(pid, "VmRSS")
        peak_reset = reset_peak(pid)
        post_s, get_s, sizes = [], [], set()
        for _ in range(runs):
            config = json.dumps({"chars": TEXT_CHARS})
            elapsed_s, size, head = await read_answer(session, "POST", JOB, config)
            post_s.append(elapsed_s)
            sizes.add(size)
            job_id = json.loads(head.split(b",", 1)[0] + b"}")["jobId"]
            elapsed_s, size, _ = await read_answer(session, "GET", f"/jobs/{job_id}")
            get_s.append(elapsed_s)
        peak_kib = status_kib(pid, "VmHWM") if peak_reset else status_kib(pid, "VmRSS")
    result_mb = max(sizes) / 1e6  # with its envelope (under 300 bytes)
    growth_mib = (peak_kib - baseline_kib) / 1024
    return [
        ("result size", f"{max(sizes) / MIB:.1f} MiB"),
        ("sync POST, request to last byte", f"{result_mb / statistics.median(post_s):.0f} MB/s"),
        ("GET /jobs/<id>, request to last byte", f"{result_mb / statistics.median(get_s):.0f} MB/s"),
        ("server RSS after a small result", f"{small_kib / 1024:.0f} MiB"),
        ("growth by the first 100 MB result (one-time)", f"{(baseline_kib - small_kib) / 1024:.1f} MiB"),
        ("peak RSS growth, later results" + ("" if peak_reset else " (RSS at end)"), f"{growth_mib:.1f} MiB"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobserver-bench-") as work_dir:
        config = Path(work_dir) / "bench.conf"
        config.write_text(
            f'spark.jobserver.port = {port}\nspark.jobserver.work-dir = "{work_dir}/work"\n'
            'spark.master = "local[1]"\nspark.context-settings.spark.ui.enabled = false\n'
        )
        log = open(Path(work_dir) / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "jobserver"), str(config)], stdout=log, stderr=log
        )
        try:
            rows = asyncio.run(measure(port, server.pid, arguments.runs))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
    print(f"\n{arguments.runs} runs (medians), one warm context, SQLite store, local[1]\n")
    print(f"| {'measurement':<44} | {'value':>12} |")
    print(f"|{'-' * 46}|{'-' * 14}|")
    for name, value in rows:
        print(f"| {name:<44} | {value:>12} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
