"""Data files (/data): uploaded once, read by jobs by name, kept inside one folder.

Every name that comes from a request is reduced to a single path component inside the data
folder before it touches the file system, so no request can read, write or delete outside it.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog

from jobserver.common.errors import BadRequest, PayloadTooLarge
from jobserver.common.records import utc_now
from jobserver.common.timeformat import job_time

log = structlog.get_logger(__name__)

_FORBIDDEN_CHARACTERS = frozenset("\0\n\r")
# File names may have 255 bytes; the upload time and suffix take about 40 of them.
MAX_NAME_BYTES = 255
MAX_PREFIX_BYTES = 200


class DataFiles:
    def __init__(
        self, data_dir: Path, *, max_upload_bytes: int, clock: Callable[[], datetime.datetime] = utc_now
    ) -> None:
        self._dir = data_dir
        self._max_upload_bytes = max_upload_bytes
        self._clock = clock  # an upload's time is in its file's name

    def list(self) -> list[str]:
        if not self._dir.is_dir():
            return []
        return sorted(
            str(path) for path in self._dir.iterdir() if path.is_file() and not path.name.startswith(".")
        )

    async def store(self, prefix: str, body: AsyncIterator[bytes]) -> str:
        """Save the body as ``<data dir>/<prefix>-<upload time>.dat`` and return that path."""
        self._dir.mkdir(parents=True, exist_ok=True)
        base = _safe_component(prefix)
        if base is None or len(base.encode()) > MAX_PREFIX_BYTES:
            raise BadRequest(f"Failed to store data file '{prefix}'.")
        name = f"{base}-{job_time(self._clock()).replace(':', '_')}.dat"
        descriptor, temporary = tempfile.mkstemp(dir=self._dir, prefix=".upload-")
        size = 0
        try:
            with os.fdopen(descriptor, "wb") as target:
                async for chunk in body:
                    size += len(chunk)
                    if size > self._max_upload_bytes:
                        raise PayloadTooLarge(f"data file is larger than {self._max_upload_bytes} bytes")
                    target.write(chunk)
            final = self._claim(name, Path(temporary))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        log.info("data_file_stored", file=str(final), bytes=size)
        return str(final)

    def _claim(self, name: str, temporary: Path) -> Path:
        """Give the upload its final name without replacing a file that has it already (two
        uploads of one prefix in the same millisecond get ``…-1.dat``, ``…-2.dat``)."""
        stem = name.removesuffix(".dat")
        for attempt in range(1000):
            final = self._dir / (name if attempt == 0 else f"{stem}-{attempt}.dat")
            try:
                os.link(temporary, final)  # fails if the name is taken, unlike a rename
            except FileExistsError:
                continue
            temporary.unlink()
            return final
        raise BadRequest(f"Failed to store data file '{name}'.")

    def delete(self, filename: str) -> None:
        path = self._resolve(filename)
        if path is None or not path.is_file():
            raise BadRequest(f"Unable to delete data file '{filename}'.")
        path.unlink()
        log.info("data_file_deleted", file=str(path))

    def path_of(self, filename: str) -> Path | None:
        path = self._resolve(filename)
        return path if path is not None and path.is_file() else None

    def reset(self) -> None:
        if self._dir.exists():
            shutil.rmtree(self._dir)
        self._dir.mkdir(parents=True, exist_ok=True)

    def _resolve(self, filename: str) -> Path | None:
        # Accept the full path GET /data lists, or the bare name; anything else is refused.
        root = self._dir.resolve()
        candidate = Path(filename)
        if candidate.is_absolute() and candidate.parent.resolve() != root:
            return None
        name = _safe_component(candidate.name)
        return root / name if name is not None else None


def _safe_component(text: str) -> str | None:
    """The last path component of ``text`` if it is a plain file name, else None (also when it is
    longer than a file name may be: the file system would refuse to even look it up)."""
    name = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", "..") or name.startswith(".") or _FORBIDDEN_CHARACTERS & set(name):
        return None
    if len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES:
        return None
    return name
