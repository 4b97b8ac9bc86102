"""Uploaded job binaries: typed by Content-Type, checked, stored once per content hash.

Jars, eggs and wheels must be zips. A single Python module (``text/x-python``, binary type
``Python``) must be UTF-8 source that compiles, under a name that is a module name (``name`` or
``name.py``): jobs import it by that name (``mainClass=name:function``).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import keyword
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import structlog

from jobserver.common.bodies import python_source_problem
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
    "text/x-python": BinaryType.PYTHON,
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
        if binary_type is BinaryType.PYTHON and not is_module_name(app_name.removesuffix(".py")):
            raise BadRequest(
                f"a text/x-python binary is imported by its name: {app_name!r} is not a Python module "
                "name, or names a module of Python, pyspark or the job server"
            )
        temporary, sha256, size = await self._receive(body, zip_expected=binary_type is not BinaryType.PYTHON)
        try:
            if binary_type is BinaryType.PYTHON:
                await check_python_source(temporary)
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

    async def _receive(self, body: AsyncIterator[bytes], *, zip_expected: bool) -> tuple[Path, str, int]:
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
            if zip_expected and (size <= len(ZIP_MAGIC) or not head.startswith(ZIP_MAGIC)):
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


# Names a single module may not take: it would replace, in the driver, a module the driver,
# pyspark or the standard library imports.
RESERVED_MODULES = frozenset(sys.stdlib_module_names) | {
    "driver", "sparkjobserver", "jobserver", "jobserver_client", "pyspark", "py4j", "zmq", "msgpack",
    "pyhocon", "pyparsing", "numpy", "pandas", "pyarrow",
}  # fmt: skip
MAX_MODULE_BYTES = 1024 * 1024  # a job's module, not a data file


def is_module_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name not in RESERVED_MODULES


async def check_python_source(path: Path) -> None:
    """A single-module binary must be UTF-8 Python source of at most ``MAX_MODULE_BYTES`` that
    compiles (nothing of it runs; the compile runs in a child with a time and memory limit)."""
    if path.stat().st_size > MAX_MODULE_BYTES:
        limit = f"a single module is at most {MAX_MODULE_BYTES} bytes"
        raise BadRequest(f"Binary is not of the right format: {limit}")
    problem = await python_source_problem(await asyncio.to_thread(path.read_bytes))
    if problem is not None:
        raise BadRequest(f"Binary is not of the right format: {problem}")


async def context_jar_binaries(store: Store, names: Iterable[str]) -> list[BinaryRecord]:
    """The newest version of each uploaded jar a context names among its jars (404 for a name
    nobody uploaded, as in a job's cp; 400 for a binary that is not a jar)."""
    binaries = []
    for name in names:
        binary = await store.latest_binary(name)
        if binary is None:
            raise NotFound(f"appName {name} not found")
        if binary.binary_type is not BinaryType.JAR:
            raise BadRequest(
                f"binary {name} is a {binary.binary_type.value}, not a jar: a context's jars are jars"
            )
        binaries.append(binary)
    return binaries


async def place_jar_files(store: Store, binaries: Iterable[BinaryRecord], folder: Path) -> dict[str, Path]:
    """Each binary as ``<folder>/<sha256>.jar`` (a hard link to the blob where the file system
    allows it, else a copy), so that its file outlives a deletion of the binary while the context
    runs, and carries the name Spark expects of a jar."""
    files = {}
    for binary in binaries:
        blob = await store.blob_file(binary.sha256)
        target = folder / f"{binary.sha256}.jar"
        if not target.exists():
            await asyncio.to_thread(_link_or_copy, blob, target)
        files[binary.app_name] = target
    return files


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    partial.replace(target)
