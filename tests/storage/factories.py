"""Records and uploads for the storage tests."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

from jobserver.common.records import BinaryRecord, BinaryType, ContextRecord, JobRecord, from_epoch_ms
from jobserver.common.states import ContextState, JobState
from jobserver.storage import Store

BASE_MS = 1_700_000_000_000


def at(offset_ms: int) -> datetime.datetime:
    return from_epoch_ms(BASE_MS + offset_ms)


def make_job(
    job_id: str,
    *,
    start_ms: int = 0,
    state: JobState = JobState.STARTED,
    context_id: str = "ctx-1",
    binary_ids: tuple[int, ...] = (),
    end_ms: int | None = None,
) -> JobRecord:
    return JobRecord(
        id=job_id,
        context_id=context_id,
        context_name="shared",
        class_path="jobs.WordCount",
        state=state,
        start_time=at(start_ms),
        end_time=None if end_ms is None else at(end_ms),
        binary_ids=binary_ids,
    )


def make_context(
    context_id: str,
    *,
    name: str = "shared",
    start_ms: int = 0,
    state: ContextState = ContextState.STARTED,
    end_ms: int | None = None,
    owner: str | None = None,
) -> ContextRecord:
    return ContextRecord(
        id=context_id,
        name=name,
        config={"num-cpu-cores": 2},
        state=state,
        start_time=at(start_ms),
        end_time=None if end_ms is None else at(end_ms),
        owner=owner,
    )


async def put_bytes(store: Store, tmp_path: Path, content: bytes) -> str:
    """Put ``content`` as a blob from a fresh temporary file; returns its hash."""
    sha256 = hashlib.sha256(content).hexdigest()
    source = tmp_path / f"upload-{hashlib.md5(content).hexdigest()}-{len(list(tmp_path.iterdir()))}"
    source.write_bytes(content)
    await store.put_blob(sha256, source)
    assert not source.exists()
    return sha256


async def upload(
    store: Store, tmp_path: Path, app_name: str, content: bytes, upload_ms: int = 0
) -> BinaryRecord:
    sha256 = await put_bytes(store, tmp_path, content)
    return await store.add_binary_version(app_name, BinaryType.WHEEL, sha256, len(content), at(upload_ms))
