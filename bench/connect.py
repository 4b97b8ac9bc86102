"""The same query through the job server and through Spark Connect, side by side (``make bench``).

Starts pyspark's own Spark Connect server (``sbin/start-connect-server.sh --wait``, local[2]) and
the job server (SQLite store, one warm local[2] context), both warm, and runs alternately, one
request each in turn:

1. an SQL job (``sql = "SELECT count(*) FROM range(1000)"``) against ``spark.sql(…).collect()``
   through Spark Connect;
2. a function job doing ``spark.range(1000).count()`` against the same call through Spark Connect.

The Spark Connect client is the ``pyspark-client`` package in an environment of its own
(``.bench/connect-venv``, created on first use from the package registry), as its users install
it; it times each call itself and reports over a pipe, so the pipe is not in its figures. The job
server's requests go through a minimal HTTP/1.1 client (see ``latency.py``). A ratio below 1.0
means the job server answered faster.

Prints a table of p50/p99 in milliseconds. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
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

from latency import LeanClient, free_port, percentile, wait_healthy

REPO = Path(__file__).resolve().parent.parent
CLIENT_VENV = REPO / ".bench" / "connect-venv"
STATEMENT = "SELECT count(*) FROM range(1000)"
SQL_JOB = "/jobs?context=bench&sync=true"
RANGE_JOB = "/jobs?appName=bench&classPath=example_jobs.native:range_count&context=bench&sync=true"
WHEEL = REPO / "examples" / "dist" / "sjs_python_examples-0.1.0-py3-none-any.whl"

# Runs in the client environment: one line in ("sql" or "range"), one line out (milliseconds).
CLIENT = f"""
import sys, time
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
calls = {{
    "sql": lambda: spark.sql({STATEMENT!r}).collect()[0][0],
    "range": lambda: spark.range(1000).count(),
}}
print("ready", flush=True)
for line in sys.stdin:
    started = time.perf_counter()
    value = calls[line.strip()]()
    elapsed = (time.perf_counter() - started) * 1000.0
    assert value == 1000, value
    print(elapsed, flush=True)
"""


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def client_python() -> Path:
    """The client environment's python, with the newest pyspark-client not newer than our pyspark."""
    python = CLIENT_VENV / "bin" / "python"
    if not python.exists():
        import pyspark

        subprocess.run([sys.executable, "-m", "venv", str(CLIENT_VENV)], check=True)
        requirement = f"pyspark-client<={pyspark.__version__}"
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True)
    return python


def wait_for_port(port: int, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the Spark Connect server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the Spark Connect server did not listen in time")


def start_connect_server(work_dir: Path, port: int) -> subprocess.Popen[bytes]:
    home = pyspark_home()
    environment = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(work_dir / "connect-logs"),
        "SPARK_PID_DIR": str(work_dir),
        "SPARK_CONF_DIR": str(work_dir / "connect-conf"),
    }
    (work_dir / "connect-conf").mkdir()
    log = open(work_dir / "connect.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    command = [
        str(home / "sbin" / "start-connect-server.sh"),
        "--wait",
        "--master", "local[2]",
        "--driver-memory", "1g",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=2",
    ]  # fmt: skip
    return subprocess.Popen(command, env=environment, stdout=log, stderr=log, start_new_session=True)


def start_job_server(work_dir: Path, port: int) -> subprocess.Popen[bytes]:
    config = work_dir / "bench.conf"
    config.write_text(
        f'spark.jobserver.port = {port}\nspark.jobserver.work-dir = "{work_dir}/work"\n'
        'spark.master = "local[2]"\nspark.context-settings.spark.ui.enabled = false\n'
        "spark.context-settings.spark.sql.shuffle.partitions = 2\n"
    )
    log = open(work_dir / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "jobserver"), str(config)], stdout=log, stderr=log
    )


def stop(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()


def job_server_call(client: LeanClient, path: str, body: bytes) -> float:
    started = time.perf_counter()
    status, answer = client.request("POST", path, body)
    elapsed = (time.perf_counter() - started) * 1000.0
    assert status == 200, answer
    result = json.loads(answer)["result"]
    assert result == 1000 or result["rows"] == [[1000]], result
    return elapsed


def connect_call(client: subprocess.Popen[str], what: str) -> float:
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(what + "\n")
    client.stdin.flush()
    return float(client.stdout.readline())


def measure(
    work_dir: Path, requests: int, warm_up: int, server_port: int, connect_port: int
) -> list[tuple[str, ...]]:
    client = LeanClient(server_port)
    status, answer = client.request("POST", "/binaries/bench", WHEEL.read_bytes(), "application/python-wheel")
    assert status == 201, answer
    status, answer = client.request("POST", "/contexts/bench")
    assert status == 200, answer
    # A file, not -c: pyspark.sql.connect takes a main module without a file for a doctest run.
    script = work_dir / "connect_client.py"
    script.write_text(CLIENT)
    connect = subprocess.Popen(
        [str(client_python()), "-W", "ignore::FutureWarning", str(script), f"sc://127.0.0.1:{connect_port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert connect.stdout is not None and connect.stdout.readline().strip() == "ready"
        sql_body = json.dumps({"sql": STATEMENT}).encode()
        rows = []
        for name, what, path, body in (
            ("SQL count(*) FROM range(1000)", "sql", SQL_JOB, sql_body),
            ("function job spark.range(1000).count()", "range", RANGE_JOB, b"{}"),
        ):
            for _ in range(warm_up):
                job_server_call(client, path, body)
                connect_call(connect, what)
            ours, theirs = [], []
            for _ in range(requests):
                ours.append(job_server_call(client, path, body))
                theirs.append(connect_call(connect, what))
            ratio = statistics.median(ours) / statistics.median(theirs)
            rows.append(
                (
                    name,
                    f"{statistics.median(ours):.2f} / {percentile(ours, 0.99):.2f}",
                    f"{statistics.median(theirs):.2f} / {percentile(theirs, 0.99):.2f}",
                    f"{ratio:.2f}",
                )
            )
        client.request("DELETE", "/contexts/bench")
        return rows
    finally:
        client.close()
        stop(connect)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=30)
    arguments = parser.parse_args()
    client_python()  # before any server starts: the first run installs the client
    with tempfile.TemporaryDirectory(prefix="jobserver-bench-connect-") as folder:
        work_dir = Path(folder)
        connect_port, server_port = free_port(), free_port()
        connect_server = start_connect_server(work_dir, connect_port)
        job_server = start_job_server(work_dir, server_port)
        try:
            wait_healthy(server_port, 30)
            wait_for_port(connect_port, connect_server, 120)
            rows = measure(work_dir, arguments.requests, arguments.warm_up, server_port, connect_port)
        finally:
            stop(job_server)
            stop(connect_server, group=True)
    print(f"\n{arguments.requests} alternating requests per row, both warm, local[2]\n")
    header = ("measurement", "job server p50 / p99 ms", "Spark Connect p50 / p99 ms", "ratio p50")
    print(f"| {header[0]:<40} | {header[1]:>24} | {header[2]:>27} | {header[3]:>9} |")
    print(f"|{'-' * 42}|{'-' * 26}|{'-' * 29}|{'-' * 11}|")
    for name, ours, theirs, ratio in rows:
        print(f"| {name:<40} | {ours:>24} | {theirs:>27} | {ratio:>9} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
