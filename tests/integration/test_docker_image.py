"""The Dockerfile builds the server's image from the package, and a container of it serves.
Where no Docker daemon answers (no docker command, or `docker info` fails) it is skipped."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment import healthy
from tests.support import REPO, free_port, wait_until


@pytest.fixture
def docker() -> Iterator[str]:
    """The docker command, where a daemon answers it."""
    command = shutil.which("docker")
    if command is None:
        pytest.skip("no docker command: the image is not built here")
    info = subprocess.run([command, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        reason = info.stderr.strip()[:200]
        pytest.skip(f"no Docker daemon answers `docker info`: the image is not built here ({reason})")
    yield command


async def test_the_image_built_from_the_package_serves(
    docker: str, server_package: Path, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    (context / "dist").mkdir(parents=True)
    try:
        os.link(server_package, context / "dist" / server_package.name)
    except OSError:
        shutil.copy(server_package, context / "dist")
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy(REPO / name, context)
    tag = f"spark-jobserver-python-test:{uuid.uuid4().hex[:12]}"
    build = [docker, "build", "-t", tag, "--build-arg", f"PACKAGE=dist/{server_package.name}", str(context)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    port = free_port()
    container = f"jobserver-test-{uuid.uuid4().hex[:12]}"
    try:
        run = [docker, "run", "-d", "--name", container, "-p", f"127.0.0.1:{port}:8090", tag]
        subprocess.run(run, check=True, capture_output=True, timeout=120)

        async def serving() -> bool:
            return await asyncio.to_thread(healthy, port)

        await wait_until(serving, timeout_s=120, what="the container's /healthz")
    finally:
        subprocess.run([docker, "rm", "-f", container], capture_output=True, timeout=120)
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)
