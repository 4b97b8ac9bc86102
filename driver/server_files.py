"""Files of the job server that a job needs on this driver's host: package bytes and data files.

A driver that shares the server's host reads the server's own files. One on another host asks for
them over the bus (``FetchBlob``, ``FetchDataFile``); the server answers with ``BlobData`` parts,
which the main loop hands to the job thread waiting for them.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from driver.jobbase import JobRejected
from driver.protocol import FAILURE_LOADING, BlobData, FetchBlob, FetchDataFile, Message

# How long a job waits for the next part of a file it fetches from the server.
DOWNLOAD_TIMEOUT_S = 60.0


class ServerFiles:
    def __init__(self, post: Callable[[Message], None], *, folder: Path) -> None:
        self._post = post
        self._folder = folder  # the context's own working folder for what it fetches
        self._lock = threading.Lock()
        self._downloads: dict[str, queue.SimpleQueue[BlobData]] = {}  # request id -> its parts

    def data_file(self, name: str) -> str:
        """A local path of a data file (``JobEnvironment.data_file``): the server's own file when
        this driver shares its host, else a copy fetched over the bus once."""
        given = Path(name)
        if given.is_absolute() and given.is_file():
            return str(given)
        folder = self._folder / "data"
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / given.name
        if not local.exists():
            self._download(FetchDataFile(request_id=uuid.uuid4().hex, name=name), local, given.name)
        return str(local)

    def download_blob(self, sha256: str, target: Path, what: str) -> None:
        """Fetch the bytes of the binary with this sha256 into ``target`` (unchecked)."""
        self._download(FetchBlob(request_id=uuid.uuid4().hex, sha256=sha256), target, what)

    def _download(self, request: FetchBlob | FetchDataFile, target: Path, what: str) -> None:
        """Ask the server for a file's bytes over the bus and write them to ``target``; raises
        JobRejected when they do not come."""
        request_id = request.request_id
        arrivals: queue.SimpleQueue[BlobData] = queue.SimpleQueue()
        with self._lock:
            self._downloads[request_id] = arrivals
        partial = target.with_suffix(".part")
        try:
            self._post(request)
            with open(partial, "wb") as output:
                while True:
                    try:
                        part = arrivals.get(timeout=DOWNLOAD_TIMEOUT_S)
                    except queue.Empty:
                        message = f"{what} did not arrive within {DOWNLOAD_TIMEOUT_S:.0f} s"
                        raise JobRejected(FAILURE_LOADING, message) from None
                    if part.error:
                        raise JobRejected(FAILURE_LOADING, part.error)
                    output.write(part.data)
                    if part.last:
                        break
            partial.replace(target)
        finally:
            with self._lock:
                self._downloads.pop(request_id, None)
            partial.unlink(missing_ok=True)

    def on_blob_data(self, part: BlobData) -> None:
        """Called by the main loop: hand a part of a download to the job thread waiting for it."""
        with self._lock:
            arrivals = self._downloads.get(part.request_id)
        if arrivals is not None:
            arrivals.put(part)
