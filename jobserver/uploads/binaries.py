"""Uploaded job binaries: typed by Content-Type, checked, stored once per content hash."""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from jobserver.common.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType
from jobserver.common.records import BinaryRecord, BinaryType, utc_now
from jobserver.storage import Store

log = structlog.get_logger(__name__)

ZIP_MAGIC = b"PK\x03\x04"

# sjs-contract §2.1: the media types each binary type is uploaded with
MEDIA_TYPES: dict[str, BinaryType] = {
    "application/java-archive": BinaryType.JAR,
    "application/python-egg": BinaryType.EGG,
    "application/python-archive": BinaryType.EGG,
    "python-archive": BinaryType.EGG,
    "application/python-wheel": BinaryType.WHEEL,
}


class BinaryManager:
    def __init__(self, store: Store, *, blob_dir: Path, max_upload_bytes: int) -> None:
        self._store = store
        self._incoming = blob_dir / "incoming"
        self._max_upload_bytes = max_upload_bytes

    async def upload(self, app_name: str, media_type: str, body: AsyncIterator[bytes]) -> BinaryRecord:
        binary_type = MEDIA_TYPES.get(media_type.split(";", 1)[0].strip().lower())
        if binary_type is None:
            raise UnsupportedMediaType(f"Unsupported binary type {media_type}")
        if not app_name or "/" in app_name or app_name in (".", ".."):
            raise BadRequest(f"invalid binary name {app_name!r}")
        temporary, sha256, size = await self._receive(body)
        try:
            await self._store.put_blob(sha256, temporary)
        finally:
            if temporary.exists():
                temporary.unlink()
        upload_time = await self._next_upload_time(app_name)
        record = await self._store.add_binary_version(app_name, binary_type, sha256, size, upload_time)
        log.info(
            "binary_uploaded", app_name=app_name, binary_type=binary_type.value, sha256=sha256, bytes=size
        )
        return record

    async def _receive(self, body: AsyncIterator[bytes]) -> tuple[Path, str, int]:
        """Stream the body to a temporary file, hashing as it goes; never whole in memory."""
        self._incoming.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=self._incoming, prefix="upload-")
        path = Path(name)
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with os.fdopen(descriptor, "wb") as target:
                async for chunk in body:
                    size += len(chunk)
                    if size > self._max_upload_bytes:
                        raise PayloadTooLarge(f"binary is larger than {self._max_upload_bytes} bytes")
                    if len(head) < len(ZIP_MAGIC):
                        head += chunk[: len(ZIP_MAGIC)]
                    digest.update(chunk)
                    target.write(chunk)
            if size <= len(ZIP_MAGIC) or not head.startswith(ZIP_MAGIC):
                raise BadRequest("Binary is not of the right format")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, digest.hexdigest(), size

    async def _next_upload_time(self, app_name: str) -> datetime.datetime:
        # Versions are ordered by upload time: a re-upload within the same millisecond must still
        # come out strictly later.
        now = utc_now()
        latest = await self._store.latest_binary(app_name)
        if latest is not None and now <= latest.upload_time:
            now = latest.upload_time + datetime.timedelta(milliseconds=1)
        return now

    async def list(self) -> list[BinaryRecord]:
        return await self._store.latest_binaries()

    async def get(self, app_name: str) -> BinaryRecord:
        record = await self._store.latest_binary(app_name)
        if record is None:
            raise NotFound(f"Can't find binary with name {app_name}")
        return record

    async def delete(self, app_name: str) -> None:
        users = await self._store.binary_users(app_name)
        if users:
            raise Forbidden(f"Binary is in use by job(s): {', '.join(users)}")
        if not await self._store.delete_binary(app_name):
            raise NotFound(f"can't find binary with name {app_name}")
        log.info("binary_deleted", app_name=app_name)
