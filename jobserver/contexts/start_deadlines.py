"""The deadlines of a context's start, and which one a start missed.

spark-jobserver bounded a forked driver's start twice (sjs-contract §3.2, §4.1): the JVM had
``forked-jvm-init-timeout`` to join the cluster, then the context ``context-init-timeout`` to
answer its initialisation. Here a driver joins by connecting back over the bus (``Hello``), and
its Spark starts after that, so the two deadlines are: connected within ``forked-jvm-init-timeout``
of the launch, running within ``context-init-timeout`` of connecting. The server's
``context-creation-timeout`` bounds the whole start whatever a context's own settings say.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobserver.common.context_settings import StartDeadlines

CONNECT_TIMEOUT_MESSAGE = "Context failed to connect back within initialization time"


def init_timeout_message(init_s: float) -> str:
    return f"Context failed to initialize within context-init-timeout ({init_s:g} s)"


def creation_timeout_message(creation_s: float) -> str:
    return f"Context did not start within context-creation-timeout ({creation_s:g} s)"


async def missed_deadline(
    ready: asyncio.Future[Any], connected: asyncio.Event, deadlines: StartDeadlines, creation_s: float
) -> str | None:
    """Wait for the start; None once it is over in time (up, or failed otherwise), else the error
    message of the deadline it missed."""
    loop = asyncio.get_running_loop()
    creation_end = loop.time() + creation_s
    if not await _done_by(min(loop.time() + deadlines.connect_s, creation_end), ready, connected):
        return CONNECT_TIMEOUT_MESSAGE if not connected.is_set() else creation_timeout_message(creation_s)
    if ready.done():
        return None
    init_end = min(loop.time() + deadlines.init_s, creation_end)
    if await _done_by(init_end, ready):
        return None
    if init_end == creation_end:
        return creation_timeout_message(creation_s)
    return init_timeout_message(deadlines.init_s)


async def _done_by(
    deadline: float, ready: asyncio.Future[Any], connected: asyncio.Event | None = None
) -> bool:
    """Whether ``ready`` is done (or ``connected`` set) before the loop's clock reaches ``deadline``."""
    waiters: list[asyncio.Future[Any]] = [ready]
    connecting = None
    if connected is not None:
        connecting = asyncio.ensure_future(connected.wait())
        waiters.append(connecting)
    timeout_s = max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if connecting is not None:
            connecting.cancel()
    return bool(done)
