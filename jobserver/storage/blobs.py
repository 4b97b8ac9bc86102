"""A folder of content-addressed blob files ``<folder>/<sha256>``.

SQLite keeps its blobs here; PostgreSQL keeps them in the database and uses a folder as the cache
that ``blob_file`` hands out. The methods block (file system calls): run them off the event loop.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def check_sha256(sha256: str) -> str:
    """``sha256`` when it is 64 lower-case hex digits. Blob hashes become file names, so anything
    else (``../``, upper case that would store the same bytes twice) is refused."""
    if not _SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"not a lower-case hex sha256: {sha256!r}")
    return sha256


class BlobFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.folder / check_sha256(sha256)

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def existing(self, sha256: str) -> Path:
        """The blob's file; KeyError when it is not here (or ``sha256`` is no hash at all)."""
        try:
            path = self.path_of(sha256)
        except ValueError as error:
            raise KeyError(sha256) from error
        if not path.is_file():
            raise KeyError(sha256)
        return path

    def partial_path(self, sha256: str) -> Path:
        """A unique temporary name next to the blob, for writing it before ``os.replace``."""
        return self.folder / f".{check_sha256(sha256)}.{uuid.uuid4().hex}.partial"

    def adopt(self, sha256: str, source: Path) -> None:
        """Move ``source`` in as the blob; when the blob is here already, just remove ``source``.
        Either way the blob's modification time becomes now: retention spares young blobs, whose
        binary version the caller is about to add."""
        target = self.path_of(sha256)
        if target.exists():
            os.utime(target)
            source.unlink(missing_ok=True)
            return
        self._move_in(source, target, sha256)
        os.utime(target)

    def _move_in(self, source: Path, target: Path, sha256: str) -> None:
        try:
            os.replace(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            # The temporary file is on another file system: copy it next to the target first so
            # that the blob appears whole or not at all.
            partial = self.partial_path(sha256)
            try:
                shutil.copyfile(source, partial)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            source.unlink()

    def listing(self) -> Iterator[tuple[str, float]]:
        """The hash and modification time (epoch seconds) of every blob here; partial files and
        anything else not named by a hash are left out."""
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not _SHA256_HEX.fullmatch(entry.name):
                    continue
                try:
                    if entry.is_file():
                        yield entry.name, entry.stat().st_mtime
                except FileNotFoundError:  # deleted meanwhile
                    continue

    def discard(self, hashes: Iterable[str]) -> None:
        for sha256 in hashes:
            self.path_of(sha256).unlink(missing_ok=True)
