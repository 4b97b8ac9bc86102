"""Files for drivers that cannot read the server's: job packages (by sha256) and data files (by
name), streamed over the bus in chunks, each answered with BlobData frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog

from driver.protocol import BlobData, FetchBlob, FetchDataFile, Message
from jobserver.bus import BusError
from jobserver.datafiles import DataFiles
from jobserver.errors import JobServerError
from jobserver.live import LiveContext
from jobserver.storage import Store

log = structlog.get_logger(__name__)

Send = Callable[[LiveContext, Message], None]


class FileSender:
    def __init__(self, store: Store, data: DataFiles, send: Send, *, chunk_bytes: int) -> None:
        self._store = store
        self._data = data
        self._send = send
        self._chunk_bytes = chunk_bytes

    async def send(self, live: LiveContext, request: FetchBlob | FetchDataFile) -> None:
        try:
            path = await self._locate(request)
            with open(path, "rb") as source:
                while True:
                    data = await asyncio.to_thread(source.read, self._chunk_bytes)
                    last = len(data) < self._chunk_bytes
                    self._send(live, BlobData(request_id=request.request_id, data=data, last=last))
                    if last:
                        break
        except (KeyError, OSError, JobServerError, BusError) as error:
            log.warning("file_not_sent", context_id=live.id, request_id=request.request_id, error=str(error))
            failure = BlobData(
                request_id=request.request_id, data=b"", last=True, error=f"not available: {error}"
            )
            with contextlib.suppress(BusError):
                self._send(live, failure)

    async def _locate(self, request: FetchBlob | FetchDataFile) -> Path:
        if isinstance(request, FetchBlob):
            return await self._store.blob_file(request.sha256)
        path = self._data.path_of(request.name)
        if path is None:
            raise KeyError(f"no data file {request.name}")
        return path
