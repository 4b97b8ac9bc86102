"""Server-Sent Events (``text/event-stream``): one event per ``write``, sent at once."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def open_event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold the events back
        }
    )
    await response.prepare(request)
    return response


async def send_event(
    response: web.StreamResponse, event: str, data: Any, *, event_id: int | None = None
) -> None:
    """``data`` as JSON on one line (a string as itself: a log line holds no newline)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    await response.write(f"{head}event: {event}\ndata: {text}\n\n".encode())
