"""Results that came in chunks (a spool file), checked on every backend: stored without the spool,
read back chunk by chunk and byte for byte, answered from the spool while a finish is held, and
deleted with their job by retention."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from jobserver.common.states import JobState
from jobserver.storage import Store
from jobserver.storage.base import BLOB_GRACE_PERIOD_S
from jobserver.storage.results import READ_BYTES, FileResult, ResultSpools, ResultStream, discard_spooled
from jobserver.storage.write_behind import WriteBehindStore
from tests.storage.conftest import Backend
from tests.storage.factories import at, make_job

DATA = random.Random(3).randbytes(2 * READ_BYTES + 12_345)  # three chunks, the last one short


def spooled(folder: Path, data: bytes = DATA) -> FileResult:
    spools = ResultSpools(folder)
    spools.clear()
    spool = spools.open("job-1")
    for start in range(0, len(data), 100_000):  # as chunks arrive: not aligned with the reads
        spool.append(data[start : start + 100_000])
    return spool.complete()


async def read_chunks(result: object) -> list[bytes]:
    assert isinstance(result, ResultStream)
    return [chunk async for chunk in result.chunks()]


async def test_a_spooled_result_is_stored_and_read_back_in_chunks_without_its_spool(
    store: Store, tmp_path: Path
) -> None:
    await store.insert_job(make_job("job-1"), {})
    result = spooled(tmp_path / "spool")
    record = await store.finish_job("job-1", result)
    assert record is not None and record.state is JobState.FINISHED
    discard_spooled(result)
    del result
    assert not any((tmp_path / "spool").iterdir())

    chunks = await read_chunks(await store.get_result("job-1"))
    assert b"".join(chunks) == DATA
    assert max(map(len, chunks)) <= READ_BYTES
    assert b"".join(await read_chunks(await store.get_result("job-1"))) == DATA  # again, whole


async def test_a_held_large_finish_is_read_from_its_spool_even_once_the_file_is_gone(
    backend: Backend, tmp_path: Path
) -> None:
    held_store = WriteBehindStore(backend.new_store(), enabled=True)
    await held_store.open()
    try:
        job = make_job("job-1")
        await held_store.insert_job(job, {})
        result = spooled(tmp_path / "spool")
        held = await held_store.hold_finish(job, result)
        assert held is not None
        reader = await held_store.get_result("job-1")
        assert isinstance(reader, FileResult)
        assert b"".join(await read_chunks(reader)) == DATA
        stored = await held.write()
        assert stored is not None and stored.state is JobState.FINISHED
        discard_spooled(result)  # stored: the spool goes, and a reader that holds it reads on
        assert b"".join(await read_chunks(reader)) == DATA
        assert b"".join(await read_chunks(await held_store.get_result("job-1"))) == DATA
    finally:
        await held_store.close()


async def test_retention_deletes_a_large_result_with_its_job(
    store: Store, backend: Backend, tmp_path: Path
) -> None:
    await store.insert_job(make_job("old", start_ms=-1000), {})
    result = spooled(tmp_path / "spool")
    await store.finish_job("old", result, end_time=at(-500))
    discard_spooled(result)
    result_files = backend.blob_dir.parent / "results"
    for path in result_files.glob("*"):  # SQLite: the file ages past the grace period
        moment = time.time() - BLOB_GRACE_PERIOD_S - 1
        os.utime(path, (moment, moment))

    counts = await store.delete_expired(at(0))

    assert counts["jobs"] == 1
    assert await store.get_result("old") is None
    if backend.dialect == "sqlite":
        assert not [path for path in result_files.iterdir() if not path.name.startswith(".")]
    else:
        assert backend.row_count("job_result_chunks") == 0
