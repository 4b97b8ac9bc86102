"""The package of bin/server_package.sh installs anywhere: its install.sh makes a release from the
package's own wheels (no index) and starts the server from it (stand-in drivers, no JVM)."""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import tarfile
from pathlib import Path

from tests.deployment import BASE_PYTHON, healthy, light_config, run, unpack
from tests.support import free_port, processes_mentioning, wait_until


def test_the_package_holds_the_server_its_runtime_dependencies_and_the_scripts(server_package: Path) -> None:
    assert server_package.name == "spark-jobserver-python-0.1.0.tar"
    with tarfile.open(server_package) as archive:  # plain tar: the wheels are zip files already
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"install.sh", "VERSION", "bin/server.sh", "bin/server_common.sh", "bin/server_start.sh",
            "bin/server_stop.sh", "conf/defaults.conf", "conf/env.sh.template"} <= names  # fmt: skip
    assert "spark_jobserver_python-0.1.0-py3-none-any.whl" in names
    wheels = [name.split("/")[1] for name in names if name.startswith("wheelhouse/")]
    dependencies = {wheel.split("-")[0].lower() for wheel in wheels}
    assert {"aiohttp", "pyspark", "pyzmq", "msgpack", "pyhocon", "structlog", "psycopg"} <= dependencies
    assert not dependencies & {"pytest", "pytest_asyncio", "ruff", "mypy", "import_linter", "playwright"}
    assert not [name for name in names if "sjs_python_examples" in name], "example jobs are not the server's"


async def test_install_sh_installs_a_release_without_an_index_and_serves_from_it(
    server_package: Path, tmp_path: Path
) -> None:
    package = unpack(server_package, tmp_path / "unpacked")
    install_dir = tmp_path / "jobserver"
    port = free_port()
    config = light_config(tmp_path / "server.conf", port)  # the default work dir: INSTALL_DIR's
    # install.sh takes the package's wheels only, whatever the machine's pip settings say.
    command = [str(package / "install.sh"), "--config", str(config), str(install_dir)]
    pip_settings = {"PYTHON": str(BASE_PYTHON), "PIP_INDEX_URL": "http://127.0.0.1:9/unreachable"}
    installed = await asyncio.to_thread(run, command, pip_settings)
    server = install_dir / "current" / "bin" / "server.sh"
    try:
        assert installed.returncode == 0, installed.stdout
        assert "serving" in installed.stdout.splitlines()[-1]
        (release,) = (install_dir / "releases").iterdir()
        assert (install_dir / "current").resolve() == release
        assert release.name.startswith("0.1.0-")
        assert (release / "venv" / "bin" / "jobserver").is_file()
        assert (release / "jobserver.conf").read_text() == config.read_text()
        assert healthy(port)
        status = run([str(server), "status"])
        assert status.returncode == 0, status.stdout
        assert f"config: {release / 'jobserver.conf'}" in status.stdout
        assert "healthz answers" in status.stdout
        assert (install_dir / "jobserver-work").is_dir(), "a relative work dir is INSTALL_DIR's"
    finally:
        stopped = await asyncio.to_thread(run, [str(server), "stop"])
    assert stopped.returncode == 0, stopped.stdout

    async def all_gone() -> bool:
        return not processes_mentioning(str(install_dir))

    await wait_until(all_gone, timeout_s=30, what="no process of the install left")


async def test_install_sh_refuses_an_unknown_server_and_a_second_install_and_keeps_the_newest_releases(
    server_package: Path, tmp_path: Path
) -> None:
    package = unpack(server_package, tmp_path / "unpacked")
    install_dir = tmp_path / "jobserver"
    install_dir.mkdir()
    environment = {"PYTHON": str(BASE_PYTHON)}

    def install(*options: str) -> subprocess.CompletedProcess[str]:
        return run([str(package / "install.sh"), *options, "--no-start", str(install_dir)], environment)

    # A server of the earlier checkout layout runs from the folder: left alone, nothing installed.
    stranger = subprocess.Popen(["bash", "-c", "exec -a jobserver sleep 60"])
    try:
        (install_dir / "jobserver.pid").write_text(f"{stranger.pid}\n")
        refused = await asyncio.to_thread(install)
        assert refused.returncode == 1 and "not installed by install.sh" in refused.stdout, refused.stdout
        assert stranger.poll() is None, "never signalled"
    finally:
        stranger.kill()
        stranger.wait()
    (install_dir / "jobserver.pid").unlink()
    assert not any((install_dir / "releases").glob("*")), "nothing installed"

    # One install at a time: another holding the folder's lock makes this one give up at once.
    with open(install_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = await asyncio.to_thread(install)
    assert busy.returncode == 1 and "another install into" in busy.stdout, busy.stdout

    # The newest releases are kept (here 2), current is the last one.
    installed_releases = []
    for _ in range(3):
        installed = await asyncio.to_thread(install, "--keep-releases", "2")
        assert installed.returncode == 0, installed.stdout
        installed_releases.append((install_dir / "current").resolve())
    assert sorted((install_dir / "releases").iterdir()) == sorted(installed_releases[1:])
    assert (install_dir / "current").resolve() == installed_releases[-1]
    assert all((release / "venv" / "bin" / "jobserver").is_file() for release in installed_releases[1:])
