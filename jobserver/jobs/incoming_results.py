"""Results on their way in from the drivers.

A result larger than ``result-chunk-size`` comes as ``JobResultChunk`` messages and then a
``JobFinished`` (whose part is empty from drivers of this release). Each chunk is appended to a
spool file (0600, under ``<work-dir>/result-spool``) as it arrives, and only then acknowledged
(``JobResultChunkAck``), which the driver waits for before it sends the next: the server holds
one chunk of a result at a time whatever the result's size, and writes it from the frame it came
in (no copy); the spool becomes the stored result when the job finishes (``Store.finish_job``)
and is removed once stored, or as soon as it never will be (the job killed or failed, its context
gone, the result over ``max-result-size``). A spool left by a crash is removed at the next start:
the driver holds its report until it is acknowledged and sends it again.

``JobResultSize`` says how large the whole result is; a result whose parts do not add up to that
(a chunk lost on the way) ends the job in ERROR (``ResultIncomplete``) rather than being stored
cut. A driver that rejoins sends its held reports again from their first chunk, so what had come
of them before is dropped (``restart``).

A result in one message (the common case) never touches a file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from driver.protocol import result_too_large
from jobserver.common.config import Settings
from jobserver.common.errors import error_map
from jobserver.storage.results import FileResult, ResultSpool, ResultSpools

log = structlog.get_logger(__name__)

SPOOL_FOLDER = "result-spool"


class ResultTooLarge(Exception):
    def __init__(self, size_bytes: int, max_bytes: int) -> None:
        self.error = result_too_large(size_bytes, max_bytes)
        super().__init__(self.error["message"])


class ResultIncomplete(Exception):
    def __init__(self, received_bytes: int, expected_bytes: int) -> None:
        self.error = error_map(
            f"Job result arrived incomplete: {received_bytes} of its {expected_bytes} bytes reached the"
            " server (a part was lost on the way from the driver); run the job again",
            "ResultIncomplete",
        )
        super().__init__(self.error["message"])


@dataclass(eq=False)
class _Incoming:
    context_id: str
    spool: ResultSpool
    result: FileResult | None = None  # once its last part is in
    expected_bytes: int = -1  # the whole result's size, as the driver said (-1: not said)


class IncomingResults:
    def __init__(self, settings: Settings) -> None:
        self._spools = ResultSpools(settings.work_dir / SPOOL_FOLDER)
        removed = self._spools.clear()  # the server starts: nothing is in transit
        if removed:
            log.info("result_spools_removed", count=removed)
        self._max_bytes = settings.max_result_bytes
        self._incoming: dict[str, _Incoming] = {}
        self._refused: dict[str, int] = {}  # job id -> bytes seen, once over the limit

    async def add_chunk(self, context_id: str, job_id: str, data: bytes | memoryview) -> int:
        """Append a chunk to the job's spool (or count it, when the result is refused); how many
        bytes of the result have come so far."""
        if job_id in self._refused:
            self._refused[job_id] += len(data)
            return self._refused[job_id]
        incoming = self._incoming.get(job_id)
        if incoming is None or incoming.result is not None:  # a report sent again starts over
            self.discard(job_id)
            spool = await asyncio.to_thread(self._spools.open, job_id)
            incoming = self._incoming[job_id] = _Incoming(context_id, spool)
        size_bytes = incoming.spool.size_bytes + len(data)
        if size_bytes > self._max_bytes:
            self.discard(job_id)
            self._refused[job_id] = size_bytes
            log.warning("job_result_refused", job_id=job_id, size_bytes=size_bytes, max_bytes=self._max_bytes)
            return size_bytes
        await asyncio.to_thread(incoming.spool.append, data)
        return size_bytes

    def expect(self, job_id: str, size_bytes: int) -> None:
        """The driver's word on the whole result's size (``JobResultSize``, before its end)."""
        incoming = self._incoming.get(job_id)
        if incoming is not None and incoming.result is None:
            incoming.expected_bytes = size_bytes

    async def complete(self, job_id: str, last: bytes) -> bytes | FileResult:
        """The whole result, given its last part: ``last`` itself when it came in one message,
        else the spool (the same one again when asked again: a store outage retries). Raises
        ResultTooLarge, or ResultIncomplete when the parts do not add up to the size the driver
        said (a driver of an earlier release says none: not checked)."""
        refused = self._refused.pop(job_id, None)
        incoming = self._incoming.get(job_id)
        if refused is None and incoming is None:
            if len(last) > self._max_bytes:
                raise ResultTooLarge(len(last), self._max_bytes)
            return last
        if refused is not None:
            raise ResultTooLarge(refused + len(last), self._max_bytes)
        assert incoming is not None
        if incoming.result is None:
            if incoming.spool.size_bytes + len(last) > self._max_bytes:
                self.discard(job_id)
                raise ResultTooLarge(incoming.spool.size_bytes + len(last), self._max_bytes)
            received_bytes, expected_bytes = incoming.spool.size_bytes + len(last), incoming.expected_bytes
            if expected_bytes >= 0 and received_bytes != expected_bytes:
                self.discard(job_id)
                log.warning(
                    "job_result_incomplete", job_id=job_id, received_bytes=received_bytes,
                    expected_bytes=expected_bytes,
                )  # fmt: skip
                raise ResultIncomplete(received_bytes, expected_bytes)
            await asyncio.to_thread(incoming.spool.append, last)
            incoming.result = incoming.spool.complete()
        return incoming.result

    def restart(self, job_ids: set[str]) -> None:
        """A rejoined driver sends these jobs' reports again from the start: drop what had come
        of them and is not complete (a complete one is being stored; its next chunk starts over)."""
        for job_id in job_ids:
            incoming = self._incoming.get(job_id)
            if incoming is not None and incoming.result is None:
                self.discard(job_id)

    def discard(self, job_id: str) -> None:
        """The job's spool is stored, or never will be: its file goes (a reader that holds the
        result still reads it to the end)."""
        self._refused.pop(job_id, None)
        incoming = self._incoming.pop(job_id, None)
        if incoming is not None:
            incoming.spool.discard()

    def discard_context(self, context_id: str) -> None:
        for job_id in [job_id for job_id, held in self._incoming.items() if held.context_id == context_id]:
            self.discard(job_id)

    def spool_files(self) -> list[str]:
        return self._spools.listing()
