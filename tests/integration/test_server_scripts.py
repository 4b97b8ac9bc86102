"""bin/server_start.sh and bin/server_stop.sh run the real `jobserver` command in the background."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import aiohttp

from tests.support import EXAMPLES_WHEEL, FAKE_SPARK_HOMES, REPO, processes_mentioning, wait_until


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _script(name: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "JOBSERVER_STOP_TIMEOUT": "60"}
    return subprocess.run(
        [str(REPO / "bin" / name), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=90,
    )


def _light_config(tmp_path: Path) -> tuple[int, Path]:
    """A config on a free port whose drivers are stand-ins (no JVM)."""
    port = _free_port()
    config = tmp_path / "server.conf"
    config.write_text(
        f"spark.jobserver.port = {port}\n"
        f'spark.jobserver.work-dir = "{tmp_path / "work"}"\n'
        f'spark.home = "{FAKE_SPARK_HOMES / "light"}"\n'
    )
    return port, config


async def test_started_server_serves_and_stop_leaves_no_process(tmp_path: Path) -> None:
    port, config = _light_config(tmp_path)
    started = _script("server_start.sh", str(config), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            await wait_until(lambda: _healthy(session), timeout_s=30, what="server answering /healthz")
            headers = {"Content-Type": "application/python-wheel"}
            async with session.post(
                "/binaries/examples", data=EXAMPLES_WHEEL.read_bytes(), headers=headers
            ) as r:
                assert r.status == 201
            async with session.post("/contexts/scripted") as response:
                assert response.status == 200, await response.text()
            assert processes_mentioning(str(tmp_path / "work")), "the context's driver should be running"
    finally:
        stopped = await asyncio.to_thread(_script, "server_stop.sh", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "job server stopped" in stopped.stdout
    assert not (tmp_path / "jobserver.pid").exists()
    assert not processes_mentioning(str(tmp_path / "work"))


def test_start_fails_loudly_on_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "broken.conf"
    config.write_text("spark.jobserver { port = \n")
    started = _script("server_start.sh", str(config), cwd=tmp_path)
    assert started.returncode != 0
    assert "cannot parse configuration" in started.stderr
    assert not (tmp_path / "jobserver.pid").exists()


def test_stop_without_a_running_server_says_so(tmp_path: Path) -> None:
    stopped = _script("server_stop.sh", cwd=tmp_path)
    assert stopped.returncode == 1
    assert "no pid file" in stopped.stderr


async def test_stop_keeping_contexts_then_start_again_reattaches_them(tmp_path: Path) -> None:
    port, config = _light_config(tmp_path)
    assert _script("server_start.sh", str(config), cwd=tmp_path).returncode == 0
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            await wait_until(lambda: _healthy(session), timeout_s=30, what="server answering /healthz")
            async with session.post("/contexts/upgraded") as response:
                assert response.status == 200, await response.text()
            drivers = processes_mentioning(str(tmp_path / "work"))

            kept = await asyncio.to_thread(_script, "server_stop.sh", "--keep-contexts", cwd=tmp_path)
            assert kept.returncode == 0, kept.stderr
            assert "job server stopped" in kept.stdout
            assert processes_mentioning(str(tmp_path / "work")) == drivers, "drivers left running"

            assert _script("server_start.sh", str(config), cwd=tmp_path).returncode == 0
            await wait_until(lambda: _healthy(session), timeout_s=30, what="server answering again")
            async with session.get("/contexts/upgraded") as response:
                assert (await response.json())["state"] == "RUNNING"
    finally:
        stopped = await asyncio.to_thread(_script, "server_stop.sh", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert not processes_mentioning(str(tmp_path / "work")), "a plain stop stops the re-attached driver"


def test_stop_refuses_an_unknown_option(tmp_path: Path) -> None:
    stopped = _script("server_stop.sh", "--keep", cwd=tmp_path)
    assert stopped.returncode == 2
    assert "usage" in stopped.stderr


async def _healthy(session: aiohttp.ClientSession) -> bool:
    try:
        async with session.get("/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False
