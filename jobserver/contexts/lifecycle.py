"""A context's life from launch to its last exit: every way a driver ends becomes an honest state.

FINISHED after a requested stop, KILLED when it died or went silent while running, ERROR when it
never came up (or did not rejoin a restarted server); a supervised context's driver that dies is
launched again instead (RESTARTING), until the relaunch policy gives up. Which it is follows from
the context's phase (``phases.final_state``); this module moves contexts through their phases and
stores what each step means.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import signal
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from driver.protocol import ContextReady, DriverSecrets, StopContext
from jobserver.common import metrics
from jobserver.common.config import Settings, merge
from jobserver.common.context_settings import start_deadlines
from jobserver.common.errors import ContextInitError, JobServerError, error_map
from jobserver.common.records import ContextRecord, utc_now
from jobserver.common.states import ContextState
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.events import ContextEnding, ContextEvents
from jobserver.contexts.live import LiveContext, LiveContexts, log_tail
from jobserver.contexts.phases import Phase, exit_message, final_state, job_error
from jobserver.contexts.relaunch import RelaunchPolicy, without_flag
from jobserver.contexts.start_deadlines import missed_deadline
from jobserver.drivers import tokens
from jobserver.drivers.bus import Bus, BusError
from jobserver.drivers.launcher import DriverLaunch, build_driver_command, context_binary_names, for_cluster
from jobserver.drivers.processes import DriverProcess, ProcessWatcher
from jobserver.drivers.python_archive import PythonArchives
from jobserver.storage import Store
from jobserver.uploads.binaries import context_jar_binaries, place_jar_files

log = structlog.get_logger(__name__)


class ContextLifecycle:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        registry: LiveContexts,
        events: ContextEvents,
        launch: DriverLaunch,
        tasks: BackgroundTasks,
    ) -> None:
        self._settings = settings
        self._store = store
        self._bus = bus
        self._registry = registry
        self._events = events
        self._launch = launch
        self._tasks = tasks
        self._key = tokens.load_key(settings.key_file)
        self._processes = ProcessWatcher(self.on_driver_exit, tasks)
        self._relaunch_policy = RelaunchPolicy.from_settings(settings)
        self._python_archives = PythonArchives(settings.driver_python_archive, settings.work_dir)

    @property
    def key(self) -> bytes:
        return self._key

    def set_bus_endpoint(self, endpoint: str) -> None:
        self._launch = dataclasses.replace(self._launch, bus_endpoint=endpoint)

    def trusts(self, context: LiveContext | None, token: str) -> bool:
        if context is None:
            return False
        if context.token:  # launched by this server process: exactly the token it issued
            return hmac.compare_digest(context.token, token)
        return tokens.verify(self._key, context.id, token)  # launched by an earlier one

    # --- launch --------------------------------------------------------------------------------------

    async def launch(
        self, name: str, config: Mapping[str, Any], *, adhoc: bool, user: str | None = None
    ) -> LiveContext:
        await context_jar_binaries(self._store, context_binary_names(config))  # 404 before any launch
        record = ContextRecord(
            id=str(uuid.uuid4()),
            name=name,
            config=merge(config, {"is-adhoc": adhoc, "context": {"name": name}}),
            state=ContextState.STARTED,
            start_time=utc_now(),
            is_adhoc=adhoc,
            owner=self._settings.server_id,
            user=user,
        )
        await self._store.insert_context(record)
        context = self._live_context(record, Phase.LAUNCHING)
        self._registry.add(context)
        try:
            await self._start_driver(context)
        except OSError as error:
            self._registry.remove(context)
            context.transition(Phase.ENDED)
            context.ended.set()
            message = f"cannot start spark-submit: {error}"
            await self._store.update_context(record.id, ContextState.ERROR, error=message)
            raise ContextInitError(message, details=error_map(message, type(error).__name__)) from error
        return context

    def _live_context(self, record: ContextRecord, phase: Phase) -> LiveContext:
        """With CURVE, the context's driver key is known from its id alone: also the key of a
        driver that an earlier server process launched."""
        public_key = b""
        if self._bus.curve_public_key is not None:
            public_key = tokens.curve_context_keys(self._key, record.id).public_raw
        return LiveContext(record=record, bus=self._bus, phase=phase, curve_public_key=public_key)

    async def _start_driver(self, context: LiveContext) -> None:
        """Launch (or, under supervise, launch again) the context's driver process."""
        cluster = self._settings.clusters.named(context.record.config.get("cluster"))
        launch = for_cluster(self._launch, cluster)
        # In cluster deploy mode, with its Python environment (an OSError when it cannot be built).
        launch = await self._python_archives.for_launch(launch, context.record.config)
        context.token = tokens.issue(self._key, context.id)
        secrets_file = tokens.write_secrets_file(self._working_dir(context), self._driver_secrets(context))
        command = build_driver_command(
            launch,
            context_id=context.id,
            context_name=context.name,
            context_config=without_flag(context.record.config),
            secrets_file=secrets_file,
            binary_jars=await self._binary_jars(context),
        )
        try:
            process = await self._processes.launch(
                context.id, command, self._log_path(context), self._working_dir(context)
            )
        except OSError:
            secrets_file.unlink(missing_ok=True)  # else the driver's exit takes its folder along
            raise
        context.process = process
        log.info("context_launched", context_id=context.id, context_name=context.name, pid=process.pid)
        self._tasks.spawn(
            self._enforce_start_timeout(context, context.ready, process), name=f"start-timeout-{context.id}"
        )

    async def _binary_jars(self, context: LiveContext) -> dict[str, Path]:
        """The uploaded jars the context names, newest versions (a relaunch takes the newest
        again), as files in its working folder."""
        try:
            binaries = await context_jar_binaries(self._store, context_binary_names(context.record.config))
        except JobServerError as error:  # deleted since the context was created
            raise FileNotFoundError(str(error)) from error
        return await place_jar_files(self._store, binaries, self._working_dir(context) / "jars")

    def _driver_secrets(self, context: LiveContext) -> DriverSecrets:
        server_public_key = self._bus.curve_public_key
        if server_public_key is None:
            return DriverSecrets(token=context.token)
        keys = tokens.curve_context_keys(self._key, context.id)
        return DriverSecrets(
            token=context.token,
            server_public_key=server_public_key.decode(),
            public_key=keys.public.decode(),
            secret_key=keys.secret.decode(),
        )

    def _log_path(self, context: LiveContext) -> Path:
        return self._settings.log_dir / f"{context.id}.log"

    def _working_dir(self, context: LiveContext) -> Path:
        return self._settings.work_dir / "drivers" / context.id

    async def _enforce_start_timeout(
        self, context: LiveContext, ready: asyncio.Future[ContextRecord], process: DriverProcess
    ) -> None:
        deadlines = start_deadlines(context.record.config)
        creation_s = self._settings.context_creation_timeout_s
        message = await missed_deadline(ready, context.connected, deadlines, creation_s)
        if message is None:  # up, or failed otherwise: a failed start is handled where it failed
            return
        if not ready.done() and context.process is process and self._registry.holds(context):
            await self.fail_start(context, message, error_map(message))

    async def fail_start(self, context: LiveContext, message: str, details: Mapping[str, str]) -> None:
        context.end_reason = message
        if context.restarts == 0:  # its first launch: ERROR now, and whoever waits learns why
            await self._store.update_context(context.id, ContextState.ERROR, error=message)
            context.fail_waiters(ContextInitError(message, details=dict(details)))
        # else a relaunch failed: the driver's exit decides whether supervise tries once more
        if context.process is not None:
            await context.process.terminate(grace_s=2.0)

    async def on_ready(self, context: LiveContext, ready: ContextReady) -> None:
        restarted = context.phase is Phase.RESTARTING
        record: ContextRecord | None = context.record
        if context.record.state is not ContextState.RUNNING:  # else a rejoined driver: nothing new
            record = await self._store.update_context(
                context.id,
                ContextState.RUNNING,
                application_id=ready.application_id,
                web_ui_url=ready.web_ui_url,
            )
        if record is None:  # stopped or failed meanwhile: the driver is on its way out
            return
        context.record = record
        if context.phase is not Phase.RUNNING:
            context.transition(Phase.RUNNING)
        log.info(
            "context_started",
            context_id=context.id,
            context_name=context.name,
            application_id=ready.application_id,
            restarts=context.restarts,
        )
        if not context.ready.done():
            context.ready.set_result(record)
        if restarted:
            await self._events.on_context_restarted(context)

    def adopt(self, context: LiveContext, *, pid: int, pgid: int, host: str, local_host: str) -> None:
        """Take over watching the process of a driver an earlier server process launched."""
        context.rejoined.set()
        if context.process is None:
            context.process = self._processes.adopt(
                context.id,
                pid=pid,
                pgid=pgid or pid,
                local=host == local_host,
                log_path=self._log_path(context),
                working_dir=self._working_dir(context),
            )

    # --- stop ----------------------------------------------------------------------------------------

    async def stop(self, context: LiveContext, *, force: bool = False) -> None:
        """Stop a context: politely (StopContext, then signals after ``context-deletion-timeout``),
        or with ``force`` at once. One without a driver process right now ends here."""
        if context.phase is Phase.ENDED:
            return
        if context.process is None:  # between two launches (supervise), or not rejoined yet
            if context.phase is not Phase.STOPPING:
                await self._begin_stop(context, force=True)
            await self.on_driver_exit(context.id, None)
            return
        if context.phase is not Phase.STOPPING:
            await self._begin_stop(context, force=force)
        elif force:
            context.process.signal_group(signal.SIGKILL)

    async def _begin_stop(self, context: LiveContext, *, force: bool) -> None:
        context.transition(Phase.STOPPING)
        record = await self._store.update_context(context.id, ContextState.STOPPING)
        if record is not None:
            context.record = record
        await self._events.on_context_ended(context, self._ending(context, Phase.STOPPING, None))
        context.fail_waiters(ContextInitError(f"context {context.name} was stopped while starting"))
        log.info("context_stopping", context_id=context.id, context_name=context.name, force=force)
        process = context.process
        if process is None:
            return
        if force:
            process.signal_group(signal.SIGKILL)
            return
        with contextlib.suppress(BusError):
            context.send(StopContext())
        self._tasks.spawn(self._escalate_stop(process), name=f"stop-{context.id}")

    async def _escalate_stop(self, process: DriverProcess) -> None:
        if not await process.wait_exited(self._settings.context_deletion_timeout_s):
            await process.terminate(grace_s=5.0)

    async def wait_ended(self, context: LiveContext, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(context.ended.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # --- the driver's end ----------------------------------------------------------------------------

    async def on_driver_exit(self, context_id: str, returncode: int | None) -> None:
        context = self._registry.get(context_id)
        if context is None:
            return
        self._registry.disconnect(context)
        process, context.process = context.process, None
        policy = self._relaunch_policy
        if context.phase is Phase.RUNNING and not context.stopping and context.end_reason is None:
            metrics.DRIVERS_LOST.labels("exited").inc()  # nobody asked it to go
        if context.phase in (Phase.RUNNING, Phase.RESTARTING) and policy.supervises(context.record.config):
            reason = context.end_reason or exit_message(returncode)
            if policy.allows(context.restarts):
                await self._relaunch_later(context, reason)
                return
            context.end_reason = (
                f"{reason}; supervise gave up after {context.restarts} restart(s) of context {context.name}"
            )
            if context.phase is Phase.RUNNING:  # it would restart, but may not: a failed restart
                context.transition(Phase.RESTARTING)
        await self.end(context, returncode, log_tail(process))

    async def end(self, context: LiveContext, returncode: int | None, log_text: str = "") -> None:
        """The driver is gone (or never rejoined): the context's final state, and its jobs'."""
        self._registry.remove(context)
        phase = context.phase  # what the context and its jobs become follows from where it was
        target, message = final_state(phase, returncode, context.end_reason)
        context.transition(Phase.ENDED)
        record = await self._store.update_context(context.id, target, error=message)
        if record is None and target is ContextState.KILLED:
            await self._store.update_context(context.id, ContextState.ERROR, error=message)
        reason = message or "driver exited"
        details = None if phase is Phase.AWAITING_REJOIN else error_map(reason, "DriverExited", log_text)
        context.fail_waiters(ContextInitError(reason, details=details))
        await self._events.on_context_ended(context, self._ending(context, phase, message))
        context.ended.set()
        log.info("context_ended", context_id=context.id, context_name=context.name, state=target.value)

    @staticmethod
    def _ending(context: LiveContext, phase: Phase, message: str | None) -> ContextEnding:
        return ContextEnding(
            job_error(phase, context_id=context.id, context_name=context.name, message=message)
        )

    async def _relaunch_later(self, context: LiveContext, reason: str) -> None:
        """A supervised context's driver died: RESTARTING now, a new driver after the backoff."""
        context.restarts += 1
        metrics.DRIVER_RESTARTS.inc()
        context.end_reason = None
        if context.ready.done():
            context.ready = asyncio.get_running_loop().create_future()
        if context.phase is Phase.RUNNING:
            context.transition(Phase.RESTARTING)
            record = await self._store.update_context(context.id, ContextState.RESTARTING)
            if record is not None:
                context.record = record
            await self._events.on_context_restarting(context, reason)
        delay_s = self._relaunch_policy.backoff_s(context.restarts)
        log.warning(
            "context_restarting",
            context_id=context.id,
            context_name=context.name,
            reason=reason,
            restart=context.restarts,
            delay_s=delay_s,
        )
        self._tasks.spawn(self._relaunch(context, delay_s), name=f"relaunch-{context.id}")

    async def _relaunch(self, context: LiveContext, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if context.phase is not Phase.RESTARTING or not self._registry.holds(context):
            return
        try:
            await self._start_driver(context)
        except OSError as error:
            context.end_reason = f"cannot start spark-submit: {error}"
            context.restarts = self._relaunch_policy.max_restarts  # no point in trying again
            await self.on_driver_exit(context.id, None)

    # --- after a restart of the server -----------------------------------------------------------------

    async def await_rejoin(self, record: ContextRecord) -> LiveContext:
        """A context this server launched before its restart waits ``reattach-grace`` for its
        driver to rejoin; then it ends as ERROR."""
        context = self._live_context(record, Phase.AWAITING_REJOIN)
        self._registry.add(context)
        log.info("context_awaiting_driver", context_id=record.id, context_name=record.name)
        if self._settings.reattach_grace_s <= 0:
            await self.give_up_rejoin(context)
        else:
            self._tasks.spawn(self._expire_rejoin(context), name=f"rejoin-{record.id}")
        return context

    async def _expire_rejoin(self, context: LiveContext) -> None:
        await asyncio.sleep(self._settings.reattach_grace_s)
        if context.phase is Phase.AWAITING_REJOIN and self._registry.holds(context):
            await self.give_up_rejoin(context)

    async def give_up_rejoin(self, context: LiveContext) -> None:
        log.warning("context_not_recovered", context_id=context.id, context_name=context.name)
        await self.end(context, None)

    async def terminate_all(self, grace_s: float) -> None:
        await self._processes.terminate_all(grace_s)

    def release(self, context: LiveContext) -> None:
        """Another server adopted the context: its driver is that server's to watch and stop."""
        self._processes.release(context.id)
        context.process = None

    async def let_go(self) -> None:
        """Leave every driver running, unwatched (a stop with --keep-contexts)."""
        await self._processes.detach()
