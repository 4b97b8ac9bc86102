"""spark-jobserver's context settings as its users set them, through the HTTP API, with the real
driver code and stand-in spark-submits (tests/fakes: no JVM): mem-per-node, unknown factories,
python.paths and python.executable, the start's deadlines, and context-per-jvm at start-up."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driver.protocol import CONTEXT_FACTORIES
from tests.support import FAKE_SPARK_HOMES, REPO, Api, processes_mentioning, running_server, wait_until

PROBE_PACKAGE = """
def on_driver(spark, config):
    import probe_helper  # found only through the context's python.paths

    return {"helper": probe_helper.WHERE}
"""


def fake_spark(kind: str, **overrides: object) -> dict[str, object]:
    return {"spark.home": str(FAKE_SPARK_HOMES / kind), **overrides}


def driver_confs(context_id: str) -> dict[str, str]:
    """The --conf settings on the command line of a context's driver (as `ps` shows them)."""
    for pid in processes_mentioning(context_id):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "--conf" in argv:
            pairs = [argv[index + 1] for index, word in enumerate(argv) if word == "--conf"]
            return dict(pair.split("=", 1) for pair in pairs)
    raise AssertionError(f"no driver process of context {context_id}")


async def context_id(api: Api, name: str) -> str:
    status, info, _ = await api.call("GET", f"/contexts/{name}")
    assert status == 200, info
    return str(info["id"])


async def no_process_left(context: str) -> bool:
    return not processes_mentioning(context)


# --- mem-per-node -----------------------------------------------------------------------------


async def test_mem_per_node_sets_executor_memory_as_memory_per_node_does(tmp_path: Path) -> None:
    overrides = fake_spark("light", **{"spark.context-settings.mem-per-node": "768m"})
    async with running_server(tmp_path, overrides) as api:
        assert (await api.call("POST", "/contexts/by-default"))[0] == 200
        assert (await api.call("POST", "/contexts/by-query?mem-per-node=1g"))[0] == 200
        body = json.dumps({"spark.context-settings": {"mem-per-node": "2g"}})
        assert (await api.call("POST", "/contexts/by-body", data=body))[0] == 200
        memory = {
            name: driver_confs(await context_id(api, name))["spark.executor.memory"]
            for name in ("by-default", "by-query", "by-body")
        }
        assert memory == {"by-default": "768m", "by-query": "1g", "by-body": "2g"}


