"""What the context domain tells the job domain: the one way the two talk upward.

The ContextManager knows nothing of jobs beyond this interface; the job domain implements it and
is connected once, when the server is wired together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from driver.protocol import Message
from jobserver.common.errors import ErrorMap
from jobserver.contexts.live import LiveContext


@dataclass(frozen=True, slots=True)
class ContextEnding:
    """A context ended (or began to): its unfinished jobs become ERROR with ``job_error``."""

    job_error: ErrorMap


class ContextEvents(Protocol):
    async def on_job_report(self, context: LiveContext, report: Message) -> None:
        """A driver's report about one of its jobs (JobStarted, a result chunk, its end)."""

    async def on_context_ended(self, context: LiveContext, ending: ContextEnding) -> None: ...

    async def on_context_restarting(self, context: LiveContext, reason: str) -> None:
        """Supervise: the driver died and another will be launched; what it ran runs again then."""

    async def on_context_restarted(self, context: LiveContext) -> None: ...

    def on_context_released(self, context: LiveContext) -> None:
        """Another server took the context over: what this one kept about its jobs goes (the
        jobs themselves are the other server's now)."""

    async def on_driver_rejoined(
        self, context: LiveContext, running_job_ids: list[str], held_job_ids: list[str]
    ) -> None:
        """After a restart of the server: what the driver runs, and the final reports it holds."""


class EventRelay:
    """Hands every event to the listener connected once, when the server is wired together (a
    server without one, such as a test's, ignores what happens to jobs)."""

    def __init__(self) -> None:
        self._listener: ContextEvents | None = None

    def connect(self, listener: ContextEvents) -> None:
        if self._listener is not None:
            raise RuntimeError("a listener of context events is connected already")
        self._listener = listener

    async def on_job_report(self, context: LiveContext, report: Message) -> None:
        if self._listener is not None:
            await self._listener.on_job_report(context, report)

    async def on_context_ended(self, context: LiveContext, ending: ContextEnding) -> None:
        if self._listener is not None:
            await self._listener.on_context_ended(context, ending)

    async def on_context_restarting(self, context: LiveContext, reason: str) -> None:
        if self._listener is not None:
            await self._listener.on_context_restarting(context, reason)

    async def on_context_restarted(self, context: LiveContext) -> None:
        if self._listener is not None:
            await self._listener.on_context_restarted(context)

    def on_context_released(self, context: LiveContext) -> None:
        if self._listener is not None:
            self._listener.on_context_released(context)

    async def on_driver_rejoined(
        self, context: LiveContext, running_job_ids: list[str], held_job_ids: list[str]
    ) -> None:
        if self._listener is not None:
            await self._listener.on_driver_rejoined(context, running_job_ids, held_job_ids)
