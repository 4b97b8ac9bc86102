"""Driver life cycles with the real driver code but no JVM (tests/fakes: stand-in spark-submits)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import zipfile
from pathlib import Path

import msgpack
import structlog
import zmq
import zmq.asyncio

from driver.protocol import Hello, JobFinished, Rejected, Welcome, decode, encode
from tests.support import (
    FAKE_SPARK_HOMES,
    Api,
    driver_secrets,
    processes_mentioning,
    running_server,
    wait_until,
)


def fake_spark(kind: str, **overrides: object) -> dict[str, object]:
    return {"spark.home": str(FAKE_SPARK_HOMES / kind), **overrides}


async def test_driver_that_never_connects_makes_the_context_error_and_is_killed(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, fake_spark("hang", **{"spark.jobserver.context-creation-timeout": "1s"})
    ) as api:
        status, body, _ = await api.call("POST", "/contexts/late")
        assert status == 500
        assert body["status"] == "CONTEXT INIT ERROR"
        assert body["result"]["message"] == "Context failed to connect back within initialization time"
        _, info, _ = await api.call("GET", "/contexts/late")
        assert info["state"] == "ERROR"
        await wait_until(lambda: _gone(info["id"]), timeout_s=10, what="hanging spark-submit killed")


async def test_spark_submit_that_fails_reports_its_output(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("crash")) as api:
        status, body, _ = await api.call("POST", "/contexts/broken")
        assert status == 500
        assert body["status"] == "CONTEXT INIT ERROR"
        assert "exited with code 1" in body["result"]["message"]
        assert "no Java runtime found" in body["result"]["stack"]
        assert (await api.call("GET", "/contexts/broken"))[1]["state"] == "ERROR"


async def test_stand_in_driver_runs_jobs_and_stops_cleanly(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/light"))[0] == 200
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=light&sync=true",
            data='{"input": {"x": [1, 2]}}',
        )
        assert (status, body["result"]) == (200, {"x": [1, 2]})
        assert (await api.call("DELETE", "/contexts/light"))[:2] == (
            200,
            {"status": "SUCCESS", "result": "Context stopped"},
        )


async def test_a_stopped_driver_is_declared_lost_and_its_jobs_fail(tmp_path: Path) -> None:
    overrides = fake_spark(
        "light", **{"spark.jobserver.heartbeat.interval": "200ms", "spark.jobserver.heartbeat.timeout": "1s"}
    )
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/frozen"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/frozen")
        _, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob&context=frozen",
            data="sleep.seconds = 60",
        )
        await api.wait_job_state(body["jobId"], "RUNNING")
        for pid in processes_mentioning(info["id"]):
            os.kill(pid, signal.SIGSTOP)
        context = await api.wait_context_state("frozen", "KILLED", timeout_s=10)
        assert context["error"].startswith("Driver of context frozen lost: no heartbeat")
        report = await api.wait_job_state(body["jobId"], "ERROR", timeout_s=5)
        assert "lost: no heartbeat" in report["result"]["message"]
        await wait_until(lambda: _gone(info["id"]), timeout_s=10, what="frozen driver killed")


SLOW_START = """
import time
from pathlib import Path


class SlowStart:
    \"\"\"A native job that validates for a while (saying so in a file first): its driver says
    nothing about it meanwhile.\"\"\"

    def validate(self, spark, config):
        Path(config.get("marker")).write_text("validating")
        time.sleep(float(config.get("seconds")))
        return None

    def run(self, spark, data, env):
        return "ran"
