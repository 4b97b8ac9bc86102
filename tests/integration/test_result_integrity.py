"""A chunked result is stored only when every byte the driver sent arrived: the test plays a
context's driver on the real bus (its launcher never connects back: the ``hang`` fake), with the
keys and token the server gave it, and sends results the way the driver does."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import zmq
import zmq.asyncio

from driver.protocol import (
    ContextReady,
    DriverSecrets,
    Hello,
    JobFinished,
    JobResultChunk,
    JobResultChunkAck,
    JobResultSize,
    JobStarted,
    Message,
    Reintroduce,
    Rejoin,
    StartJob,
    decode,
    encode,
)
from tests.support import (
    FAKE_SPARK_HOMES,
    Api,
    driver_secrets,
    free_port,
    processes_mentioning,
    running_server,
    wait_until,
)

ECHO = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=played"
PART = b"x" * 1000


@asynccontextmanager
async def driver_socket(secrets: DriverSecrets, bus_port: int) -> AsyncIterator[zmq.asyncio.Socket]:
    context = zmq.asyncio.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.CURVE_SERVERKEY, secrets.server_public_key.encode())
    dealer.setsockopt(zmq.CURVE_PUBLICKEY, secrets.public_key.encode())
    dealer.setsockopt(zmq.CURVE_SECRETKEY, secrets.secret_key.encode())
    dealer.connect(f"tcp://127.0.0.1:{bus_port}")
    try:
        yield dealer
    finally:
        dealer.close()
        context.term()


async def receive(dealer: zmq.asyncio.Socket, kind: type[Message]) -> Message:
    """The next message of that kind from the server (others, such as heartbeats, are skipped)."""
    async with asyncio.timeout(10):
        while True:
            message = decode(await dealer.recv())
            if isinstance(message, kind):
                return message


async def started_job(api: Api, dealer: zmq.asyncio.Socket) -> StartJob:
    """An EchoJob posted to the played context, received and reported started."""
    posted = asyncio.create_task(api.call("POST", ECHO, data='{"input": "ignored"}'))
    start = await receive(dealer, StartJob)
    assert isinstance(start, StartJob)
    await dealer.send(encode(JobStarted(job_id=start.job_id)))
    status, job, _ = await posted
    assert (status, job["jobId"]) == (202, start.job_id)
    return start


async def played_context(api: Api, work_dir: Path) -> tuple[str, asyncio.Task[tuple[int, object, object]]]:
    """POST /contexts/played, whose launcher never connects; its id once its secrets exist."""
    created = asyncio.create_task(api.call("POST", "/contexts/played"))

    async def secrets_written() -> bool:
        return any((work_dir / "drivers").glob("*/driver-secrets-*.json"))

    await wait_until(secrets_written, timeout_s=10, what="the driver's secrets written")
    [folder] = (work_dir / "drivers").iterdir()
    return folder.name, created


async def test_a_lost_chunk_ends_the_job_in_error_and_a_resent_report_is_stored_whole(
    tmp_path: Path,
) -> None:
    bus_port = free_port()
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "hang"),
        "spark.jobserver.bus.port": bus_port,
        "spark.jobserver.context-deletion-timeout": "1s",
    }
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        context_id, created = await played_context(api, api.settings.work_dir)
        secrets = driver_secrets(api.settings.work_dir, context_id)
        [launcher] = processes_mentioning(context_id)  # the hanging spark-submit
        async with driver_socket(secrets, bus_port) as dealer:
            await dealer.send(
                encode(
                    Hello(context_id=context_id, token=secrets.token, pid=launcher, pgid=os.getpgid(launcher))
                )
            )
            await dealer.send(
                encode(ContextReady(application_id="local-1", web_ui_url=None, spark_version="4"))
            )
            status, _, _ = await created
            assert status == 200

            # A chunk lost on the way: the job is not FINISHED with a cut result.
            start = await started_job(api, dealer)
            await dealer.send(encode(JobResultChunk(job_id=start.job_id, data=b'"' + PART)))
            # Spooled: the server says so, and the driver may send the next.
            put_away = await receive(dealer, JobResultChunkAck)
            assert put_away == JobResultChunkAck(job_id=start.job_id, received_bytes=1001)
            # (the second chunk never arrives)
            last = PART + b'"'
            await dealer.send(encode(JobResultSize(job_id=start.job_id, result_bytes=3002)))
            await dealer.send(encode(JobFinished(job_id=start.job_id, result=last)))
            ended = await api.wait_job_state(start.job_id, "FINISHED", "ERROR")
            assert ended["status"] == "ERROR"
            assert ended["result"]["errorClass"] == "ResultIncomplete"
            assert ended["result"]["message"].startswith(
                "Job result arrived incomplete: 2002 of its 3002 bytes reached the server"
            )
            assert not list((api.settings.work_dir / "result-spool").iterdir())

            # The connection breaks halfway through a report; the driver rejoins on a new one and
            # sends the report again from its first chunk: stored once, whole.
            start = await started_job(api, dealer)
            await dealer.send(encode(JobResultChunk(job_id=start.job_id, data=b'"' + PART)))
            await wait_until(
                lambda: _spooled(api.settings.work_dir), timeout_s=10, what="the first chunk spooled"
            )
        async with driver_socket(secrets, bus_port) as rejoined:
            await rejoined.send(encode(JobStarted(job_id=start.job_id)))  # unknown connection
            assert isinstance(await receive(rejoined, Reintroduce), Reintroduce)
            rejoin = Rejoin(
                context_id=context_id, token=secrets.token, pid=launcher, pgid=os.getpgid(launcher),
                host=socket.gethostname(), running_job_ids=[], held_job_ids=[start.job_id],
                application_id="local-1",
            )  # fmt: skip
            await rejoined.send(encode(rejoin))
            for received_bytes, part in ((1001, b'"' + PART), (2001, PART)):
                await rejoined.send(encode(JobResultChunk(job_id=start.job_id, data=part)))
                put_away = await receive(rejoined, JobResultChunkAck)  # counted from the start again
                assert put_away == JobResultChunkAck(job_id=start.job_id, received_bytes=received_bytes)
            await rejoined.send(encode(JobResultSize(job_id=start.job_id, result_bytes=2002)))
            await rejoined.send(encode(JobFinished(job_id=start.job_id, result=b'"')))
            ended = await api.wait_job_state(start.job_id, "FINISHED", "ERROR")
            assert ended["status"] == "FINISHED", ended
            assert ended["result"] == "x" * 2000
            # The played driver never stops by itself: DELETE ends its launcher's process group.
            status, _, _ = await api.call("DELETE", "/contexts/played")
            assert status in (200, 202)
            await wait_until(lambda: _gone(context_id), timeout_s=10, what="the launcher stopped")


async def _spooled(work_dir: Path) -> bool:
    spool = work_dir / "result-spool"
    return spool.is_dir() and any(spool.iterdir())


async def _gone(context_id: str) -> bool:
    return not processes_mentioning(context_id)
