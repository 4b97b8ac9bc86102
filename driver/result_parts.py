"""A large result's parts, paced by the server: no more than one chunk's worth on its way.

A result larger than ``result-chunk-size`` goes as ``JobResultChunk`` messages. Sent as fast as
the driver makes them, they would queue in the server (ZeroMQ takes a driver's frames until its
receive queue is full) while it writes each to its spool. So the parts are a quarter of a chunk,
and a part leaves only when the server has put away (``JobResultChunkAck``) all but a chunk's
worth of what went before it: the server holds at most one chunk of a result at a time, whatever
the result's size and however slow its disk, while four parts keep the way busy (one part in
flight would leave the driver, the bus and the disk each waiting for the others).

The job's own thread waits, in short steps so that a kill still lands in it. A server that says
nothing for ``wait_s`` (one of an earlier release, or one that is gone: the link holds the parts
and sends them again to the server it rejoins) is not waited for again until it answers: the parts
go unpaced, as before, and the bus's receive queue bounds what the server holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from driver.protocol import JobResultChunk, Message

log = logging.getLogger("driver.result_parts")

# How long a part waits for the server's word on the parts before it.
PUT_AWAY_WAIT_S = 10.0
# A chunk's worth is on its way in this many parts.
PARTS_PER_CHUNK = 4
# A waiting thread looks again this often: a kill's exception lands between two looks.
_STEP_S = 0.1


class _Progress:
    """How much of one result the server has put away (set by the main loop)."""

    def __init__(self) -> None:
        self.put_away_bytes = 0
        self.changed = threading.Event()


class ResultParts:
    def __init__(self, post: Callable[[Message], None], *, wait_s: float = PUT_AWAY_WAIT_S) -> None:
        self._post = post
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._sending: dict[str, _Progress] = {}  # job id -> its result's progress, while it goes
        self._paced = True  # until a server leaves a part unanswered for wait_s

    def send(self, job_id: str, payload: bytes, chunk_bytes: int) -> None:
        """Send ``payload`` in parts, with at most ``chunk_bytes`` of it not yet put away."""
        part_bytes = max(chunk_bytes // PARTS_PER_CHUNK, 1)
        progress = _Progress()
        with self._lock:
            self._sending[job_id] = progress
        try:
            view = memoryview(payload)
            for offset in range(0, len(payload), part_bytes):
                part = view[offset : offset + part_bytes]
                self._wait_put_away(job_id, progress, offset + len(part) - chunk_bytes)
                self._post(JobResultChunk(job_id=job_id, data=part))
        finally:
            with self._lock:
                self._sending.pop(job_id, None)

    def put_away(self, job_id: str, received_bytes: int) -> None:
        """The server's word (``JobResultChunkAck``, on the main loop): ``received_bytes`` of the
        job's result are in its spool."""
        self._paced = True  # a server that answers (again: one rejoined after an outage)
        with self._lock:
            progress = self._sending.get(job_id)
        if progress is not None:
            progress.put_away_bytes = received_bytes
            progress.changed.set()

    def _wait_put_away(self, job_id: str, progress: _Progress, needed_bytes: int) -> None:
        """Until the server has put ``needed_bytes`` of the result away (or gives no word)."""
        if needed_bytes <= 0:
            return
        deadline = time.monotonic() + self._wait_s
        while self._paced:
            progress.changed.clear()  # before the look: a word after it sets it again
            # A restarted server takes the parts again from the first, so its count starts over:
            # the latest word counts, not the largest.
            if progress.put_away_bytes >= needed_bytes:
                return
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                self._paced = False
                log.warning(
                    "no word from the server on job %s's result parts for %.0f s: the rest go unpaced",
                    job_id,
                    self._wait_s,
                )
                return
            progress.changed.wait(min(left_s, _STEP_S))
