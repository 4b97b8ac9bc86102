"""A context's run-time state on the server (``LiveContext``), and the registry of them all."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from driver.protocol import Message
from jobserver.common.records import ContextRecord
from jobserver.common.states import ContextState
from jobserver.contexts.phases import Phase, check_phase_change
from jobserver.drivers.bus import Bus, BusError
from jobserver.drivers.processes import DriverProcess


@dataclass(eq=False)
class LiveContext:
    """What the server knows at run time about a context whose driver it launched (or adopted)."""

    record: ContextRecord
    bus: Bus
    phase: Phase = Phase.LAUNCHING
    token: str = ""  # issued by this server process; "" for a driver an earlier one launched
    curve_public_key: bytes = b""  # its driver's (32 bytes), derived from the id; b"" without CURVE
    process: DriverProcess | None = None
    identity: bytes | None = None  # its connection on the bus, once it has said who it is
    last_seen: float = field(default_factory=time.monotonic)
    ready: asyncio.Future[ContextRecord] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    rejoined: asyncio.Event = field(default_factory=asyncio.Event)  # an adopted driver said who it is
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # its driver's bus connection is up
    end_reason: str | None = None  # why the server ends the driver, when the server ends it
    named_objects: list[dict[str, str]] = field(default_factory=list)  # as the driver last said
    killed_at: dict[str, float] = field(default_factory=dict)  # killed jobs the driver still runs
    stuck_job_ids: set[str] = field(default_factory=set)  # … for longer than kill-grace
    restarts: int = 0  # supervise mode: relaunches so far

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def accepts_jobs(self) -> bool:
        return self.phase is Phase.RUNNING

    @property
    def stopping(self) -> bool:
        """A stop was asked for (also of a context whose driver has yet to rejoin this server)."""
        return self.phase is Phase.STOPPING or self.record.state is ContextState.STOPPING

    def transition(self, target: Phase) -> None:
        check_phase_change(self.phase, target)
        self.phase = target

    def send(self, message: Message) -> None:
        """Queue a message for the driver; BusError when it is not connected (or gone)."""
        if self.identity is None:
            raise BusError(f"driver of context {self.name} is not connected")
        self.bus.send(self.identity, message)

    def note_killed(self, job_id: str) -> None:
        self.killed_at[job_id] = time.monotonic()

    def fail_waiters(self, error: BaseException) -> None:
        """Whoever waits for it to be ready gets ``error`` (nobody may wait: retrieved here)."""
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()


class LiveContexts:
    """Every live context, by id, by the bus connection of its driver and by its driver's key."""

    def __init__(self) -> None:
        self._by_id: dict[str, LiveContext] = {}
        self._by_identity: dict[bytes, LiveContext] = {}
        self._by_public_key: dict[bytes, LiveContext] = {}

    def add(self, context: LiveContext) -> None:
        self._by_id[context.id] = context
        if context.curve_public_key:
            self._by_public_key[context.curve_public_key] = context

    def remove(self, context: LiveContext) -> None:
        if self._by_id.get(context.id) is context:
            del self._by_id[context.id]
        if self._by_public_key.get(context.curve_public_key) is context:
            del self._by_public_key[context.curve_public_key]
        self.disconnect(context)

    def authenticate(self, public_key: bytes) -> str | None:
        """The id of the live context whose driver holds ``public_key`` (a bus peer's CURVE key):
        launching, running, stopping, restarting or awaiting its driver's rejoin."""
        context = self._by_public_key.get(public_key)
        return None if context is None else context.id

    def get(self, context_id: str) -> LiveContext | None:
        return self._by_id.get(context_id)

    def holds(self, context: LiveContext) -> bool:
        return self._by_id.get(context.id) is context

    def by_identity(self, identity: bytes) -> LiveContext | None:
        return self._by_identity.get(identity)

    def by_name(self, name: str) -> LiveContext | None:
        """The context of that name, unless it is stopping."""
        for context in self._by_id.values():
            if context.name == name and not context.stopping:
                return context
        return None

    def all(self) -> list[LiveContext]:
        return list(self._by_id.values())

    def connect(self, context: LiveContext, identity: bytes) -> None:
        self.disconnect(context)
        context.identity = identity
        context.last_seen = time.monotonic()
        self._by_identity[identity] = context
        context.connected.set()

    def disconnect(self, context: LiveContext) -> None:
        if context.identity is not None and self._by_identity.get(context.identity) is context:
            del self._by_identity[context.identity]
        context.identity = None
        context.connected.clear()

    def clear(self) -> None:
        self._by_id.clear()
        self._by_identity.clear()
        self._by_public_key.clear()


def log_tail(process: DriverProcess | None, lines: int = 30) -> str:
    if process is None:
        return ""
    try:
        with open(process.log_path, "rb") as log_file:
            log_file.seek(0, 2)
            size = log_file.tell()
            log_file.seek(max(0, size - 16384))
            text = log_file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
