"""Ad-hoc jobs through a warm pool, without one, and spark-submit, side by side (``make bench``).

Starts the job server (SQLite store, local[2], a warm pool of one driver, ``spark.jobserver.pool``)
and measures, in one run:

1. an ad-hoc EchoJob (``POST /jobs`` without ``context``) that takes the pool's warm driver: p50
   and p99 of ``--requests`` sequential sync jobs after a warm-up;
2. an ad-hoc EchoJob whose settings match no pool, so that it starts a driver of its own, as
   every ad-hoc job did before pools (``--runs`` runs);
3. ``spark-submit`` of a script doing what EchoJob does (a SparkSession, the input back, stop),
   in local[2] with the driver's memory and JVM options the server's drivers get (``--runs``
   runs, alternating with row 2).

Rows 2 and 3 are whole runs, each a new JVM; the ratio column says how many times longer each row
takes than row 1 at p50. Prints a table in milliseconds. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from latency import LeanClient, free_port, percentile, wait_healthy

REPO = Path(__file__).resolve().parent.parent
WHEEL = REPO / "examples" / "dist" / "sjs_python_examples-0.1.0-py3-none-any.whl"
ECHO = "/jobs?appName=bench&classPath=example_jobs.echo.EchoJob&sync=true&timeout=300"
INPUT = {"bench": True}
POOLED_BODY = json.dumps({"input": INPUT})
# A setting no pool has: the job gets a driver of its own.
UNPOOLED_BODY = json.dumps({"input": INPUT, "spark": {"context-settings": {"num-cpu-cores": 1}}})
DRIVER_MEMORY = "1g"  # conf/defaults.conf: spark.context-settings.launcher.spark.driver.memory

# What EchoJob does, as a script of its own: a session, the input back, Spark stopped.
SCRIPT = f"""
import json
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("echo").getOrCreate()
print(json.dumps({INPUT!r}))
spark.stop()
"""


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def wait_for_warm_pool(client: LeanClient, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        status, answer = client.request("GET", "/pools")
        if status == 200 and json.loads(answer)[0]["idle"] >= 1:
            return
        time.sleep(0.2)
    raise RuntimeError("the pool's driver did not start")


def sync_job(client: LeanClient, body: str) -> float:
    started = time.perf_counter()
    status, answer = client.request("POST", ECHO, body.encode())
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    assert status == 200 and json.loads(answer)["result"] == INPUT, answer
    return elapsed_ms


def spark_submit(script: Path) -> float:
    command = [
        str(pyspark_home() / "bin" / "spark-submit"),
        "--master",
        "local[2]",
        "--driver-memory",
        DRIVER_MEMORY,
        "--conf",
        "spark.ui.enabled=false",
        str(script),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    assert done.returncode == 0 and json.loads(done.stdout.strip().splitlines()[-1]) == INPUT, done.stderr
    return elapsed_ms


def measure(port: int, requests: int, runs: int, script: Path) -> dict[str, list[float]]:
    wait_healthy(port, 30)
    client = LeanClient(port)
    try:
        status, answer = client.request(
            "POST", "/binaries/bench", WHEEL.read_bytes(), "application/python-wheel"
        )
        assert status == 201, answer
        wait_for_warm_pool(client, 120)
        for _ in range(20):  # warm-up: the driver's imports, the job's package
            sync_job(client, POOLED_BODY)
        pooled = [sync_job(client, POOLED_BODY) for _ in range(requests)]
        unpooled, submitted = [], []
        for _ in range(runs):  # alternating, so that both see the same machine
            unpooled.append(sync_job(client, UNPOOLED_BODY))
            submitted.append(spark_submit(script))
    finally:
        client.close()
    return {"pooled": pooled, "unpooled": unpooled, "submitted": submitted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="pooled ad-hoc jobs timed")
    parser.add_argument("--runs", type=int, default=3, help="runs of each JVM-starting row")
    arguments = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobserver-bench-") as work_dir:
        config = Path(work_dir) / "bench.conf"
        config.write_text(
            f'spark.jobserver.port = {port}\nspark.jobserver.work-dir = "{work_dir}/work"\n'
            'spark.master = "local[2]"\nspark.context-settings.spark.ui.enabled = false\n'
            "spark.jobserver.pool.bench { size = 1, max-jobs = 10000, idle-timeout = 10m }\n"
        )
        script = Path(work_dir) / "echo.py"
        script.write_text(SCRIPT)
        log = open(Path(work_dir) / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "jobserver"), str(config)], stdout=log, stderr=log
        )
        try:
            samples = measure(port, arguments.requests, arguments.runs, script)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
    pooled_p50 = statistics.median(samples["pooled"])
    rows = [
        ("ad-hoc EchoJob, warm pool", samples["pooled"]),
        ("ad-hoc EchoJob, no pool (starts a driver)", samples["unpooled"]),
        ("spark-submit of the same script", samples["submitted"]),
    ]
    print(
        f"\nad-hoc jobs, local[2], SQLite store: {arguments.requests} pooled jobs, "
        f"{arguments.runs} runs of each other row\n"
    )
    print(f"| {'measurement':<42} | {'runs':>5} | {'p50 ms':>9} | {'p99/max ms':>10} | {'x pool p50':>10} |")
    print(f"|{'-' * 44}|{'-' * 7}|{'-' * 11}|{'-' * 12}|{'-' * 12}|")
    for name, values in rows:
        p50 = statistics.median(values)
        print(
            f"| {name:<42} | {len(values):>5} | {p50:>9.1f} | {percentile(values, 0.99):>10.1f} "
            f"| {p50 / pooled_p50:>10.1f} |"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
