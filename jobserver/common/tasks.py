"""The server's background work, owned in one place, and the one way a failing write is retried.

Timers (a context's start timeout, a relaunch after its backoff, the wait for drivers to rejoin),
retries, callbacks and file transfers run as tasks of one ``BackgroundTasks``, which the server
creates at start and closes at stop: whatever is still running then is cancelled and awaited, so
no task outlives the store or the bus it uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

from jobserver.common.errors import StoreUnavailable

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coroutine: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        if self._closed:
            coroutine.close()
            raise RuntimeError(f"background work {name} started after the server stopped")
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_work_failed", task=task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Cancel what is still running and wait until it has ended."""
        self._closed = True
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.info("background_work_cancelled", count=len(pending))


async def retry_while_store_unavailable(
    operation: Callable[[], Awaitable[_T]],
    *,
    what: str,
    limit_s: float,
    delay_first: bool = False,
    first_delay_s: float = 0.5,
    max_delay_s: float = 10.0,
) -> _T:
    """Run ``operation`` until the store takes it, waiting longer after each outage (doubling up
    to ``max_delay_s``) for at most ``limit_s`` in all; then the last StoreUnavailable is raised.
    Errors other than an outage are not retried. ``delay_first``: the caller has just tried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    delay_s = first_delay_s
    if delay_first:
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, max_delay_s)
    while True:
        try:
            return await operation()
        except StoreUnavailable as error:
            if loop.time() + delay_s > deadline:
                log.error("store_retry_abandoned", what=what, limit_s=limit_s, error=error.message)
                raise
            log.warning("store_retry_scheduled", what=what, delay_s=delay_s, error=error.message)
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, max_delay_s)
