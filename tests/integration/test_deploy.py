"""bin/server_deploy.sh over a real sshd on 127.0.0.1: an install, an upgrade that keeps a running
context (its stand-in driver rejoins the new server), and an upgrade whose server cannot start,
rolled back with the deploy stopped before the next host."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment import BASE_PYTHON, SSHD, SshServer, healthy, light_config, run, running_sshd
from tests.support import EXAMPLES_WHEEL, REPO, free_port, processes_mentioning, wait_until

pytestmark = pytest.mark.skipif(
    not SSHD.exists() and not os.environ.get("CI"),
    reason=f"{SSHD} not found: the deploy tests need openssh-server (.ci/run installs it)",
)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def call(port: int, method: str, path: str, body: bytes | None = None, media_type: str = "") -> object:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if media_type:
        request.add_header("Content-Type", media_type)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read() or b"null")


class Fleet:
    """One host (this one, through sshd) and the deploy environment file of the tests."""

    def __init__(self, folder: Path, sshd: SshServer, package: Path) -> None:
        self.install_dir = folder / "jobserver"
        self.port = free_port()
        self.config = light_config(folder / "server.conf", self.port, folder / "work")
        self.work_dir = folder / "work"
        self.environment = folder / "test.sh"
        self.environment.write_text(
            f"DEPLOY_HOSTS=127.0.0.1\nINSTALL_DIR={self.install_dir}\nSSH_PORT={sshd.port}\n"
            f'SSH_OPTS="{sshd.ssh_options}"\nCONFIG={self.config}\nPYTHON={BASE_PYTHON}\n'
            f"PACKAGE={package}\nHEALTH_TIMEOUT_S=30\n"
        )

    async def deploy(self, **overrides: str) -> tuple[int, str]:
        script = [str(REPO / "bin" / "server_deploy.sh"), str(self.environment)]
        deployed = await asyncio.to_thread(run, script, overrides)
        return deployed.returncode, deployed.stdout

    def current_release(self) -> Path:
        return (self.install_dir / "current").resolve()

    async def start_context(self, name: str) -> list[int]:
        """A context on the deployed server, and its driver's pids."""
        upload = EXAMPLES_WHEEL.read_bytes()
        media_type = "application/python-wheel"
        await asyncio.to_thread(call, self.port, "POST", "/binaries/examples", upload, media_type)
        answer = await asyncio.to_thread(call, self.port, "POST", f"/contexts/{name}")
        assert answer == {"status": "SUCCESS", "result": "Context initialized"}, answer
        drivers = processes_mentioning(str(self.work_dir))
        assert drivers, "the context's driver should be running"
        return drivers

    async def wait_context_running(self, name: str) -> None:
        async def rejoined() -> bool:
            if not healthy(self.port):
                return False
            context = await asyncio.to_thread(call, self.port, "GET", f"/contexts/{name}")
            return bool(context["state"] == "RUNNING")  # type: ignore[index]

        await wait_until(rejoined, timeout_s=30, what=f"context {name} RUNNING on the new server")

    async def stop(self) -> None:
        """A plain stop of whatever release serves, and no process of the test left."""
        server = self.install_dir / "current" / "bin" / "server.sh"
        stopped = await asyncio.to_thread(run, [str(server), "stop"])
        assert stopped.returncode in (0, 1), stopped.stdout

        async def all_gone() -> bool:
            return not processes_mentioning(str(self.install_dir)) and not processes_mentioning(
                str(self.work_dir)
            )

        await wait_until(all_gone, timeout_s=30, what="no server nor driver of the test left")


async def test_deploy_installs_then_upgrades_keeping_a_running_context(
    sshd: SshServer, server_package: Path, tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path, sshd, server_package)
    try:
        status, output = await fleet.deploy()
        assert status == 0, output
        first = fleet.current_release()
        assert f"127.0.0.1: installed {first.name}: serving" in output
        assert healthy(fleet.port)
        drivers = await fleet.start_context("kept")

        status, output = await fleet.deploy()
        assert status == 0, output
        second = fleet.current_release()
        assert second != first
        assert f"dependencies unchanged: linked {first.name}'s" in output
        assert "stopping the running server (keeping its contexts)" in output
        assert f"127.0.0.1: installed {second.name}: serving" in output
        assert processes_mentioning(str(fleet.work_dir)) == drivers, "the same driver, never restarted"
        await fleet.wait_context_running("kept")
        contexts = await asyncio.to_thread(call, fleet.port, "GET", "/contexts")
        assert "kept" in contexts  # type: ignore[operator]
        job = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=kept&sync=true"
        answer = await asyncio.to_thread(
            call, fleet.port, "POST", job, b'{"input": "upgraded"}', "application/json"
        )
        assert answer["result"] == "upgraded"  # type: ignore[index]
        assert sorted(path.name for path in (fleet.install_dir / "releases").iterdir()) == sorted(
            [first.name, second.name]
        )
    finally:
        await fleet.stop()


async def test_an_upgrade_that_cannot_start_is_rolled_back_and_stops_the_deploy(
    sshd: SshServer, server_package: Path, tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path, sshd, server_package)
    broken = tmp_path / "broken" / "server.conf"
    broken.parent.mkdir()
    broken.write_text("spark.jobserver { port = \n")
    try:
        status, output = await fleet.deploy()
        assert status == 0, output
        working = fleet.current_release()
        drivers = await fleet.start_context("survivor")

        status, output = await fleet.deploy(DEPLOY_HOSTS="127.0.0.1 127.0.0.2", CONFIG=str(broken))
        assert status == 1, output
        assert "cannot parse configuration" in output
        assert "failed: the new server did not start" in output
        assert f"127.0.0.1: FAILED, rolled back to {working.name}, which serves again" in output
        assert "127.0.0.2: skipped (stopped after 127.0.0.1 failed)" in output
        assert fleet.current_release() == working
        assert [path.name for path in (fleet.install_dir / "releases").iterdir()] == [working.name]
        assert healthy(fleet.port)
        assert processes_mentioning(str(fleet.work_dir)) == drivers
        await fleet.wait_context_running("survivor")
    finally:
        await fleet.stop()
