"""A context's run-time state on the server: its driver process, bus identity, slots and queue."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from driver.protocol import StartJob
from jobserver.common.records import ContextRecord
from jobserver.drivers.processes import DriverProcess


@dataclass(eq=False)
class LiveContext:
    """What the server knows at run time about a context whose driver it launched."""

    record: ContextRecord
    token: str
    process: DriverProcess | None = None
    identity: bytes | None = None
    last_seen: float = field(default_factory=time.monotonic)
    ready: asyncio.Future[ContextRecord] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    end_reason: str | None = None  # why the driver is being ended, when the server ends it
    job_ids: set[str] = field(default_factory=set)  # jobs sent to the driver, holding its slots
    # Jobs waiting for a slot, first come first served, with what to send when one frees.
    queue: collections.OrderedDict[str, StartJob] = field(default_factory=collections.OrderedDict)
    named_objects: list[dict[str, str]] = field(default_factory=list)  # as the driver last said
    killed_at: dict[str, float] = field(default_factory=dict)  # killed jobs the driver still runs
    stuck_job_ids: set[str] = field(default_factory=set)  # … for longer than kill-grace
    # Launched by an earlier server process; its driver has not rejoined this one yet.
    awaiting_rejoin: bool = False
    rejoined: asyncio.Event = field(default_factory=asyncio.Event)  # … and now it has
    restarts: int = 0  # supervise mode: relaunches so far

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name


@dataclass(frozen=True, slots=True)
class StopResult:
    finished: bool  # False: the stop goes on in the background (HTTP 202)


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
