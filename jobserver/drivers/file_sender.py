"""Files for drivers that cannot read the server's: job packages (by sha256) and data files (by
name), streamed over the bus in chunks, each answered with BlobData frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from driver.protocol import BlobData, FetchBlob, FetchDataFile, Message
from jobserver.common.errors import JobServerError
from jobserver.drivers.bus import BusError

log = structlog.get_logger(__name__)

Reply = Callable[[Message], None]


class FileSender:
    """``blob_file`` gives a blob's local file (KeyError when there is none); ``data_file`` a data
    file's path by name (None when there is none)."""

    def __init__(
        self,
        *,
        blob_file: Callable[[str], Awaitable[Path]],
        data_file: Callable[[str], Path | None],
        chunk_bytes: int,
    ) -> None:
        self._blob_file = blob_file
        self._data_file = data_file
        self._chunk_bytes = chunk_bytes

    async def send(self, reply: Reply, request: FetchBlob | FetchDataFile) -> None:
        """Answer ``request`` through ``reply`` (the asking driver's send)."""
        try:
            path = await self._locate(request)
            with open(path, "rb") as source:
                while True:
                    data = await asyncio.to_thread(source.read, self._chunk_bytes)
                    last = len(data) < self._chunk_bytes
                    reply(BlobData(request_id=request.request_id, data=data, last=last))
                    if last:
                        break
        except (KeyError, OSError, JobServerError, BusError) as error:
            log.warning("file_not_sent", request_id=request.request_id, error=str(error))
            failure = BlobData(
                request_id=request.request_id, data=b"", last=True, error=f"not available: {error}"
            )
            with contextlib.suppress(BusError):
                reply(failure)

    async def _locate(self, request: FetchBlob | FetchDataFile) -> Path:
        if isinstance(request, FetchBlob):
            return await self._blob_file(request.sha256)
        path = self._data_file(request.name)
        if path is None:
            raise KeyError(f"no data file {request.name}")
        return path
