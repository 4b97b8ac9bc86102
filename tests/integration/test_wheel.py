"""The built wheel alone gives a working server: ``pip install`` of it (into a folder of its own,
its dependencies taken from the test's environment) and ``python -m jobserver`` run a job, reading
conf/defaults.conf, the schema migrations, the console and the driver from the installed package,
not from this checkout (stand-in drivers, no JVM)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support import EXAMPLES_WHEEL, FAKE_SPARK_HOMES, REPO, free_port, processes_mentioning, wait_until


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built as `pip wheel .` builds it and installed into a folder."""
    folder = tmp_path_factory.mktemp("wheel")
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--quiet",
        str(REPO),
        "-w",
        str(folder / "dist"),
    ]
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    (wheel,) = (folder / "dist").glob("spark_jobserver_python-*.whl")
    target = folder / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--quiet",
        "--target",
        str(target),
        str(wheel),
    ]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    return target


def call(
    url: str, method: str = "GET", data: bytes | None = None, content_type: str = ""
) -> tuple[int, object]:
    request = urllib.request.Request(url, data=data, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read() or b"null")


async def test_the_installed_wheel_alone_runs_a_server_and_a_job(installed: Path, tmp_path: Path) -> None:
    for packaged in (
        "jobserver/resources/conf/defaults.conf",
        "jobserver/resources/sql/sqlite/0001_initial.sql",
    ):
        assert (installed / packaged).is_file() and not (installed / packaged).is_symlink(), packaged
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import jobserver, driver; print(jobserver.__file__); print(driver.__file__)"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert all(line.startswith(str(installed)) for line in where.stdout.splitlines()), where.stdout

    port = free_port()
    config = tmp_path / "server.conf"
    config.write_text(
        f'spark.home = "{FAKE_SPARK_HOMES / "light"}"\n'
        f"spark.jobserver.port = {port}\nspark.jobserver.bind-address = 127.0.0.1\n"
        f'spark.jobserver.work-dir = "{tmp_path / "work"}"\n'
    )
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen(
        [sys.executable, "-m", "jobserver", str(config)],
        cwd=tmp_path,
        env=environment,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        async def healthy() -> bool:
            try:
                return (await asyncio.to_thread(call, f"{base}/healthz"))[0] == 200
            except OSError:
                return False

        await wait_until(healthy, timeout_s=60, what="the installed server to answer")
        upload = EXAMPLES_WHEEL.read_bytes()
        assert (
            await asyncio.to_thread(
                call, f"{base}/binaries/examples", "POST", upload, "application/python-wheel"
            )
        )[0] == 201
        assert (await asyncio.to_thread(call, f"{base}/contexts/installed", "POST"))[0] == 200
        job = f"{base}/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=installed&sync=true"
        status, answer = await asyncio.to_thread(
            call, job, "POST", b'{"input": "from the wheel"}', "application/json"
        )
        assert (status, answer["result"]) == (200, "from the wheel")  # type: ignore[index]
        with urllib.request.urlopen(f"{base}/", timeout=10) as page:
            assert b"Spark Job Server" in page.read()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        log.close()
    assert not processes_mentioning(str(tmp_path / "work"))


def test_the_client_installs_alone_and_imports_nothing_of_the_server(tmp_path: Path) -> None:
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--quiet",
        str(REPO / "client"),
        "-w",
        str(tmp_path),
    ]
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("spark_jobserver_python_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {
            name.split("/", 1)[0]
            for name in archive.namelist()
            if not name.split("/", 1)[0].endswith(".dist-info")
        }
    assert tops == {"jobserver_client"}
    target = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--quiet",
        "--target",
        str(target),
        str(wheel),
    ]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    probe = (
        "import sys, jobserver_client, jobserver_client.aio, jobserver_client.cli\n"
        "assert jobserver_client.__file__.startswith(sys.argv[1]), jobserver_client.__file__\n"
        "assert not {'jobserver', 'driver', 'sparkjobserver'} & set(sys.modules)\n"
    )
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(target)}
    subprocess.run([sys.executable, "-c", probe, str(target)], cwd=tmp_path, env=environment, check=True)
    helped = subprocess.run(
        [sys.executable, "-m", "jobserver_client.cli", "--help"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "jobs" in helped.stdout