async def test_mem_per_node_and_memory_per_node_differing_is_a_400_that_launches_nothing(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        status, body, _ = await api.call("POST", "/contexts/both?mem-per-node=1g&memory-per-node=2g")
        assert status == 400
        assert body["status"] == "ERROR"
        assert "mem-per-node (1g) and memory-per-node (2g) differ" in body["result"]
        assert (await api.call("GET", "/contexts/both"))[0] == 404
        assert (await api.call("POST", "/contexts/same?mem-per-node=1g&memory-per-node=1g"))[0] == 200


async def test_mem_per_node_passes_the_allow_list_as_memory_per_node(tmp_path: Path) -> None:
    overrides = fake_spark("light", **{"spark.jobserver.client-settings.allowed": ["memory-per-node"]})
    async with running_server(tmp_path, overrides) as api:
        assert (await api.call("POST", "/contexts/allowed?mem-per-node=1g"))[0] == 200
        assert driver_confs(await context_id(api, "allowed"))["spark.executor.memory"] == "1g"
        status, body, _ = await api.call("POST", "/contexts/refused?num-cpu-cores=1")
        assert (status, body["result"]) == (403, "Context setting num-cpu-cores may not be set by clients")


# --- context factories ----------------------------------------------------------------------------


async def test_an_unknown_context_factory_is_a_400_naming_the_supported_ones_before_any_launch(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        await api.upload("examples")
        status, body, _ = await api.call("POST", "/contexts/odd?context-factory=com.example.MyFactory")
        assert status == 400
        assert body["status"] == "ERROR"
        assert body["result"].startswith(
            "Unknown context-factory com.example.MyFactory; supported factories: "
        )
        assert all(factory in body["result"] for factory in CONTEXT_FACTORIES)
        assert (await api.call("GET", "/contexts/odd"))[0] == 404
        # An ad-hoc job's context settings likewise: refused before anything starts.
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&sync=true",
            data=json.dumps({"spark.context-settings": {"context-factory": "com.example.MyFactory"}}),
        )
        assert status == 400
        assert body["result"].startswith("Unknown context-factory com.example.MyFactory")
        assert not processes_mentioning(str(tmp_path))
        _, jobs, _ = await api.call("GET", "/jobs")
        assert jobs == []


# --- python.paths and python.executable -----------------------------------------------------------


def python_wrapper(folder: Path, marker: Path) -> Path:
    """An interpreter that notes each run (its arguments) in ``marker``, then is this Python."""
    wrapper = folder / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def helper_folder(folder: Path, where: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "probe_helper.py").write_text(f"WHERE = {where!r}\n")
    return folder


def probe_package(folder: Path) -> Path:
    package = folder / "paths_probe.egg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("paths_probe/__init__.py", PROBE_PACKAGE)
    return package


async def run_probe(api: Api, context: str) -> tuple[int, Any]:
    status, body, _ = await api.call(
        "POST", f"/jobs?appName=probe&classPath=paths_probe:on_driver&context={context}&sync=true"
    )
    return status, body


async def test_clients_may_not_set_python_executable_or_paths_by_default(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        for setting in ("python.executable=/bin/sh", "python.paths=/tmp"):
            status, body, _ = await api.call("POST", f"/contexts/py?{setting}")
            key = setting.split("=")[0]
            assert (status, body) == (
                403,
                {"status": "ERROR", "result": f"Context setting {key} may not be set by clients"},
            )
        assert (await api.call("GET", "/contexts/py"))[0] == 404


async def test_python_settings_from_the_server_and_from_a_request_run_the_driver(tmp_path: Path) -> None:
    server_marker, request_marker = tmp_path / "server-python.log", tmp_path / "request-python.log"
    overrides: Mapping[str, object] = fake_spark(
        "light",
        **{
            "spark.context-settings.python.executable": str(python_wrapper(tmp_path, server_marker)),
            "spark.context-settings.python.paths": [str(helper_folder(tmp_path / "server-lib", "server"))],
            "spark.jobserver.client-settings.allowed": ["python.*"],  # this operator allows them
        },
    )
    request_lib = helper_folder(tmp_path / "request-lib", "request")
    request_python = python_wrapper(tmp_path / "request-lib", request_marker)
    async with running_server(tmp_path / "work", overrides) as api:
        await api.upload("probe", probe_package(tmp_path), "application/python-archive")
        assert (await api.call("POST", "/contexts/from-server"))[0] == 200
        status, body = await run_probe(api, "from-server")
        assert (status, body["result"]) == (200, {"helper": "server"})
        assert "driver/__main__.py" in server_marker.read_text()

        query = f"python.executable={request_python}&python.paths={request_lib}"
        assert (await api.call("POST", f"/contexts/from-request?{query}"))[0] == 200
        status, body = await run_probe(api, "from-request")
        assert (status, body["result"]) == (200, {"helper": "request"})
        assert "driver/__main__.py" in request_marker.read_text()

        # Without python.paths the job's import fails: it succeeded only because of them.
        assert (await api.call("POST", "/contexts/without?python.paths="))[0] == 200
        status, body = await run_probe(api, "without")
        assert (status, body["status"]) == (200, "ERROR")
        assert "probe_helper" in body["result"]["message"]


# --- the start's deadlines ------------------------------------------------------------------------


async def test_a_driver_that_does_not_connect_back_ends_at_its_forked_jvm_init_timeout(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, fake_spark("hang")) as api:  # server default: 30 s
        started = time.monotonic()
        status, body, _ = await api.call("POST", "/contexts/late?forked-jvm-init-timeout=1s")
        assert time.monotonic() - started < 15
        assert (status, body["status"]) == (500, "CONTEXT INIT ERROR")
        assert body["result"]["message"] == "Context failed to connect back within initialization time"
        _, info, _ = await api.call("GET", "/contexts/late")
        assert info["state"] == "ERROR"
        await wait_until(lambda: no_process_left(info["id"]), timeout_s=10, what="spark-submit killed")


async def test_spark_that_does_not_start_ends_the_context_at_its_context_init_timeout(tmp_path: Path) -> None:
    overrides = fake_spark("slow", **{"spark.context-settings.context-init-timeout": "1s"})
    async with running_server(tmp_path, overrides) as api:
        for name, query, seconds in (("by-default", "", 1), ("by-request", "?context-init-timeout=2s", 2)):
            started = time.monotonic()
            status, body, _ = await api.call("POST", f"/contexts/{name}{query}")
            assert time.monotonic() - started < 15  # not the 30 s of forked-jvm-init-timeout
            assert (status, body["status"]) == (500, "CONTEXT INIT ERROR")
            message = f"Context failed to initialize within context-init-timeout ({seconds} s)"
            assert body["result"]["message"] == message
            _, info, _ = await api.call("GET", f"/contexts/{name}")
            assert info["state"] == "ERROR"
            gone = functools.partial(no_process_left, info["id"])
            await wait_until(gone, timeout_s=10, what="slow driver killed")


async def test_context_creation_timeout_bounds_the_whole_start_whatever_the_contexts_deadlines(
    tmp_path: Path,
) -> None:
    overrides = fake_spark("slow", **{"spark.jobserver.context-creation-timeout": "1s"})
    async with running_server(tmp_path, overrides) as api:
        status, body, _ = await api.call("POST", "/contexts/capped?context-init-timeout=10m")
        assert (status, body["status"]) == (500, "CONTEXT INIT ERROR")
        assert body["result"]["message"] == "Context did not start within context-creation-timeout (1 s)"
        _, info, _ = await api.call("GET", "/contexts/capped")
        await wait_until(lambda: no_process_left(info["id"]), timeout_s=10, what="slow driver killed")


async def test_a_deadline_that_is_not_a_duration_is_a_400(tmp_path: Path) -> None:
    async with running_server(tmp_path, fake_spark("light")) as api:
        status, body, _ = await api.call("POST", "/contexts/x?context-init-timeout=soon")
        assert (status, body["status"]) == (400, "ERROR")
        assert body["result"].startswith("context-init-timeout: 'soon' is not a duration")


# --- context-per-jvm --------------------------------------------------------------------------------


def test_context_per_jvm_false_stops_the_server_at_start_up_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "server.conf"
    config.write_text(
        f'spark.jobserver.context-per-jvm = false\nspark.jobserver.work-dir = "{tmp_path / "work"}"\n'
    )
    jobserver = Path(sys.executable).parent / "jobserver"
    finished = subprocess.run(
        [str(jobserver), str(config)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines()[-1] == (
        "jobserver: spark.jobserver.context-per-jvm = false is not supported: this server always runs "
        "one driver process per context (context-per-jvm = true); remove the setting or set it to true"
    )
    started = subprocess.run(
        [str(REPO / "bin" / "server_start.sh"), str(config)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, "JOBSERVER_START_TIMEOUT_S": "60"},
    )
    assert started.returncode == 1
    assert "context-per-jvm = false is not supported" in started.stderr
    assert not (tmp_path / "jobserver.pid").exists()
