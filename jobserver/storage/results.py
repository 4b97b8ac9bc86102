"""Results too large to hold in memory: spooled to a file as their chunks arrive, stored as a file
(SQLite) or as chunk rows (PostgreSQL), and read back chunk by chunk.

A result is ``bytes`` when it came in one message (most results: the fast path stays as it was),
or a ``ResultStream`` when it came in chunks. A ``ResultStream`` yields its bytes one chunk at a
time, as often as asked (an HTTP answer, a callback's attempts), so no code above the store ever
joins it.

A spooled or stored result file is read through a file descriptor opened once, with ``pread``:
readers at different offsets do not disturb each other, and the file may be renamed (stored) or
unlinked (spool discarded, retention) under them. The descriptor closes when the last holder
drops the object, which is when the disk space of an unlinked file is given back.

The methods that touch files block; callers run them off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

# How much of a file one read takes: a quarter of a result chunk (1 MiB by default), so that a
# reader and the socket it writes to hold less than one chunk between them.
READ_BYTES = 256 << 10


class ResultStream(abc.ABC):
    """A result's JSON bytes, chunk by chunk, never whole in memory."""

    size_bytes: int

    @abc.abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes from the first, in chunks of at most about ``READ_BYTES``; again per call."""


Result = bytes | ResultStream


class ResultReadError(Exception):
    """A stored result's bytes are gone or short (deleted while it was read)."""


class FileResult(ResultStream):
    """A result in a file, read through the descriptor ``fd`` (which this object now owns)."""

    def __init__(
        self, fd: int, size_bytes: int, *, sha256: str = "", path: Path | None = None, spool: bool = False
    ) -> None:
        self.size_bytes = size_bytes
        self.sha256 = sha256  # of the bytes; "" when not known
        self.path = path  # where the file was when it was opened
        self.spool = spool  # a result in transit, whose file goes once it is stored (discard_spooled)
        self._fd = fd
        weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, path: Path, sha256: str = "") -> FileResult:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return cls(fd, os.fstat(fd).st_size, sha256=sha256, path=path)

    async def chunks(self) -> AsyncIterator[bytes]:
        offset = 0
        while offset < self.size_bytes:
            data = await asyncio.to_thread(
                os.pread, self._fd, min(READ_BYTES, self.size_bytes - offset), offset
            )
            if not data:
                raise ResultReadError(f"result file ended at {offset} of {self.size_bytes} bytes")
            offset += len(data)
            yield data

    def read_all(self) -> bytes:
        """For the small files of tests and tools only."""
        return os.pread(self._fd, self.size_bytes, 0)

    def copy_to(self, target: Path) -> None:
        """Write the whole file to ``target`` (blocking), one read's worth at a time."""
        with open(target, "wb") as out:
            offset = 0
            while data := os.pread(self._fd, READ_BYTES, offset):
                out.write(data)
                offset += len(data)


class ResultSpool:
    """One result's chunks as they arrive, in a file only the server's user can read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size_bytes = 0
        self._hash = hashlib.sha256()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._closed = False

    def append(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._hash.update(data)
        self.size_bytes += len(data)

    def complete(self) -> FileResult:
        """The spool as a result; its descriptor goes to the result, which outlives the file
        (``discard`` it once stored)."""
        self._closed = True
        return FileResult(
            self._fd, self.size_bytes, sha256=self._hash.hexdigest(), path=self.path, spool=True
        )

    def discard(self) -> None:
        """Given up (killed, failed, too large): the file goes at once."""
        self.path.unlink(missing_ok=True)
        if not self._closed:
            self._closed = True
            os.close(self._fd)


class ResultSpools:
    """The folder of results in transit (under the work dir): emptied at start, since a spool
    left by a crash belongs to a report its driver sends again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def clear(self) -> int:
        """Create the folder (0700) and remove what a previous process left; how many files."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        removed = 0
        for entry in self.folder.iterdir():
            entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def open(self, job_id: str) -> ResultSpool:
        return ResultSpool(self.folder / f"{uuid.uuid4().hex}.{_safe(job_id)}.spool")

    def listing(self) -> list[str]:
        return sorted(entry.name for entry in self.folder.iterdir()) if self.folder.is_dir() else []


def discard_spooled(result: Result) -> None:
    """Remove the spool file of a spooled result (stored, or never to be); bytes need nothing."""
    if isinstance(result, FileResult) and result.spool and result.path is not None:
        result.path.unlink(missing_ok=True)


def _safe(job_id: str) -> str:
    return "".join(char if char.isalnum() or char == "-" else "_" for char in job_id)[:64]
