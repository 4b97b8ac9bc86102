"""Contexts: one driver process per context, from launch to its last exit.

The ContextManager is the only owner of a context's runtime state (its process, its bus identity,
its running jobs). It launches drivers through the supervisor, authenticates them when they connect
back over the bus, watches their heartbeats, and turns every way a driver can end into an honest
persisted state: FINISHED after a requested stop, KILLED when it died or went silent, ERROR when it
never came up. A supervised context's driver that dies is launched again instead (RESTARTING).

After a restart of the server, the drivers the previous server process launched rejoin (they keep
running while no server is there): their contexts stay RUNNING and their jobs go on. Those that
do not rejoin within ``reattach-grace`` end as ERROR, as the contract's reconciliation says.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hmac
import json
import signal
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from driver.protocol import (
    JOB_REPORTS,
    ContextInitFailed,
    ContextReady,
    DriverHeartbeat,
    DriverStopping,
    FetchBlob,
    FetchDataFile,
    Hello,
    JobFinished,
    Message,
    NamedObjectsChanged,
    Reintroduce,
    Rejected,
    Rejoin,
    ServerHeartbeat,
    StopContext,
    Welcome,
)
from jobserver.common.config import Settings, merge
from jobserver.common.errors import BadRequest, ContextInitError, JobServerError, NotFound, error_map
from jobserver.common.records import ContextRecord, utc_now
from jobserver.common.states import ContextState
from jobserver.contexts import relaunch as supervise
from jobserver.contexts.live import LiveContext, StopResult, log_tail
from jobserver.drivers import tokens
from jobserver.drivers.bus import Bus, BusError
from jobserver.drivers.file_sender import FileSender
from jobserver.drivers.launcher import DriverLaunch, build_driver_command
from jobserver.drivers.processes import DriverProcess, Supervisor
from jobserver.storage import Store
from jobserver.uploads.datafiles import DataFiles

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_MESSAGE = "Context failed to connect back within initialization time"
REJOIN_FAILED_MESSAGE = "Reconnect failed after Jobserver restart"
LISTED_STATES = (ContextState.RUNNING, ContextState.RESTARTING, ContextState.STOPPING)


class JobListener(Protocol):
    async def on_job_message(self, context: LiveContext, message: Message) -> None: ...

    def answer_early(self, context: LiveContext, message: JobFinished) -> None: ...

    async def on_context_ended(self, context: LiveContext, message: str) -> None: ...

    async def on_context_restarting(self, context: LiveContext, reason: str) -> None: ...

    async def on_context_restarted(self, context: LiveContext) -> None: ...

    async def on_driver_rejoined(
        self, context: LiveContext, running_job_ids: list[str], held_job_ids: list[str]
    ) -> None: ...


class ContextManager:
    def __init__(
        self, settings: Settings, store: Store, bus: Bus, launch: DriverLaunch, data: DataFiles
    ) -> None:
        self._settings = settings
        self._files = FileSender(
            blob_file=store.blob_file, data_file=data.path_of, chunk_bytes=settings.result_chunk_bytes
        )
        self._store = store
        self._bus = bus
        self._launch = launch
        self._key = tokens.load_key(settings.work_dir)
        self._host = socket.gethostname()
        self._server_config_json = json.dumps(settings.plain).encode()
        self._supervisor = Supervisor(self._on_driver_exit)
        self._live: dict[str, LiveContext] = {}
        self._by_identity: dict[bytes, LiveContext] = {}
        self._names_starting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.job_listener: JobListener | None = None

    def set_bus_endpoint(self, endpoint: str) -> None:
        self._launch = dataclasses.replace(self._launch, bus_endpoint=endpoint)

    # --- queries ---------------------------------------------------------------------------------

    def live(self, context_id: str) -> LiveContext | None:
        return self._live.get(context_id)

    def live_by_name(self, name: str) -> LiveContext | None:
        """The context of that name whose driver this server runs, if it is not stopping."""
        for live in self._live.values():
            if live.name == name and not live.stopping:
                return live
        return None

    async def list_names(self) -> list[str]:
        return [record.name for record in await self._store.list_contexts(LISTED_STATES)]

    def named_objects(self, name: str) -> list[dict[str, str]]:
        live = self.live_by_name(name)
        if live is None:
            raise NotFound(f"context {name} not found")
        return live.named_objects

    async def get(self, name: str) -> tuple[ContextRecord, LiveContext | None]:
        record = await self._store.latest_context(name)
        if record is None:
            raise NotFound(f"can't find context with name {name}")
        return record, self._live.get(record.id)

    # --- creation --------------------------------------------------------------------------------

    async def create(self, name: str, config: Mapping[str, Any], *, adhoc: bool = False) -> LiveContext:
        """Launch a driver for ``name`` and wait until its Spark context is up."""
        if not adhoc and not name[:1].isalpha():
            raise BadRequest("context name must start with letters")
        if name in self._names_starting:
            raise BadRequest(f"context {name} exists")
        self._names_starting.add(name)
        try:
            existing = await self._store.latest_context(name)
            if existing is not None and not existing.state.is_final:
                raise BadRequest(f"context {name} exists")
            live = await self._launch_driver(name, config, adhoc)
        finally:
            self._names_starting.discard(name)
        await self.wait_ready(live)
        return live

    async def _launch_driver(self, name: str, config: Mapping[str, Any], adhoc: bool) -> LiveContext:
        full_config = merge(config, {"is-adhoc": adhoc, "context": {"name": name}})
        record = ContextRecord(
            id=str(uuid.uuid4()),
            name=name,
            config=full_config,
            state=ContextState.STARTED,
            start_time=utc_now(),
            is_adhoc=adhoc,
            owner=self._settings.server_id,
        )
        await self._store.insert_context(record)
        live = LiveContext(record=record, token="")
        self._live[record.id] = live
        try:
            await self._start_driver(live)
        except OSError as error:
            self._live.pop(record.id, None)
            message = f"cannot start spark-submit: {error}"
            await self._store.update_context(record.id, ContextState.ERROR, error=message)
            raise ContextInitError(message, details=error_map(message, type(error).__name__)) from error
        return live

    async def _start_driver(self, live: LiveContext) -> None:
        """Launch (or, under supervise, launch again) the context's driver process."""
        live.token = tokens.issue(self._key, live.id)
        command = build_driver_command(
            self._launch,
            context_id=live.id,
            context_name=live.name,
            context_config=supervise.without_flag(live.record.config),
            token=live.token,
        )
        live.process = await self._supervisor.launch(
            live.id, command, self._log_path(live), self._working_dir(live)
        )
        log.info("context_launched", context_id=live.id, context_name=live.name, pid=live.process.pid)
        self._spawn(self._enforce_start_timeout(live))

    def _log_path(self, live: LiveContext) -> Path:
        return self._settings.log_dir / f"{live.id}.log"

    def _working_dir(self, live: LiveContext) -> Path:
        return self._settings.work_dir / "drivers" / live.id

    async def wait_ready(self, live: LiveContext) -> ContextRecord:
        # shield: a client that hangs up must not cancel the shared future other waiters use
        return await asyncio.shield(live.ready)

    async def _enforce_start_timeout(self, live: LiveContext) -> None:
        ready, process = live.ready, live.process
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(ready), self._settings.context_creation_timeout_s)
            return
        if not ready.done() and live.process is process:
            await self._fail_start(live, CONNECT_TIMEOUT_MESSAGE, error_map(CONNECT_TIMEOUT_MESSAGE))

    async def _fail_start(self, live: LiveContext, message: str, details: Mapping[str, str]) -> None:
        live.end_reason = message
        if live.restarts == 0:
            await self._store.update_context(live.id, ContextState.ERROR, error=message)
            if not live.ready.done():
                live.ready.set_exception(ContextInitError(message, details=dict(details)))
        # else a relaunch failed: the driver's exit decides whether supervise tries once more
        if live.process is not None:
            await live.process.terminate(grace_s=2.0)

    # --- driver messages -------------------------------------------------------------------------

    def first_look(self, identity: bytes, message: Message) -> None:
        """A message the bus read as it came, a loop turn before ``on_bus_message`` gets it: a
        job's result from a known driver may answer its sync request at once."""
        if type(message) is JobFinished and self.job_listener is not None:
            live = self._by_identity.get(identity)
            if live is not None:
                self.job_listener.answer_early(live, message)

    async def on_bus_message(self, identity: bytes, message: Message) -> None:
        if isinstance(message, Hello):
            await self._on_hello(identity, message)
            return
        if isinstance(message, Rejoin):
            await self._on_rejoin(identity, message)
            return
        live = self._by_identity.get(identity)
        if live is None:
            # A driver of an earlier server process (or a confused peer): ask who it is. Its
            # frame is dropped; anything that matters (a job's final report) it sends again.
            log.info("bus_message_from_stranger", message_type=message.TYPE)
            with contextlib.suppress(BusError):
                self._bus.send(identity, Reintroduce())
            return
        live.last_seen = time.monotonic()
        if type(message) in JOB_REPORTS:  # the most frequent, first
            if self.job_listener is not None:
                await self.job_listener.on_job_message(live, message)
            return
        if isinstance(message, DriverHeartbeat):
            await self._check_stuck_kills(live, set(message.running_job_ids))
            return
        if isinstance(message, ContextReady):
            await self._on_ready(live, message)
        elif isinstance(message, ContextInitFailed):
            log.warning("context_init_failed", context_id=live.id, error=message.error.get("message"))
            await self._fail_start(live, message.error.get("message", "context init failed"), message.error)
        elif isinstance(message, DriverStopping):
            log.info("driver_stopping", context_id=live.id, reason=message.reason)
        elif isinstance(message, NamedObjectsChanged):
            live.named_objects = message.objects
        elif isinstance(message, FetchBlob | FetchDataFile):
            self._spawn(self._files.send(functools.partial(self.send, live), message))
        else:  # job reports went to the job listener above; nothing else comes from a driver
            log.warning("bus_message_unexpected", context_id=live.id, message_type=message.TYPE)

    def _trusted(self, live: LiveContext | None, token: str) -> bool:
        if live is None:
            return False
        if live.token:  # launched by this server process: exactly the token it issued
            return hmac.compare_digest(live.token, token)
        return tokens.verify(self._key, live.id, token)  # launched by an earlier one

    async def _reject(self, identity: bytes, context_id: str, pid: int) -> None:
        log.warning("driver_rejected", context_id=context_id, pid=pid)
        with contextlib.suppress(BusError):
            self._bus.send(identity, Rejected(reason="unknown context or wrong token"))

    def _attach(self, live: LiveContext, identity: bytes) -> None:
        if live.identity is not None:
            self._by_identity.pop(live.identity, None)
        live.identity = identity
        live.last_seen = time.monotonic()
        self._by_identity[identity] = live

    def _adopt(self, live: LiveContext, *, pid: int, pgid: int, host: str) -> None:
        """Take over watching the process of a driver an earlier server process launched."""
        live.awaiting_rejoin = False
        live.rejoined.set()
        if live.process is None:
            live.process = self._supervisor.adopt(
                live.id,
                pid=pid,
                pgid=pgid or pid,
                local=host == self._host,
                log_path=self._log_path(live),
                working_dir=self._working_dir(live),
            )

    async def _on_hello(self, identity: bytes, hello: Hello) -> None:
        live = self._live.get(hello.context_id)
        if not self._trusted(live, hello.token):
            await self._reject(identity, hello.context_id, hello.pid)
            return
        assert live is not None
        if live.awaiting_rejoin:  # launched before a restart, still starting Spark
            self._adopt(live, pid=hello.pid, pgid=hello.pgid, host=hello.host)
        self._attach(live, identity)
        log.info("driver_connected", context_id=live.id, pid=hello.pid)
        self.send(live, self._welcome(live))

    async def _on_rejoin(self, identity: bytes, rejoin: Rejoin) -> None:
        live = self._live.get(rejoin.context_id)
        if not self._trusted(live, rejoin.token):
            await self._reject(identity, rejoin.context_id, rejoin.pid)
            return
        assert live is not None
        if live.identity == identity and not live.awaiting_rejoin:
            return  # it asked twice
        self._adopt(live, pid=rejoin.pid, pgid=rejoin.pgid, host=rejoin.host)
        self._attach(live, identity)
        log.info(
            "driver_rejoined",
            context_id=live.id,
            context_name=live.name,
            pid=rejoin.pid,
            running=len(rejoin.running_job_ids),
            held_reports=len(rejoin.held_job_ids),
        )
        self.send(live, self._welcome(live))
        if live.stopping:
            with contextlib.suppress(BusError):
                self.send(live, StopContext())
            return
        if rejoin.application_id:
            await self._on_ready(live, ContextReady(rejoin.application_id, rejoin.web_ui_url, ""))
        if self.job_listener is not None:
            await self.job_listener.on_driver_rejoined(live, rejoin.running_job_ids, rejoin.held_job_ids)

    def _welcome(self, live: LiveContext) -> Welcome:
        return Welcome(
            heartbeat_interval_s=self._settings.heartbeat_interval_s,
            server_silence_grace_s=self._settings.driver_server_silence_grace_s,
            max_jobs=self._settings.max_jobs_per_context,
            result_chunk_bytes=self._settings.result_chunk_bytes,
            context_config_json=json.dumps(live.record.config).encode(),
            server_config_json=self._server_config_json,
        )

    async def _on_ready(self, live: LiveContext, ready: ContextReady) -> None:
        restarted = live.record.state is ContextState.RESTARTING
        if live.record.state is ContextState.RUNNING:  # a rejoined driver: nothing changed
            record = live.record
        else:
            record = await self._store.update_context(
                live.id,
                ContextState.RUNNING,
                application_id=ready.application_id,
                web_ui_url=ready.web_ui_url,
            )
        if record is None:  # stopped or failed meanwhile: the driver is on its way out
            return
        live.record = record
        log.info(
            "context_started",
            context_id=live.id,
            context_name=live.name,
            application_id=ready.application_id,
            restarts=live.restarts,
        )
        if not live.ready.done():
            live.ready.set_result(record)
        if restarted and self.job_listener is not None:
            await self.job_listener.on_context_restarted(live)

    def note_killed(self, live: LiveContext, job_id: str) -> None:
        live.killed_at[job_id] = time.monotonic()

    async def _check_stuck_kills(self, live: LiveContext, running: set[str]) -> None:
        """Killed jobs the driver still runs after kill-grace are reported (and, if configured,
        their context is restarted); the driver's heartbeat lists what it runs."""
        now = time.monotonic()
        for job_id, killed in list(live.killed_at.items()):
            if job_id not in running:
                del live.killed_at[job_id]
                live.stuck_job_ids.discard(job_id)
            elif now - killed > self._settings.kill_grace_s and job_id not in live.stuck_job_ids:
                live.stuck_job_ids.add(job_id)
                log.warning(
                    "job_ignores_kill", context_id=live.id, job_id=job_id, seconds=round(now - killed)
                )
                if self._settings.restart_context_on_stuck_kill and not live.stopping:
                    self._spawn(self._restart(live))

    async def _restart(self, live: LiveContext) -> None:
        config = {
            key: value for key, value in live.record.config.items() if key not in ("is-adhoc", "context")
        }
        await self._begin_stop(live, force=False)
        await self._wait_ended(live, self._settings.context_deletion_timeout_s + 10.0)
        log.info("context_restarting", context_id=live.id, context_name=live.name)
        await self._create_logged(live.name, config)

    def stuck_job_ids(self, context_id: str) -> list[str]:
        live = self._live.get(context_id)
        return sorted(live.stuck_job_ids) if live is not None else []

    def send(self, live: LiveContext, message: Message) -> None:
        if live.identity is None:
            raise BusError(f"driver of context {live.name} is not connected")
        self._bus.send(live.identity, message)

    # --- liveness --------------------------------------------------------------------------------

    async def run_heartbeats(self) -> None:
        """Every interval: tell each driver we are alive, and end drivers that went silent."""
        interval = self._settings.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for live in list(self._live.values()):
                if live.identity is None or live.ended.is_set():
                    continue
                silent_s = now - live.last_seen
                if silent_s > self._settings.heartbeat_timeout_s and live.end_reason is None:
                    await self._declare_lost(live, silent_s)
                    continue
                with contextlib.suppress(BusError):
                    self._bus.send(live.identity, ServerHeartbeat())

    async def _declare_lost(self, live: LiveContext, silent_s: float) -> None:
        reason = f"Driver of context {live.name} lost: no heartbeat for {silent_s:.1f} s"
        log.warning("driver_lost", context_id=live.id, silent_s=round(silent_s, 1))
        live.end_reason = reason
        if live.process is not None:
            live.process.signal_group(signal.SIGKILL)

    # --- stopping --------------------------------------------------------------------------------

    async def delete(self, name: str, *, force: bool = False) -> StopResult:
        record = await self._store.latest_context(name)
        if record is None or record.state.is_final:
            raise NotFound(f"context {name} not found")
        live = self._live.get(record.id)
        if live is None:
            # Persisted as alive but no driver of ours: nothing can stop it, so tell the truth.
            await self._store.update_context(record.id, ContextState.ERROR, error="Driver not reachable")
            raise NotFound(f"context {name} not found")
        if live.process is None:  # between two launches (supervise), or not rejoined yet
            await self._end_without_driver(live)
            return StopResult(finished=True)
        if not live.stopping:
            await self._begin_stop(live, force=force)
        elif force and live.process is not None:
            live.process.signal_group(signal.SIGKILL)
        wait_s = max(self._settings.context_deletion_timeout_s - 2.0, 0.5)
        finished = await self._wait_ended(live, wait_s)
        return StopResult(finished=finished)

    async def stop(self, live: LiveContext) -> None:
        """Stop a context the server itself ends (an ad-hoc context after its job)."""
        if not live.stopping:
            await self._begin_stop(live, force=False)

    async def _begin_stop(self, live: LiveContext, *, force: bool) -> None:
        live.stopping = True
        live.end_reason = f"Context ({live.name}) for this job was terminated"
        record = await self._store.update_context(live.id, ContextState.STOPPING)
        if record is not None:
            live.record = record
        if self.job_listener is not None:
            await self.job_listener.on_context_ended(live, live.end_reason)
        if not live.ready.done():
            live.ready.set_exception(ContextInitError(f"context {live.name} was stopped while starting"))
        log.info("context_stopping", context_id=live.id, context_name=live.name, force=force)
        process = live.process
        if process is None:
            return
        if force:
            process.signal_group(signal.SIGKILL)
            return
        with contextlib.suppress(BusError):
            self.send(live, StopContext())
        self._spawn(self._escalate_stop(process))

    async def _escalate_stop(self, process: DriverProcess) -> None:
        if not await process.wait_exited(self._settings.context_deletion_timeout_s):
            await process.terminate(grace_s=5.0)

    async def _wait_ended(self, live: LiveContext, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(live.ended.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _end_without_driver(self, live: LiveContext) -> None:
        """DELETE of a context that has no driver process right now: it ends here."""
        await self._begin_stop(live, force=True)
        await self._on_driver_exit(live.id, None)

    async def _on_driver_exit(self, context_id: str, returncode: int | None) -> None:
        live = self._live.get(context_id)
        if live is None:
            return
        if live.identity is not None:
            self._by_identity.pop(live.identity, None)
            live.identity = None
        process, live.process = live.process, None
        exit_message = (
            f"Driver exited unexpectedly with code {returncode}"
            if returncode is not None
            else "Driver exited unexpectedly"
        )
        if (
            not live.stopping
            and live.record.state in (ContextState.RUNNING, ContextState.RESTARTING)
            and supervise.supervised(live.record.config, self._settings.supervise)
        ):
            reason = live.end_reason or exit_message
            if live.restarts < self._settings.supervise_max_restarts:
                await self._relaunch_later(live, reason)
                return
            live.end_reason = (
                f"{reason}; supervise gave up after {live.restarts} restart(s) of context {live.name}"
            )
            gave_up = True
        else:
            gave_up = False
        del self._live[context_id]
        if live.stopping:
            target, message = ContextState.FINISHED, None
        elif gave_up:
            target, message = ContextState.ERROR, live.end_reason
        elif live.record.state is ContextState.RUNNING:
            target = ContextState.KILLED
            message = live.end_reason or exit_message
        elif live.record.state is ContextState.RESTARTING:
            target, message = ContextState.ERROR, live.end_reason or exit_message
        else:
            target = ContextState.ERROR
            message = live.end_reason or f"Driver exited with code {returncode} before its context was up"
        record = await self._store.update_context(context_id, target, error=message)
        if record is None and target is ContextState.KILLED:
            await self._store.update_context(context_id, ContextState.ERROR, error=message)
        if not live.ready.done():
            tail = log_tail(process)
            details = error_map(message or "driver exited", "DriverExited", tail)
            live.ready.set_exception(ContextInitError(message or "driver exited", details=details))
        if self.job_listener is not None:
            job_message = message or f"Context ({live.name}) for this job was terminated"
            if not live.stopping:
                job_message = f"Unexpected termination of context {live.id}: {job_message}"
            await self.job_listener.on_context_ended(live, job_message)
        live.ended.set()
        log.info("context_ended", context_id=context_id, context_name=live.name, state=target.value)

    # --- supervise mode ---------------------------------------------------------------------------

    async def _relaunch_later(self, live: LiveContext, reason: str) -> None:
        """A supervised context's driver died: RESTARTING now, a new driver after the backoff."""
        live.restarts += 1
        live.end_reason = None
        if live.ready.done():
            live.ready = asyncio.get_running_loop().create_future()
        if live.record.state is ContextState.RUNNING:
            record = await self._store.update_context(live.id, ContextState.RESTARTING)
            if record is not None:
                live.record = record
            if self.job_listener is not None:
                await self.job_listener.on_context_restarting(live, reason)
        delay_s = supervise.backoff_s(
            live.restarts, self._settings.supervise_backoff_s, self._settings.supervise_max_backoff_s
        )
        log.warning(
            "context_restarting",
            context_id=live.id,
            context_name=live.name,
            reason=reason,
            restart=live.restarts,
            delay_s=delay_s,
        )
        self._spawn(self._relaunch(live, delay_s))

    async def _relaunch(self, live: LiveContext, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if live.stopping or self._live.get(live.id) is not live:
            return
        try:
            await self._start_driver(live)
        except OSError as error:
            live.end_reason = f"cannot start spark-submit: {error}"
            live.restarts = self._settings.supervise_max_restarts  # no point in trying again
            await self._on_driver_exit(live.id, None)

    # --- start-up, reset and shut-down ------------------------------------------------------------

    async def start_configured_contexts(self) -> None:
        for name, config in self._settings.startup_contexts.items():
            self._spawn(self._create_logged(name, merge(self._settings.context_defaults, config)))

    async def _create_logged(self, name: str, config: Mapping[str, Any]) -> None:
        try:
            await self.create(name, config)
        except JobServerError as error:
            log.error("configured_context_failed", context_name=name, error=error.message)

    async def reset(self, *, sync: bool) -> None:
        """PUT /contexts?reset=reboot: stop every context; with ``sync`` restart the configured ones."""
        lives = [live for live in self._live.values() if not live.stopping]
        for live in lives:
            await self._begin_stop(live, force=False)
        if not sync:
            return
        deadline_s = self._settings.context_deletion_timeout_s + 6.0
        await asyncio.gather(*(self._wait_ended(live, deadline_s) for live in lives))
        for name, config in self._settings.startup_contexts.items():
            await self._create_logged(name, merge(self._settings.context_defaults, config))

    async def recover(self) -> None:
        """At start-up, before serving: the contexts this server launched before its restart wait
        ``reattach-grace`` for their drivers to rejoin; the others end as ERROR then."""
        active = tuple(state for state in ContextState if not state.is_final)
        for record in await self._store.list_contexts(active, owner=self._settings.server_id):
            live = LiveContext(record=record, token="", awaiting_rejoin=True)
            if record.state is ContextState.STOPPING:
                live.stopping = True
            self._live[record.id] = live
            log.info("context_awaiting_driver", context_id=record.id, context_name=record.name)
            if self._settings.reattach_grace_s <= 0:
                await self._give_up_rejoin(live)
            else:
                self._spawn(self._expire_rejoin(live))

    async def _expire_rejoin(self, live: LiveContext) -> None:
        await asyncio.sleep(self._settings.reattach_grace_s)
        if live.awaiting_rejoin and self._live.get(live.id) is live:
            await self._give_up_rejoin(live)

    async def _give_up_rejoin(self, live: LiveContext) -> None:
        self._live.pop(live.id, None)
        live.awaiting_rejoin = False
        await self._store.update_context(live.id, ContextState.ERROR, error=REJOIN_FAILED_MESSAGE)
        if self.job_listener is not None:
            await self.job_listener.on_context_ended(live, REJOIN_FAILED_MESSAGE)
        if not live.ready.done():
            live.ready.set_exception(ContextInitError(REJOIN_FAILED_MESSAGE))
            live.ready.exception()  # nobody may be waiting: retrieved so it does not warn
        live.ended.set()
        log.warning("context_not_recovered", context_id=live.id, context_name=live.name)

    async def shutdown(self) -> None:
        await self._let_drivers_rejoin()
        for live in [live for live in self._live.values() if live.awaiting_rejoin]:
            await self._give_up_rejoin(live)
        lives = list(self._live.values())
        for live in lives:
            if live.process is None:
                await self._end_without_driver(live)
            elif not live.stopping:
                await self._begin_stop(live, force=False)
        grace_s = self._settings.context_deletion_timeout_s
        await asyncio.gather(*(self._wait_ended(live, grace_s) for live in lives))
        await self._supervisor.terminate_all(grace_s=5.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _let_drivers_rejoin(self) -> None:
        """A stop right after a start that found drivers still running (kept by a
        ``--keep-contexts`` stop) waits a few heartbeats for them to rejoin: only a driver that
        has rejoined tells its pid, and only then can this stop end it."""
        awaiting = [live.rejoined.wait() for live in self._live.values() if live.awaiting_rejoin]
        if not awaiting:
            return
        wait_s = min(self._settings.reattach_grace_s, 3 * self._settings.heartbeat_interval_s + 1.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await asyncio.gather(*awaiting)

    async def detach(self) -> None:
        """Stop with --keep-contexts: leave every driver running, its context as it is, for the
        next server process to re-attach."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._supervisor.detach()
        log.info("contexts_left_running", count=len(self._live))
        self._live.clear()
        self._by_identity.clear()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
