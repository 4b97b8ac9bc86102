"""What drivers say over the bus, and the server's heartbeats back.

A driver proves who it is with the token it was launched with (``Hello``, or ``Rejoin`` when it
outlived an earlier server process); from then on its bus connection stands for its context.
Anything else from an unknown connection is answered with ``Reintroduce``. With CURVE, every
message also comes with the context its sender's key proves (``peer``), and counts only for that
context: a Hello or Rejoin naming another context, or a message on a connection that stands for
another context (a routing id taken over), is ignored and logged. The token is still checked: a
key alone (a driver's secrets file copied without its token) is not enough. Job reports go to the
job domain (``ContextEvents.on_job_report``); the rest is the context's own business: ready or
failed to start, heartbeats (and killed jobs the driver still runs), named objects, file requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

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
    Message,
    NamedObjectsChanged,
    Reintroduce,
    Rejected,
    Rejoin,
    ResultLimit,
    ServerEndpoints,
    ServerHeartbeat,
    SessionChecked,
    StopContext,
    Welcome,
)
from jobserver.common import metrics
from jobserver.common.config import Settings, for_drivers
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.events import ContextEvents
from jobserver.contexts.lifecycle import ContextLifecycle
from jobserver.contexts.live import LiveContext, LiveContexts
from jobserver.contexts.phases import REJOINED_PHASES, Phase
from jobserver.drivers.bus import Bus, BusError
from jobserver.drivers.file_sender import FileSender

log = structlog.get_logger(__name__)


class DriverMessages:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        registry: LiveContexts,
        lifecycle: ContextLifecycle,
        events: ContextEvents,
        files: FileSender,
        tasks: BackgroundTasks,
        restart: Callable[[LiveContext], Coroutine[Any, Any, None]],
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._registry = registry
        self._lifecycle = lifecycle
        self._events = events
        self._files = files
        self._tasks = tasks
        self._restart = restart  # a context whose killed job ignores the kill, when so configured
        self._host = socket.gethostname()
        self._server_config_json = json.dumps(for_drivers(settings.plain)).encode()
        # Where a driver may go when this server falls silent (set by the ContextManager).
        self.endpoints: Callable[[], list[str]] = list
        # Whether this server still owns a context whose driver went silent: a peer may have
        # adopted it while this server was frozen or cut off (set by the ContextManager).
        self.still_owned: Callable[[LiveContext], Awaitable[bool]] = _owned
        # A pooled driver's answer about its session (set by the ContextManager: its pools).
        self.session_checked: Callable[[LiveContext, SessionChecked], None] = lambda context, answer: None

    async def on_bus_message(self, identity: bytes, peer: str | None, message: Message) -> None:
        """``peer``: the context the sender's CURVE key proves (None on a plaintext bus)."""
        if isinstance(message, Hello | Rejoin):
            if self._claims_other_context(peer, message.context_id, message):
                return
            if isinstance(message, Hello):
                await self._on_hello(identity, message)
            else:
                await self._on_rejoin(identity, message)
            return
        context = self._registry.by_identity(identity)
        if context is not None and self._claims_other_context(peer, context.id, message):
            # Another context's driver took over this connection's routing id (which needs that
            # secret id): nothing more of this context goes to it. The displaced driver, cut off
            # by the takeover, ends on the server's silence and its context with it.
            self._registry.disconnect(context)
            return
        if context is None:
            # A driver of an earlier server process (or a confused peer): ask who it is. Its frame
            # is dropped; anything that matters (a job's final report) it sends again.
            log.info("bus_message_from_stranger", message_type=message.TYPE)
            with contextlib.suppress(BusError):
                self._bus.send(identity, Reintroduce())
            return
        context.last_seen = time.monotonic()
        if type(message) in JOB_REPORTS:  # the most frequent, first
            await self._events.on_job_report(context, message)
        elif isinstance(message, DriverHeartbeat):
            self._check_stuck_kills(context, set(message.running_job_ids))
        elif isinstance(message, ContextReady):
            await self._lifecycle.on_ready(context, message)
        elif isinstance(message, ContextInitFailed):
            error = message.error.get("message", "context init failed")
            log.warning("context_init_failed", context_id=context.id, error=error)
            await self._lifecycle.fail_start(context, error, message.error)
        elif isinstance(message, DriverStopping):
            log.info("driver_stopping", context_id=context.id, reason=message.reason)
        elif isinstance(message, NamedObjectsChanged):
            context.named_objects = message.objects
        elif isinstance(message, SessionChecked):
            self.session_checked(context, message)
        elif isinstance(message, FetchBlob | FetchDataFile):
            self._tasks.spawn(self._files.send(context.send, message), name=f"file-{message.request_id}")
        else:
            log.warning("bus_message_unexpected", context_id=context.id, message_type=message.TYPE)

    def _claims_other_context(self, peer: str | None, context_id: str, message: Message) -> bool:
        if peer == context_id or (peer is None and not self._settings.bus_curve):
            return False
        log.warning(
            "bus_message_refused",
            reason="sender's key is another context's",
            context_id=context_id,
            sender_context_id=peer,
            message_type=message.TYPE,
        )
        return True

    def _reject(self, identity: bytes, context_id: str, pid: int) -> None:
        log.warning("driver_rejected", context_id=context_id, pid=pid)
        with contextlib.suppress(BusError):
            self._bus.send(identity, Rejected(reason="unknown context or wrong token"))

    async def _on_hello(self, identity: bytes, hello: Hello) -> None:
        context = self._registry.get(hello.context_id)
        if context is None or not self._lifecycle.trusts(context, hello.token):
            self._reject(identity, hello.context_id, hello.pid)
            return
        if context.phase is Phase.AWAITING_REJOIN:  # launched before a restart, still starting Spark
            self._lifecycle.adopt(
                context, pid=hello.pid, pgid=hello.pgid, host=hello.host, local_host=self._host
            )
            context.transition(REJOINED_PHASES[context.record.state])
        self._registry.connect(context, identity)
        log.info("driver_connected", context_id=context.id, pid=hello.pid)
        self._send_welcome(context)
        if context.stopping:  # a stop was asked for before the server restarted
            with contextlib.suppress(BusError):
                context.send(StopContext())

    async def _on_rejoin(self, identity: bytes, rejoin: Rejoin) -> None:
        context = self._registry.get(rejoin.context_id)
        if context is None or not self._lifecycle.trusts(context, rejoin.token):
            self._reject(identity, rejoin.context_id, rejoin.pid)
            return
        if context.identity == identity and context.phase is not Phase.AWAITING_REJOIN:
            return  # it asked twice
        self._lifecycle.adopt(
            context, pid=rejoin.pid, pgid=rejoin.pgid, host=rejoin.host, local_host=self._host
        )
        if context.phase is Phase.AWAITING_REJOIN:
            context.transition(REJOINED_PHASES[context.record.state])
        self._registry.connect(context, identity)
        log.info(
            "driver_rejoined",
            context_id=context.id,
            context_name=context.name,
            pid=rejoin.pid,
            running=len(rejoin.running_job_ids),
            held_reports=len(rejoin.held_job_ids),
        )
        self._send_welcome(context)
        if context.stopping:
            with contextlib.suppress(BusError):
                context.send(StopContext())
            return
        if rejoin.application_id:
            await self._lifecycle.on_ready(
                context, ContextReady(rejoin.application_id, rejoin.web_ui_url, "")
            )
        await self._events.on_driver_rejoined(context, rejoin.running_job_ids, rejoin.held_job_ids)

    def _send_welcome(self, context: LiveContext) -> None:
        context.send(self._welcome(context))
        context.send(ResultLimit(max_result_bytes=self._settings.max_result_bytes))
        endpoints = self.endpoints()
        if len(endpoints) > 1:  # a driver with one server to go to needs no list
            context.send(ServerEndpoints(endpoints=endpoints))

    def announce_endpoints(self, endpoints: list[str]) -> None:
        """The live servers sharing this one's key changed: every connected driver learns them."""
        for context in self._registry.all():
            if context.identity is not None:
                with contextlib.suppress(BusError):
                    context.send(ServerEndpoints(endpoints=endpoints))

    def _welcome(self, context: LiveContext) -> Welcome:
        return Welcome(
            heartbeat_interval_s=self._settings.heartbeat_interval_s,
            server_silence_grace_s=self._settings.driver_server_silence_grace_s,
            max_jobs=self._settings.max_jobs_per_context,
            result_chunk_bytes=self._settings.result_chunk_bytes,
            context_config_json=json.dumps(context.record.config).encode(),
            server_config_json=self._server_config_json,
        )

    def _check_stuck_kills(self, context: LiveContext, running: set[str]) -> None:
        """Killed jobs the driver still runs after kill-grace are reported (and, if configured,
        their context is restarted); the driver's heartbeat lists what it runs."""
        now = time.monotonic()
        for job_id, killed in list(context.killed_at.items()):
            if job_id not in running:
                del context.killed_at[job_id]
                context.stuck_job_ids.discard(job_id)
            elif now - killed > self._settings.kill_grace_s and job_id not in context.stuck_job_ids:
                context.stuck_job_ids.add(job_id)
                log.warning(
                    "job_ignores_kill", context_id=context.id, job_id=job_id, seconds=round(now - killed)
                )
                if self._settings.restart_context_on_stuck_kill and not context.stopping:
                    metrics.DRIVER_RESTARTS.inc()
                    self._tasks.spawn(self._restart(context), name=f"restart-{context.id}")

    async def run_heartbeats(self) -> None:
        """Every interval: tell each driver we are alive, and end drivers that went silent."""
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval_s)
            now = time.monotonic()
            for context in self._registry.all():
                if context.identity is None or context.ended.is_set():
                    continue
                silent_s = now - context.last_seen
                # A stopping driver that goes silent is ended by the stop's own escalation.
                lost = silent_s > self._settings.heartbeat_timeout_s and not context.stopping
                if lost and context.end_reason is None:
                    self._declare_lost(context, silent_s)
                    continue
                with contextlib.suppress(BusError):
                    context.send(ServerHeartbeat())

    def _declare_lost(self, context: LiveContext, silent_s: float) -> None:
        metrics.DRIVERS_LOST.labels("heartbeat").inc()
        context.end_reason = f"Driver of context {context.name} lost: no heartbeat for {silent_s:.1f} s"
        self._tasks.spawn(self._end_lost(context, silent_s), name=f"lost-{context.id}")

    async def _end_lost(self, context: LiveContext, silent_s: float) -> None:
        # A driver that went silent may have moved to a peer that adopted its context (this
        # server was frozen, or cut off from the store): that driver is not ours to kill.
        if not await self.still_owned(context):
            return
        log.warning("driver_lost", context_id=context.id, silent_s=round(silent_s, 1))
        if context.process is not None:
            context.process.signal_group(signal.SIGKILL)


async def _owned(context: LiveContext) -> bool:
    return True
