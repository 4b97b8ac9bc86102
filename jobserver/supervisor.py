"""Owns every driver process the server starts: launch, watch, and stop without leaks.

Each driver runs in its own session (process group), so spark-submit, the JVM it execs and the
Python driver it forks are signalled together. Stopping escalates: the caller's polite stop
message first, then SIGTERM to the group, then SIGKILL to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from jobserver.launcher import DriverCommand

log = structlog.get_logger(__name__)

ExitCallback = Callable[[str, int], Awaitable[None]]


class DriverProcess:
    def __init__(self, context_id: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.context_id = context_id
        self.log_path = log_path
        self._process = process
        self.exited = asyncio.Event()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        code = await self._process.wait()
        # The group may outlive its leader (the Python driver is a child of the JVM): sweep it.
        self.signal_group(signal.SIGKILL)
        self.exited.set()
        return code

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    async def wait_exited(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.exited.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def terminate(self, grace_s: float) -> None:
        """SIGTERM to the group, SIGKILL after ``grace_s``; returns once the leader is reaped."""
        if self.exited.is_set():
            return
        self.signal_group(signal.SIGTERM)
        if not await self.wait_exited(grace_s):
            log.warning("driver_killed", context_id=self.context_id, pid=self.pid, grace_s=grace_s)
            self.signal_group(signal.SIGKILL)
            await self.exited.wait()


class Supervisor:
    """Starts driver processes and reports each exit exactly once through ``on_exit``."""

    def __init__(self, on_exit: ExitCallback) -> None:
        self._on_exit = on_exit
        self._processes: dict[str, DriverProcess] = {}
        self._working_dirs: dict[str, Path] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def get(self, context_id: str) -> DriverProcess | None:
        return self._processes.get(context_id)

    async def launch(
        self, context_id: str, command: DriverCommand, log_path: Path, working_dir: Path
    ) -> DriverProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        working_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *command.argv,
                cwd=working_dir,
                env={**os.environ, **command.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        driver = DriverProcess(context_id, process, log_path)
        self._processes[context_id] = driver
        self._working_dirs[context_id] = working_dir
        watcher = asyncio.create_task(self._watch(driver), name=f"watch-driver-{context_id}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        log.info("driver_launched", context_id=context_id, pid=process.pid, log=str(log_path))
        return driver

    async def _watch(self, driver: DriverProcess) -> None:
        code = await driver.wait()
        self._processes.pop(driver.context_id, None)
        # The driver's own folder (package copies, a Hive metastore): nothing outlives the context.
        await asyncio.to_thread(shutil.rmtree, self._working_dirs.pop(driver.context_id), True)
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
            await asyncio.gather(*self._watchers, return_exceptions=True)