"""


async def test_a_sync_job_whose_driver_dies_before_it_is_stored_ends_error(tmp_path: Path) -> None:
    # A sync job is stored when its driver first reports on it, when anything else needs it
    # stored, or start-store-delay after it was sent: here the driver is killed before any.
    overrides = fake_spark("light", **{"spark.jobserver.start-store-delay": "60s"})
    package = tmp_path / "slow_start.egg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("slow_start.py", SLOW_START)
    marker = tmp_path / "validating"
    async with running_server(tmp_path / "server", overrides) as api:
        await api.upload("slow", package, "application/python-archive")
        assert (await api.call("POST", "/contexts/doomed"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/doomed")
        request = asyncio.create_task(
            api.call(
                "POST",
                "/jobs?appName=slow&classPath=slow_start.SlowStart&context=doomed&sync=true&timeout=120",
                data=json.dumps({"marker": str(marker), "seconds": 60}),
            )
        )

        async def validating() -> bool:
            return marker.exists()

        await wait_until(validating, what="the job validating in its driver")
        for pid in processes_mentioning(info["id"]):
            os.kill(pid, signal.SIGKILL)
        status, body, _ = await asyncio.wait_for(request, 30)
        assert (status, body["status"]) == (200, "ERROR")
        assert body["result"]["message"].startswith(f"Unexpected termination of context {info['id']}")
        _, jobs, _ = await api.call("GET", "/jobs")
        assert [(job["jobId"], job["status"]) for job in jobs] == [(body["jobId"], "ERROR")]
        assert (await api.call("GET", "/contexts/doomed"))[1]["state"] in ("KILLED", "ERROR")


async def test_on_a_plaintext_bus_strangers_are_rejected_and_change_nothing(tmp_path: Path) -> None:
    bus_port = _free_port()
    overrides = fake_spark(
        "light", **{"spark.jobserver.bus.port": bus_port, "spark.jobserver.bus.curve": "off"}
    )
    async with running_server(tmp_path, overrides) as api:
        assert (await api.call("POST", "/contexts/guarded"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/guarded")
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(f"tcp://127.0.0.1:{bus_port}")
        try:
            await socket.send(b"\x93garbage")
            await socket.send(msgpack.packb([99, "hello", {}]))
            await socket.send(encode(Hello(context_id=info["id"], token="wrong", pid=1)))
            answer = decode(await socket.recv())
            assert isinstance(answer, Rejected)
        finally:
            socket.close()
            context.term()
        _, after, _ = await api.call("GET", "/contexts/guarded")
        assert after["state"] == "RUNNING"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _gone(context_id: str) -> bool:
    return not processes_mentioning(context_id)


async def test_stop_context_on_job_error_stops_it_after_a_failure_only(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/fragile?stop-context-on-job-error=true"))[0] == 200
        base = "/jobs?appName=examples&context=fragile&sync=true&classPath=example_jobs."
        assert (await api.call("POST", base + "echo.EchoJob"))[0] == 200
        assert (await api.call("GET", "/contexts/fragile"))[1]["state"] == "RUNNING"
        status, body, _ = await api.call("POST", base + "failing_job.FailingRunJob")
        assert (status, body["status"]) == (200, "ERROR")
        await api.wait_context_state("fragile", "FINISHED", timeout_s=15)


async def test_a_streaming_context_stops_after_a_failing_job_unless_told_otherwise(tmp_path: Path) -> None:
    streaming = "context-factory=spark.jobserver.context.StreamingContextFactory"
    async with running_server(tmp_path, fake_spark("light")) as api:
        await api.upload("examples")
        assert (await api.call("POST", f"/contexts/streaming?{streaming}"))[0] == 200
        sturdy = f"/contexts/sturdy?{streaming}&stop-context-on-job-error=false"
        assert (await api.call("POST", sturdy))[0] == 200
        for context in ("streaming", "sturdy"):
            path = f"/jobs?appName=examples&context={context}&sync=true&classPath="
            assert (await api.call("POST", path + "example_jobs.echo.EchoJob"))[0] == 200
            status, body, _ = await api.call("POST", path + "example_jobs.failing_job.FailingRunJob")
            assert (status, body["status"]) == (200, "ERROR")
        await api.wait_context_state("streaming", "FINISHED", timeout_s=15)
        assert (await api.call("GET", "/contexts/sturdy"))[1]["state"] == "RUNNING"


async def test_a_cluster_mode_driver_finds_its_secrets_among_the_shipped_files(tmp_path: Path) -> None:
    # The stand-in spark-submit runs the driver in a folder of its own with the --files in it.
    # A yarn master (the stand-in does not care): cluster deploy mode on local[*] is refused. The
    # driver's own packed Python is tested with tests/fakes/cluster (test_cluster_mode.py).
    cluster_mode = {
        "spark.master": "yarn",
        "spark.submit.deployMode": "cluster",
        "spark.jobserver.driver.python-archive": "off",
    }
    async with running_server(tmp_path, fake_spark("light", **cluster_mode)) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/remote"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/remote")
        shipped = list(
            (api.settings.work_dir / "drivers" / info["id"] / "container").glob("driver-secrets-*")
        )
        assert len(shipped) == 1
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=remote&sync=true",
            data='{"input": "over CURVE"}',
        )
        assert (status, body["result"]) == (200, "over CURVE")


async def test_a_driver_that_ignores_stop_and_sigterm_is_killed_within_the_deletion_timeout(
    tmp_path: Path,
) -> None:
    overrides = fake_spark("deaf", **{"spark.jobserver.context-deletion-timeout": "2100ms"})
    async with running_server(tmp_path, overrides) as api:
        assert (await api.call("POST", "/contexts/wedged"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/wedged")
        status, _, _ = await api.call("DELETE", "/contexts/wedged")
        assert status == 202
        # Polite stop, then SIGTERM at 2.1 s (ignored), then SIGKILL of the group 5 s later.
        await api.wait_context_state("wedged", "FINISHED", timeout_s=20)
        await wait_until(lambda: _gone(info["id"]), timeout_s=5, what="wedged process group killed")


async def test_drivers_on_other_hosts_fetch_job_packages_over_the_bus(tmp_path: Path) -> None:
    # "bus": the driver is told no local path and must fetch (and check) the package's bytes.
    overrides = fake_spark("light", **{"spark.jobserver.driver.binaries": "bus"})
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/remote"))[0] == 200
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=remote&sync=true",
            data='{"input": {"fetched": true}}',
        )
        assert (status, body.get("result")) == (200, {"fetched": True}), body


async def test_jobs_open_uploaded_data_files_by_name_even_from_another_host(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        await api.upload("examples")
        _, stored, _ = await api.call("POST", "/data/words.txt", data=b"a b c a b see")
        name = stored["result"]["filename"]
        assert (await api.call("POST", "/contexts/reader"))[0] == 200
        path = "/jobs?cp=examples&mainClass=example_jobs.native:file_words&context=reader&sync=true"
        expected = {"a": 2, "b": 2, "c": 1, "see": 1}
        # The full name is readable on this host; the bare name makes the driver fetch it over the bus.
        for given in (name, Path(name).name):
            status, body, _ = await api.call("POST", path, data=json.dumps({"input": {"file": given}}))
            assert (status, body.get("result")) == (200, expected), body
        status, body, _ = await api.call("POST", path, data='{"input": {"file": "missing.dat"}}')
        assert (status, body["status"]) == (200, "ERROR")
        assert "not available" in body["result"]["message"]


async def start_stubborn_job_and_kill_it(api: Api) -> tuple[dict, dict]:
    await api.upload("examples")
    assert (await api.call("POST", "/contexts/sticky"))[0] == 200
    _, context, _ = await api.call("GET", "/contexts/sticky")
    _, job, _ = await api.call(
        "POST",
        "/jobs?appName=examples&classPath=example_jobs.sleep_job.StubbornJob&context=sticky",
        data="sleep.seconds = 60",
    )
    await api.wait_job_state(job["jobId"], "RUNNING")
    assert (await api.call("DELETE", f"/jobs/{job['jobId']}"))[:2] == (200, {"status": "KILLED"})
    return context, job


STUCK_KILL = {"spark.jobserver.heartbeat.interval": "200ms", "spark.jobserver.kill-grace": "500ms"}


async def test_a_job_that_ignores_its_kill_is_reported(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("light", **STUCK_KILL)) as api:
        context, job = await start_stubborn_job_and_kill_it(api)

        async def reported() -> bool:
            _, info, _ = await api.call("GET", "/contexts/sticky")
            return info.get("stuckJobs") == [job["jobId"]]

        await wait_until(reported, timeout_s=10, what="the stuck job reported")
        _, info, _ = await api.call("GET", "/contexts/sticky")
        assert (info["id"], info["state"]) == (context["id"], "RUNNING")
        assert await api.job_state(job["jobId"]) == "KILLED"


async def test_a_job_that_ignores_its_kill_restarts_its_context_when_configured(tmp_path: Path) -> None:
    overrides = fake_spark("light", **STUCK_KILL, **{"spark.jobserver.restart-context-on-stuck-kill": True})
    async with running_server(tmp_path, overrides) as api:
        before, job = await start_stubborn_job_and_kill_it(api)

        async def restarted() -> bool:
            _, info, _ = await api.call("GET", "/contexts/sticky")
            return info["id"] != before["id"] and info["state"] == "RUNNING"

        await wait_until(restarted, timeout_s=30, what="the context restarted")
        assert await api.job_state(job["jobId"]) == "KILLED"
        await wait_until(lambda: _gone(before["id"]), timeout_s=10, what="the old driver gone")


async def _never_answered(socket: zmq.asyncio.Socket) -> bool:
    return not await socket.poll(500)


async def test_a_peer_knowing_a_contexts_id_and_token_but_not_its_key_is_never_handled(
    tmp_path: Path,
) -> None:
    bus_port = _free_port()
    async with running_server(tmp_path, fake_spark("light", **{"spark.jobserver.bus.port": bus_port})) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/guarded"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/guarded")
        stolen = driver_secrets(api.settings.work_dir, info["id"])
        status, job, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob&context=guarded",
            data="sleep.seconds = 1",
        )
        assert status == 202
        await api.wait_job_state(job["jobId"], "RUNNING")
        context = zmq.asyncio.Context()
        public, secret = zmq.curve_keypair()  # its own key: it trusts the right server, to no avail
        impostor = context.socket(zmq.DEALER)
        impostor.setsockopt(zmq.LINGER, 0)
        impostor.setsockopt(zmq.CURVE_SERVERKEY, stolen.server_public_key.encode())
        impostor.setsockopt(zmq.CURVE_PUBLICKEY, public)
        impostor.setsockopt(zmq.CURVE_SECRETKEY, secret)
        impostor.connect(f"tcp://127.0.0.1:{bus_port}")
        try:
            with structlog.testing.capture_logs() as logs:
                await impostor.send(encode(Hello(context_id=info["id"], token=stolen.token, pid=1)))
                await impostor.send(encode(JobFinished(job_id=job["jobId"], result=b'"forged"')))

                async def refused() -> bool:
                    return any(entry["event"] == "bus_peer_refused" for entry in logs)

                await wait_until(refused, timeout_s=10, what="the impostor's key refused")
            assert not await impostor.poll(200)  # no Welcome, no Reintroduce: it never got in
        finally:
            impostor.close()
            context.term()
        report = await api.wait_job_state(job["jobId"], "FINISHED", "ERROR")
        assert (report["status"], report["result"]) == ("FINISHED", 1.0)
        assert (await api.call("GET", "/contexts/guarded"))[1]["state"] == "RUNNING"
        assert not [entry for entry in logs if entry["event"] in ("driver_connected", "driver_rejected")]


async def test_a_driver_with_one_contexts_key_cannot_speak_for_another(tmp_path: Path) -> None:
    bus_port = _free_port()
    async with running_server(tmp_path, fake_spark("light", **{"spark.jobserver.bus.port": bus_port})) as api:
        await api.upload("examples")
        for name in ("tenant-a", "tenant-b"):
            assert (await api.call("POST", f"/contexts/{name}"))[0] == 200
        a = (await api.call("GET", "/contexts/tenant-a"))[1]["id"]
        b = (await api.call("GET", "/contexts/tenant-b"))[1]["id"]
        a_secrets, b_secrets = (
            driver_secrets(api.settings.work_dir, a),
            driver_secrets(api.settings.work_dir, b),
        )
        status, job, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob&context=tenant-b",
            data="sleep.seconds = 1",
        )
        assert status == 202
        await api.wait_job_state(job["jobId"], "RUNNING")
        context = zmq.asyncio.Context()
        rogue = context.socket(zmq.DEALER)  # what a job in A's driver could build: A's keys
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.setsockopt(zmq.CURVE_SERVERKEY, a_secrets.server_public_key.encode())
        rogue.setsockopt(zmq.CURVE_PUBLICKEY, a_secrets.public_key.encode())
        rogue.setsockopt(zmq.CURVE_SECRETKEY, a_secrets.secret_key.encode())
        rogue.connect(f"tcp://127.0.0.1:{bus_port}")
        try:
            with structlog.testing.capture_logs() as logs:
                # B's id, and even B's token: the key says A, so it is not B's driver.
                await rogue.send(encode(Hello(context_id=b, token=b_secrets.token, pid=1)))

                async def logged(event: str) -> bool:
                    return any(entry["event"] == event for entry in logs)

                await wait_until(lambda: logged("bus_message_refused"), timeout_s=10, what="Hello refused")
                assert await _never_answered(rogue)
                # As A (its key, its token) it is welcomed; a report on B's job still counts for nothing.
                await rogue.send(encode(Hello(context_id=a, token=a_secrets.token, pid=1)))
                assert isinstance(decode(await rogue.recv()), Welcome)
                await rogue.send(encode(JobFinished(job_id=job["jobId"], result=b'"forged"')))
                await wait_until(lambda: logged("job_report_refused"), timeout_s=10, what="report refused")
                rogue.close()
                # A's own driver, a stranger to the server since the rogue said Hello, rejoins.
                await wait_until(lambda: logged("driver_rejoined"), timeout_s=10, what="A's driver back")
            refusal = next(entry for entry in logs if entry["event"] == "bus_message_refused")
            assert (refusal["context_id"], refusal["sender_context_id"]) == (b, a)
        finally:
            rogue.close()
            context.term()
        report = await api.wait_job_state(job["jobId"], "FINISHED", "ERROR")
        assert (report["status"], report["result"]) == ("FINISHED", 1.0)
        assert (await api.call("GET", "/contexts/tenant-b"))[1]["state"] == "RUNNING"
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=tenant-b&sync=true",
            data='{"input": "still B"}',
        )
        assert (status, body["result"]) == (200, "still B")
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=tenant-a&sync=true",
            data='{"input": "A too"}',
        )
        assert (status, body["result"]) == (200, "A too")
