"""What the package and deploy tests share: the package of bin/server_package.sh, built once, a
server config whose drivers are stand-ins, and a real sshd on a free port with throwaway keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import FAKE_SPARK_HOMES, REPO, free_port, wait_for

SSHD = Path("/usr/sbin/sshd")
# The interpreter the test environment is built on: the one the package's wheels are for.
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def build_package(dist_dir: Path) -> Path:
    """``bin/server_package.sh`` into ``dist_dir``; the tar it made."""
    built = subprocess.run(
        [str(REPO / "bin" / "server_package.sh")],
        env={**os.environ, "DIST_DIR": str(dist_dir), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (package,) = dist_dir.glob("spark-jobserver-python-*.tar")
    return package


def unpack(package: Path, folder: Path) -> Path:
    """The package's top folder, unpacked into ``folder``."""
    with tarfile.open(package) as archive:
        archive.extractall(folder, filter="tar")
    (top,) = folder.iterdir()
    return top


def light_config(path: Path, port: int, work_dir: Path | None = None) -> Path:
    """A server config on ``port`` whose drivers are stand-ins (no JVM); with no ``work_dir``
    the default, relative one (under the server's working directory)."""
    lines = [
        f"spark.jobserver.port = {port}",
        "spark.jobserver.bind-address = 127.0.0.1",
        f'spark.home = "{FAKE_SPARK_HOMES / "light"}"',
    ]
    if work_dir is not None:
        lines.append(f'spark.jobserver.work-dir = "{work_dir}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def run(
    command: list[str], environment: Mapping[str, str] | None = None, *, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """A script run to its end with ``environment`` added to ours, its output kept (stderr folded
    into stdout, in order)."""
    return subprocess.run(
        command,
        env={**os.environ, **(environment or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )


@dataclass(frozen=True, slots=True)
class SshServer:
    port: int
    identity: Path

    @property
    def ssh_options(self) -> str:
        return (
            f"-i {self.identity} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            " -o LogLevel=ERROR"
        )


@contextmanager
def running_sshd(folder: Path) -> Iterator[SshServer]:
    """A real sshd on 127.0.0.1 and a free port that lets in the holder of a new key (we are
    root: prohibit-password lets a key in), stopped afterwards."""
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)],
            check=True,
            capture_output=True,
        )
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - open for sshd's lifetime
    sshd = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log
    )
    server = SshServer(port=port, identity=folder / "client_key")
    try:
        probe = ["ssh", "-p", str(port), "-o", "BatchMode=yes", *server.ssh_options.split(), "127.0.0.1"]

        def lets_in() -> bool:
            assert sshd.poll() is None, (folder / "sshd.log").read_text()
            return subprocess.run([*probe, "true"], capture_output=True, timeout=30).returncode == 0

        wait_for(lets_in, timeout_s=30, interval_s=0.1, what="sshd to let the test's key in")
        yield server
    finally:
        sshd.terminate()
        sshd.wait(30)
        log.close()
