"""Owns every driver process the server starts: launch, watch, and stop without leaks.

Each driver runs in its own session (process group), so spark-submit, the JVM it execs and the
Python driver it forks are signalled together. Stopping escalates: the caller's polite stop
message first, then SIGTERM to the group, then SIGKILL to the group.

A driver launched by an earlier server process (which crashed, or stopped with --keep-contexts)
is adopted when it rejoins: the watcher then watches the driver's pid (a pidfd, so no polling)
and signals its process group as for its own children. Drivers on other hosts (cluster deploy
mode) cannot be signalled; they are ended by the context manager through the bus.

Children are plain ``subprocess.Popen`` objects rather than asyncio transports, because asyncio
kills the children of a transport it closes, and a server stopping with --keep-contexts must
leave its drivers running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from jobserver.common.tasks import BackgroundTasks
from jobserver.drivers.launcher import DriverCommand

log = structlog.get_logger(__name__)

ExitCallback = Callable[[str, int | None], Awaitable[None]]
POLL_INTERVAL_S = 0.5  # only where pidfds are unavailable


class DriverProcess:
    """A driver's process group, launched by this server or adopted from an earlier one."""

    def __init__(
        self,
        context_id: str,
        pid: int,
        log_path: Path,
        *,
        pgid: int | None = None,
        popen: subprocess.Popen[bytes] | None = None,
        local: bool = True,
    ) -> None:
        self.context_id = context_id
        self.pid = pid
        self.pgid = pgid if pgid is not None else pid
        self.log_path = log_path
        self.local = local  # False: the driver runs on another host and only the bus reaches it
        self.adopted = popen is None
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self._popen = popen
        self._gone = asyncio.Event()  # a remote driver is known to be gone

    async def wait(self) -> int | None:
        if not self.local:
            await self._gone.wait()
        else:
            await _pid_exited(self.pid, self._popen)
            self.returncode = self._popen.wait() if self._popen is not None else None
        # The group may outlive its leader (the Python driver is a child of the JVM): sweep it.
        self.signal_group(signal.SIGKILL)
        self.exited.set()
        return self.returncode

    def mark_gone(self) -> None:
        """A remote driver said goodbye or went silent: stop watching for it."""
        self._gone.set()

    def signal_group(self, signum: int) -> None:
        if not self.local:
            if signum == signal.SIGKILL:
                self.mark_gone()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    async def wait_exited(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.exited.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def terminate(self, grace_s: float) -> None:
        """SIGTERM to the group, SIGKILL after ``grace_s``; returns once the leader is gone."""
        if self.exited.is_set():
            return
        self.signal_group(signal.SIGTERM)
        if not await self.wait_exited(grace_s):
            log.warning("driver_killed", context_id=self.context_id, pid=self.pid, grace_s=grace_s)
            self.signal_group(signal.SIGKILL)
            await self.exited.wait()


async def _pid_exited(pid: int, popen: subprocess.Popen[bytes] | None) -> None:
    """Returns when ``pid`` has exited (for a child: without reaping it)."""
    loop = asyncio.get_running_loop()
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfds here: poll
        while popen.poll() is None if popen is not None else _alive(pid):
            await asyncio.sleep(POLL_INTERVAL_S)
        return
    readable: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(descriptor, on_readable)
    try:
        await readable
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessWatcher:
    """Starts (or adopts) driver processes and reports each exit exactly once through ``on_exit``."""

    def __init__(self, on_exit: ExitCallback, tasks: BackgroundTasks) -> None:
        self._on_exit = on_exit
        self._tasks = tasks
        self._processes: dict[str, DriverProcess] = {}
        self._working_dirs: dict[str, Path] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}

    async def launch(
        self, context_id: str, command: DriverCommand, log_path: Path, working_dir: Path
    ) -> DriverProcess:
        log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        working_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The driver's output (Spark's, the job's) is for the server's user alone.
        descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab") as log_file:
            popen = subprocess.Popen(
                command.argv,
                cwd=working_dir,
                env={**os.environ, **command.env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        driver = DriverProcess(context_id, popen.pid, log_path, popen=popen)
        self._watch(driver, working_dir)
        log.info("driver_launched", context_id=context_id, pid=popen.pid, log=str(log_path))
        return driver

    def adopt(
        self, context_id: str, *, pid: int, pgid: int, local: bool, log_path: Path, working_dir: Path
    ) -> DriverProcess:
        """Watch a driver an earlier server process launched, as if this one had."""
        driver = DriverProcess(context_id, pid, log_path, pgid=pgid, local=local)
        self._watch(driver, working_dir)
        log.info("driver_adopted", context_id=context_id, pid=pid, pgid=pgid, local=local)
        return driver

    def _watch(self, driver: DriverProcess, working_dir: Path) -> None:
        self._processes[driver.context_id] = driver
        self._working_dirs[driver.context_id] = working_dir
        watcher = self._tasks.spawn(self._await_exit(driver), name=f"watch-driver-{driver.context_id}")
        self._watchers[driver.context_id] = watcher

        def forget(task: asyncio.Task[None]) -> None:
            if self._watchers.get(driver.context_id) is task:  # not a relaunch's newer watcher
                del self._watchers[driver.context_id]

        watcher.add_done_callback(forget)

    async def _await_exit(self, driver: DriverProcess) -> None:
        code = await driver.wait()
        self._processes.pop(driver.context_id, None)
        # The driver's own folder (package copies, a Hive metastore): nothing outlives the context.
        working_dir = self._working_dirs.pop(driver.context_id)
        await asyncio.to_thread(shutil.rmtree, working_dir, True)
        log.info("driver_exited", context_id=driver.context_id, pid=driver.pid, returncode=code)
        try:
            await self._on_exit(driver.context_id, code)
        except Exception:
            log.exception("driver_exit_handling_failed", context_id=driver.context_id)

    async def terminate_all(self, grace_s: float) -> None:
        drivers = list(self._processes.values())
        await asyncio.gather(*(driver.terminate(grace_s) for driver in drivers))
        # Let the watchers run their exit callbacks before the caller closes what they use.
        if self._watchers:
            await asyncio.gather(*self._watchers.values(), return_exceptions=True)

    def release(self, context_id: str) -> None:
        """Stop watching one driver and leave it running (another server adopted its context)."""
        watcher = self._watchers.pop(context_id, None)
        if watcher is not None:
            watcher.cancel()
        self._processes.pop(context_id, None)
        self._working_dirs.pop(context_id, None)

    async def detach(self) -> None:
        """Stop watching every driver and leave them running (stop with --keep-contexts)."""
        watchers = list(self._watchers.values())
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        self._processes.clear()
        self._working_dirs.clear()
