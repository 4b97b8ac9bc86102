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


def _server(*arguments: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """bin/server.sh with ``arguments``, run in ``cwd`` (where its pid and log files go)."""
    return subprocess.run(
        [str(REPO / "bin" / "server.sh"), *arguments],
        cwd=cwd,
        env={**os.environ, "JOBSERVER_STOP_TIMEOUT": "60", **environment},
        capture_output=True,
        text=True,
        timeout=90,
    )


def _pid_file(folder: Path) -> tuple[int, str, str]:
    """The pid file's "PID START_TIME CONFIG"."""
    pid, start_time, config = (folder / "jobserver.pid").read_text().rstrip("\n").split(" ", 2)
    return int(pid), start_time, config


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


async def test_status_log_and_restart_as_an_operator_sees_them(tmp_path: Path) -> None:
    port, config = _light_config(tmp_path)
    not_running = _server("status", cwd=tmp_path)
    assert (not_running.returncode, not_running.stdout) == (3, "job server not running\n")
    assert _server("start", str(config), cwd=tmp_path).returncode == 0
    try:
        pid, start_time, recorded = _pid_file(tmp_path)
        assert (start_time, recorded) == (_start_time(pid), str(config))
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            await wait_until(lambda: _healthy(session), timeout_s=30, what="server answering /healthz")
        status = _server("status", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert f"job server running (pid {pid}), up " in status.stdout
        assert f"config: {config}\n" in status.stdout
        assert f"health: http://127.0.0.1:{port}/healthz answers" in status.stdout
        assert "Running on" in _server("log", cwd=tmp_path).stdout
        following = subprocess.Popen(
            [str(REPO / "bin" / "server.sh"), "log", "-f"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
        try:
            assert following.stdout is not None
            lines = iter(following.stdout.readline, "")
            assert any("Running on" in line for line in lines), "log -f shows the log so far"
        finally:
            following.terminate()
            following.wait(30)

        restarted = await asyncio.to_thread(_server, "restart", cwd=tmp_path)
        assert restarted.returncode == 0, restarted.stderr
        assert "job server stopped" in restarted.stdout and "job server started" in restarted.stdout
        new_pid, _, recorded = _pid_file(tmp_path)
        assert new_pid != pid and recorded == str(config)
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            await wait_until(lambda: _healthy(session), timeout_s=30, what="restarted server answering")
    finally:
        stopped = await asyncio.to_thread(_server, "stop", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert _server("status", cwd=tmp_path).returncode == 3
    assert not processes_mentioning(str(tmp_path / "work"))


async def test_restart_keeping_contexts_keeps_the_drivers_running(tmp_path: Path) -> None:
    port, config = _light_config(tmp_path)
    assert _server("start", str(config), cwd=tmp_path).returncode == 0
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            await wait_until(lambda: _healthy(session), timeout_s=30, what="server answering /healthz")
            async with session.post("/contexts/kept") as response:
                assert response.status == 200, await response.text()
            drivers = processes_mentioning(str(tmp_path / "work"))
            pid, _, _ = _pid_file(tmp_path)

            restarted = await asyncio.to_thread(_server, "restart", "--keep-contexts", cwd=tmp_path)
            assert restarted.returncode == 0, restarted.stderr
            assert _pid_file(tmp_path)[0] != pid
            assert processes_mentioning(str(tmp_path / "work")) == drivers, "the same drivers"

            async def rejoined() -> bool:
                if not await _healthy(session):
                    return False
                async with session.get("/contexts/kept") as response:
                    return bool((await response.json())["state"] == "RUNNING")

            await wait_until(rejoined, timeout_s=30, what="the context RUNNING on the new server")
    finally:
        stopped = await asyncio.to_thread(_server, "stop", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert not processes_mentioning(str(tmp_path / "work"))


async def test_a_pid_file_naming_another_process_is_stale_and_that_process_never_signalled(
    tmp_path: Path,
) -> None:
    _, config = _light_config(tmp_path)
    bystander = subprocess.Popen(["sleep", "600"])
    pid_file = tmp_path / "jobserver.pid"
    wrong_start = str(int(_start_time(bystander.pid)) - 1)
    try:
        pid_file.write_text(f"{bystander.pid} {wrong_start} {config}\n")
        status = _server("status", cwd=tmp_path)
        assert status.returncode == 3
        assert f"stale pid file {pid_file} (pid {bystander.pid} is not the job server" in status.stderr
        assert not pid_file.exists()

        pid_file.write_text(f"{bystander.pid}\n")  # an earlier release's file: a pid alone
        stopped = _server("stop", cwd=tmp_path)
        assert stopped.returncode == 0 and "stale pid file" in stopped.stderr
        assert not pid_file.exists()

        pid_file.write_text(f"{bystander.pid} {wrong_start} {config}\n")
        started = await asyncio.to_thread(_server, "start", str(config), cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        assert "stale pid file" in started.stderr
        pid, start_time, _ = _pid_file(tmp_path)
        assert pid != bystander.pid and start_time == _start_time(pid)
        assert (await asyncio.to_thread(_server, "stop", cwd=tmp_path)).returncode == 0
        assert bystander.poll() is None, "the bystander was never signalled"
    finally:
        bystander.kill()
        bystander.wait(30)
    assert not processes_mentioning(str(tmp_path / "work"))


async def test_an_environment_names_its_settings_and_config(tmp_path: Path) -> None:
    port, config = _light_config(tmp_path)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    config.rename(conf_dir / "staging.conf")
    (conf_dir / "staging.sh").write_text(
        f"JOBSERVER_PID_FILE={tmp_path}/run/staging.pid\nJOBSERVER_LOG_FILE={tmp_path}/logs/staging.log\n"
    )
    environment = {"JOBSERVER_CONF_DIR": str(conf_dir)}
    unknown = _server("-e", "nowhere", "status", cwd=tmp_path, **environment)
    assert unknown.returncode == 2 and "no environment 'nowhere'" in unknown.stderr
    started = await asyncio.to_thread(_server, "-e", "staging", "start", cwd=tmp_path, **environment)
    assert started.returncode == 0, started.stderr
    try:
        assert f"log: {tmp_path}/logs/staging.log" in started.stdout
        pid, _, recorded = (tmp_path / "run" / "staging.pid").read_text().rstrip("\n").split(" ", 2)
        assert recorded == str(conf_dir / "staging.conf")
        assert not (tmp_path / "jobserver.pid").exists()
        assert _server("status", cwd=tmp_path).returncode == 3, "another environment's server"
        status = _server("-e", "staging", "status", cwd=tmp_path, **environment)
        assert status.returncode == 0 and f"(pid {pid})" in status.stdout
        assert f"health: http://127.0.0.1:{port}/healthz answers" in status.stdout
    finally:
        stopped = await asyncio.to_thread(_server, "-e", "staging", "stop", cwd=tmp_path, **environment)
    assert stopped.returncode == 0, stopped.stderr
    assert not processes_mentioning(str(tmp_path / "work"))
