"""Latency of the store's hot reads on a database that has been in use for a while.

    .venv/bin/python bench/store_queries.py [--jobs 100000] [--iterations 200]

For each backend (SQLite in a temporary folder; PostgreSQL on a throw-away server started with
tests/pg.py, skipped when its binaries are missing) the store is filled with jobs as the server
writes them: mostly FINISHED, some ERROR, KILLED and RUNNING, start times spread over 30 days,
three contexts, a posted config each and a small result for the finished ones, and one uploaded
binary. The rows go in through a bulk path (executemany / COPY) built from the store's own column
lists and encoders, then every query is measured through the public Store API after a warm-up,
among them what a job submission asks of the store: the newest version of its binary, the
binary's file, and the insert of the job. Prints a table of median and p99 in milliseconds, and
how long one retention pass over half the jobs took.
Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.pg, the throw-away PostgreSQL server

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

from jobserver.common.config import load_settings  # noqa: E402
from jobserver.common.records import (  # noqa: E402
    BinaryRecord,
    BinaryType,
    ContextRecord,
    JobRecord,
    from_epoch_ms,
    to_epoch_ms,
    utc_now,
)
from jobserver.common.states import ContextState, JobState  # noqa: E402
from jobserver.storage import Store, create_store  # noqa: E402
from jobserver.storage.rows import JOB_COLUMNS, column_list, job_values, to_json  # noqa: E402
from jobserver.web.app import create_app  # noqa: E402
from tests.pg import find_postgres_bin_dir, start_postgres_server  # noqa: E402

SPREAD_DAYS = 30
WARM_UP_ITERATIONS = 20
PAGE_SIZE = 50
APP_NAME = "bench-app"
_STATES = [
    (JobState.FINISHED, 0.88),
    (JobState.ERROR, 0.07),
    (JobState.KILLED, 0.02),
    (JobState.RUNNING, 0.03),
]


@dataclass(frozen=True, slots=True)
class StoredJob:
    record: JobRecord
    config: dict[str, Any]
    result: bytes | None


def make_contexts(now_ms: int) -> list[ContextRecord]:
    return [
        ContextRecord(
            id=str(uuid.uuid4()),
            name=name,
            config={"num-cpu-cores": 4, "memory-per-node": "2g", "context": {"name": name}},
            state=ContextState.RUNNING,
            start_time=from_epoch_ms(now_ms - SPREAD_DAYS * 86_400_000),
            application_id=f"local-{index}",
            owner="bench-server",
        )
        for index, name in enumerate(["shared", "etl", "reports"])
    ]


def make_jobs(
    count: int, contexts: list[ContextRecord], now_ms: int, rng: random.Random
) -> Iterator[StoredJob]:
    states = [state for state, _ in _STATES]
    weights = [weight for _, weight in _STATES]
    for number in range(count):
        context = rng.choice(contexts)
        state = rng.choices(states, weights)[0]
        start_ms = now_ms - rng.randrange(SPREAD_DAYS * 86_400_000)
        end_ms = None if state is JobState.RUNNING else start_ms + rng.randrange(100, 600_000)
        error = None
        if state is JobState.ERROR:
            error = {"message": "boom", "errorClass": "ValueError", "stack": "Traceback …\n  line 12"}
        record = JobRecord(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            context_id=context.id,
            context_name=context.name,
            class_path="example_jobs.word_count.WordCountJob",
            state=state,
            start_time=from_epoch_ms(start_ms),
            end_time=None if end_ms is None else from_epoch_ms(end_ms),
            binary_ids=(1,) if number % 10 else (1, 2),
            error=error,
        )
        config = {"input": {"strings": ["a", "b", "a", str(number)]}, "spark": {"job-number": number}}
        result = to_json({"result": {"a": 2, "b": 1}}).encode() if state is JobState.FINISHED else None
        yield StoredJob(record, config, result)


# --- bulk loading: the rows the store would write, without one round trip per job ----------------


def load_sqlite(database: Path, jobs: list[StoredJob]) -> None:
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT INTO jobs ({column_list(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})",
            (job_values(job.record, to_json) for job in jobs),
        )
        connection.executemany(
            "INSERT INTO job_binaries (job_id, position, binary_id) VALUES (?, ?, ?)",
            (
                (job.record.id, position, binary_id)
                for job in jobs
                for position, binary_id in _class_path(job)
            ),
        )
        connection.executemany(
            "INSERT INTO job_configs (job_id, config) VALUES (?, ?)",
            ((job.record.id, to_json(job.config)) for job in jobs),
        )
        connection.executemany(
            "INSERT INTO job_results (job_id, result) VALUES (?, ?)",
            ((job.record.id, job.result) for job in jobs if job.result is not None),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def load_postgres(url: str, jobs: list[StoredJob]) -> None:
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY jobs ({column_list(JOB_COLUMNS)}) FROM STDIN") as copy:
                for job in jobs:
                    copy.write_row(job_values(job.record, to_json))
            with cursor.copy("COPY job_binaries (job_id, position, binary_id) FROM STDIN") as copy:
                for job in jobs:
                    for position, binary_id in _class_path(job):
                        copy.write_row((job.record.id, position, binary_id))
            with cursor.copy("COPY job_configs (job_id, config) FROM STDIN") as copy:
                for job in jobs:
                    copy.write_row((job.record.id, to_json(job.config)))
            with cursor.copy("COPY job_results (job_id, result) FROM STDIN") as copy:
                for job in jobs:
                    if job.result is not None:
                        copy.write_row((job.record.id, job.result))
        connection.commit()
        # What autovacuum does soon after a load this size; the planner needs the statistics.
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")


def _class_path(job: StoredJob) -> Iterator[tuple[int, int]]:
    return enumerate(job.record.binary_ids)


# --- measuring ---------------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def time_ms(call: Callable[[int], Awaitable[object]], iterations: int) -> list[float]:
    for iteration in range(WARM_UP_ITERATIONS):
        await call(iteration)
    samples = []
    for iteration in range(iterations):
        started = time.perf_counter()
        await call(iteration)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def measure(
    store: Store, job_ids: list[str], binary: BinaryRecord, context: ContextRecord, iterations: int
) -> list[tuple[str, list[float]]]:
    rng = random.Random(7)
    picks = [rng.choice(job_ids) for _ in range(iterations + WARM_UP_ITERATIONS)]

    async def job_and_result(iteration: int) -> None:
        await store.get_job(picks[iteration])
        await store.get_result(picks[iteration])

    async def binary_lookup(_: int) -> None:
        found = await store.latest_binary(APP_NAME)
        assert found is not None
        await store.blob_file(found.sha256)

    async def submission(_: int) -> None:
        # A job's way through the store as the server makes it: its binary, the binary's file,
        # its insert; then the task yields, as a request handler does before the next request.
        found = await store.latest_binary(APP_NAME)
        assert found is not None
        await store.blob_file(found.sha256)
        await store.insert_job(submitted_job(context, found), {"input": {"strings": ["a"]}})
        await asyncio.sleep(0)

    queries: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
        (f"list_jobs({PAGE_SIZE})", lambda _: store.list_jobs(PAGE_SIZE)),
        (f"list_jobs({PAGE_SIZE}, FINISHED)", lambda _: store.list_jobs(PAGE_SIZE, JobState.FINISHED)),
        ("get_job(random id)", lambda iteration: store.get_job(picks[iteration])),
        ("get_result(random id)", lambda iteration: store.get_result(picks[iteration])),
        ("get_job + get_result", job_and_result),
        ("latest_binary(name)", lambda _: store.latest_binary(APP_NAME)),
        ("blob_file(sha256)", lambda _: store.blob_file(binary.sha256)),
        ("latest_binary + blob_file", binary_lookup),
        ("submission: lookups+insert", submission),
    ]
    return [(name, await time_ms(call, iterations)) for name, call in queries]


def submitted_job(context: ContextRecord, binary: BinaryRecord) -> JobRecord:
    return JobRecord(
        id=str(uuid.uuid4()),
        context_id=context.id,
        context_name=context.name,
        class_path="example_jobs.word_count.WordCountJob",
        state=JobState.STARTED,
        start_time=utc_now(),
        binary_ids=(binary.id,),
    )


async def upload_binary(store: Store, folder: Path) -> BinaryRecord:
    content = b"PK\x03\x04 a small wheel " * 256
    sha256 = hashlib.sha256(content).hexdigest()
    source = folder / f"upload-{uuid.uuid4().hex}"
    source.write_bytes(content)
    await store.put_blob(sha256, source)
    return await store.add_binary_version(APP_NAME, BinaryType.WHEEL, sha256, len(content), utc_now())


async def measure_http(
    store_url: str, work_dir: Path, job_ids: list[str], iterations: int
) -> list[tuple[str, list[float]]]:
    """The same reads as a client sees them: the real app on an ephemeral port over this store."""
    settings = load_settings(
        None,
        {
            "spark.jobserver.work-dir": str(work_dir),
            "spark.jobserver.store.url": store_url,
            "spark.jobserver.server-id": "bench-http",  # leaves the loader's contexts alone
            "spark.jobserver.dao-cleanup-after": "36500d",  # and its jobs: retention is timed below
        },
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    rng = random.Random(11)
    picks = [rng.choice(job_ids) for _ in range(iterations + WARM_UP_ITERATIONS)]
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:

            async def get(path: str) -> None:
                async with session.get(path) as response:
                    await response.read()
                    assert response.status == 200, response.status

            queries: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
                (f"GET /jobs?limit={PAGE_SIZE}", lambda _: get(f"/jobs?limit={PAGE_SIZE}")),
                ("GET /jobs?status=FINISHED", lambda _: get("/jobs?status=FINISHED")),
                ("GET /jobs/<id>", lambda iteration: get(f"/jobs/{picks[iteration]}")),
            ]
            return [(name, await time_ms(call, iterations)) for name, call in queries]
    finally:
        await server.close()


async def fill_and_measure(
    store: Store,
    load: Callable[[list[StoredJob]], None],
    job_count: int,
    iterations: int,
    *,
    store_url: str,
    work_dir: Path,
) -> tuple[list[tuple[str, list[float]]], str]:
    now_ms = to_epoch_ms(utc_now())
    rng = random.Random(42)
    contexts = make_contexts(now_ms)
    jobs = list(make_jobs(job_count, contexts, now_ms, rng))
    await store.open()
    try:
        for context in contexts:
            await store.insert_context(context)
        work_dir.mkdir(parents=True, exist_ok=True)
        binary = await upload_binary(store, work_dir)
        started = time.perf_counter()
        await asyncio.to_thread(load, jobs)
        print(f"  loaded {job_count:,} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        job_ids = [job.record.id for job in jobs]
        results = await measure(store, job_ids, binary, contexts[0], iterations)
        results += await measure_http(store_url, work_dir, job_ids, iterations)
        # Retention of about half the jobs, once: how long the cleaner holds the database.
        before = from_epoch_ms(now_ms) - datetime.timedelta(days=SPREAD_DAYS / 2)
        started = time.perf_counter()
        counts = await store.delete_expired(before)
        note = f"delete_expired removed {counts} in {(time.perf_counter() - started) * 1000:.0f} ms"
    finally:
        await store.close()
    return results, note


async def run(job_count: int, iterations: int) -> None:
    rows: list[tuple[str, str, list[float]]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="store-bench-") as folder:
        print("sqlite: filling", flush=True)
        database = Path(folder) / "db" / "jobserver.sqlite"
        store = create_store(f"sqlite://{database}", blob_dir=Path(folder) / "sqlite-blobs")
        results, note = await fill_and_measure(
            store,
            lambda jobs: load_sqlite(database, jobs),
            job_count,
            iterations,
            store_url=f"sqlite://{database}",
            work_dir=Path(folder) / "sqlite-server",
        )
        rows += [("sqlite", name, samples) for name, samples in results]
        notes.append(f"sqlite: {note}")

        bin_dir = find_postgres_bin_dir()
        if bin_dir is None:
            notes.append("postgres: skipped, no PostgreSQL binaries (initdb, pg_ctl) found")
        else:
            print("postgres: starting a server and filling", flush=True)
            server = start_postgres_server(bin_dir)
            try:
                url = server.create_database("bench")
                store = create_store(url, blob_dir=Path(folder) / "postgres-blobs")
                results, note = await fill_and_measure(
                    store,
                    lambda jobs: load_postgres(url, jobs),
                    job_count,
                    iterations,
                    store_url=url,
                    work_dir=Path(folder) / "postgres-server",
                )
                rows += [("postgres", name, samples) for name, samples in results]
                notes.append(f"postgres: {note}")
            finally:
                server.stop()
    print_table(rows, job_count, iterations)
    for note in notes:
        print(note)


def print_table(rows: list[tuple[str, str, list[float]]], job_count: int, iterations: int) -> None:
    print(f"\n{job_count:,} jobs, {iterations} iterations after {WARM_UP_ITERATIONS} warm-up\n")
    # Four decimals: the SQLite lookups take microseconds.
    print(f"| {'backend':<9}| {'query':<27}| {'median ms':>10} | {'p99 ms':>8} |")
    print(f"|{'-' * 10}|{'-' * 28}|{'-' * 12}|{'-' * 10}|")
    for backend, name, samples in rows:
        print(
            f"| {backend:<9}| {name:<27}| {statistics.median(samples):>10.4f} "
            f"| {percentile(samples, 0.99):>8.4f} |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.jobs, arguments.iterations))


if __name__ == "__main__":
    main()
