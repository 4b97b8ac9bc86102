"""What the server keeps to itself: the store's credentials never reach a driver or a job, and the
files it writes are its user's alone."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from tests.support import FAKE_SPARK_HOMES, running_server

# A job that answers with what its config says of the server's own settings.
SPY = """
def main(spark, config):
    return {
        "store": config.get("spark.jobserver.store", "absent"),
        "secret": config.get("spark.jobserver.my-password", "absent"),
        "port": config.get("spark.jobserver.port"),
    }
"""


async def test_jobs_never_see_the_stores_settings_and_files_are_private(tmp_path: Path) -> None:
    package = tmp_path / "spy.egg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("spy.py", SPY)
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.my-password": "hunter2",
        "spark.jobserver.store.url": f"sqlite:///{tmp_path / 'server' / 'metadata.db'}",
    }
    work_dir = tmp_path / "server"
    async with running_server(work_dir, overrides) as api:
        await api.upload("spy", package, "application/python-archive")
        assert (await api.call("POST", "/contexts/watched"))[0] == 200
        _, context, _ = await api.call("GET", "/contexts/watched")
        status, body, _ = await api.call(
            "POST", "/jobs?appName=spy&classPath=spy:main&context=watched&sync=true"
        )
        assert (status, body["result"]) == (200, {"store": "absent", "secret": "absent", "port": 8090})

        private = [
            work_dir,
            work_dir / "metadata.db",
            work_dir / "metadata.db-wal",
            work_dir / "server.key",
            work_dir / "logs",
            work_dir / "logs" / f"{context['id']}.log",
            work_dir / "binaries",
            work_dir / "data",
        ]
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in private}
        assert {name: mode & 0o077 for name, mode in modes.items()} == dict.fromkeys(modes, 0), modes
        assert not list(work_dir.glob(".server.key.*"))  # no temporary key file left behind
