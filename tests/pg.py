"""A throw-away PostgreSQL server for tests: initdb into a temporary folder, pg_ctl start on a free
port of 127.0.0.1, one database per caller, pg_ctl stop -m immediate at the end. Outage tests
``shut_down`` a server of their own and ``start`` it again (same data folder, same port).

initdb refuses to run as root, so when the tests run as root every PostgreSQL command runs as an
unprivileged OS user (``postgres`` when it exists, else ``nobody``) that owns the temporary folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

DATABASE_USER = "jobserver"
_START_ATTEMPTS = 3
# Durability is worthless for a test server; these make it start and write much faster.
_SERVER_SETTINGS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


def find_postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        folder = Path(initdb).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name), reverse=True
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _unprivileged_user() -> str | None:
    """The OS user to run PostgreSQL as; None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and there is neither a 'postgres' nor a 'nobody' user")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    bin_dir: Path
    base_dir: Path
    run_as: str | None
    port: int = 0

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DATABASE_USER}@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *arguments]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        # cwd: the unprivileged user may not be allowed into ours.
        return subprocess.run(command, cwd=self.base_dir, capture_output=True, text=True, check=False)

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a random name unless given) and return its URL."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def start(self) -> None:
        """pg_ctl start on ``port`` (again, after ``shut_down``); waits until it accepts connections."""
        started = self._pg_ctl_start()
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}\n{_log_tail(self)}")

    def shut_down(self, mode: str = "fast") -> None:
        """pg_ctl stop keeping the data folder; ``fast`` disconnects the clients as an administrator
        stopping the server would."""
        stopped = self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w")
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed:\n{stopped.stdout}\n{stopped.stderr}")

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base_dir} {_SERVER_SETTINGS}"
        return self.run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
            "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        try:
            self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _log_tail(server: PostgresServer) -> str:
    try:
        return server.log_file.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def start_postgres_server(bin_dir: Path) -> PostgresServer:
    """initdb + pg_ctl start; the caller must call ``stop()``."""
    run_as = _unprivileged_user()
    # Not under pytest's tmp_path: its parents are private to root and the server user needs access.
    base_dir = Path(tempfile.mkdtemp(prefix="jobserver-pg-"))
    if run_as is not None:
        account = pwd.getpwnam(run_as)
        os.chown(base_dir, account.pw_uid, account.pw_gid)
    server = PostgresServer(bin_dir, base_dir, run_as)
    try:
        initdb = server.run(
            "initdb", "-D", str(server.data_dir), "-U", DATABASE_USER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        for _ in range(_START_ATTEMPTS):
            # The port may be taken between probing and binding; then try another.
            server = PostgresServer(bin_dir, base_dir, run_as, _free_port())
            started = server._pg_ctl_start()
            if started.returncode == 0:
                return server
        raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}\n{_log_tail(server)}")
    except BaseException:
        server.stop()
        raise
