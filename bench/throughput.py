"""Throughput of one context (``make bench``): trivial no-Spark jobs per second at 1, 4 and 16
concurrent clients.

Starts the real server (``jobserver`` in a subprocess, SQLite store, local Spark), uploads the
example package and creates one warm context. Then, for each number of clients, that many
threads each send sync EchoJob requests over a keep-alive connection of their own (the lean
client of ``latency.py``), back to back, for ``--seconds``, after a warm-up of the same length.
The clients run on the same machine as the server and its driver and take their share of its
cores: on 2 cores the figure is what the three together manage.

Prints jobs per second and each client's p50/p99 round trip. Not a test: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from latency import LeanClient, free_port, percentile, wait_healthy

REPO = Path(__file__).resolve().parent.parent
ECHO = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=bench&sync=true"


def set_up(port: int) -> None:
    client = LeanClient(port)
    try:
        wheel = next((REPO / "examples" / "dist").glob("*.whl")).read_bytes()
        status, answer = client.request("POST", "/binaries/examples", wheel, "application/python-wheel")
        assert status == 201, answer
        status, answer = client.request("POST", "/contexts/bench")
        assert status == 200, answer
    finally:
        client.close()


def run_clients(port: int, clients: int, seconds: float) -> tuple[int, list[float]]:
    """Jobs finished by ``clients`` threads in ``seconds``, and every round trip in ms."""
    stop_at = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    ready = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        client = LeanClient(port)
        body = json.dumps({"input": index}).encode()
        ready.wait()
        try:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                status, answer = client.request("POST", ECHO, body)
                latencies[index].append((time.perf_counter() - started) * 1000.0)
                if status != 200:
                    failures.append(answer.decode(errors="replace")[:300])
                    return
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"a job failed: {failures[0]}")
    every = [sample for samples in latencies for sample in samples]
    return len(every), every


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per row")
    parser.add_argument("--clients", default="1,4,16", help="the rows' numbers of clients")
    arguments = parser.parse_args()
    levels = [int(count) for count in arguments.clients.split(",")]
    port = free_port()
    rows = []
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
            wait_healthy(port, 60)
            set_up(port)
            for clients in levels:
                run_clients(port, clients, arguments.seconds)  # warm-up
                jobs, latencies = run_clients(port, clients, arguments.seconds)
                rows.append(
                    (
                        clients,
                        jobs / arguments.seconds,
                        percentile(latencies, 0.5),
                        percentile(latencies, 0.99),
                    )
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
    print(f"\nsync EchoJob (no Spark), one warm context, SQLite store, {arguments.seconds:g} s per row\n")
    print(f"| {'clients':>7} | {'jobs/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 9}|")
    for clients, per_second, p50, p99 in rows:
        print(f"| {clients:>7} | {per_second:>8.0f} | {p50:>7.2f} | {p99:>7.2f} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
