"""Results that arrived in chunks, for the PostgreSQL store: chunk rows of ``job_result_chunks``
(like blobs: postgres/blobs.py), written one chunk at a time in the transaction that finishes the
job, and read back one row per query, so that neither side holds a result whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg

from jobserver.storage.results import FileResult, ResultReadError, ResultStream

_SAVE_LARGE_RESULT = (
    "INSERT INTO job_results (job_id, result, chunk_count, size_bytes) VALUES (%s, '', %s, %s)"
    " ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result,"
    " chunk_count = EXCLUDED.chunk_count, size_bytes = EXCLUDED.size_bytes"
)


async def store_chunks(connection: psycopg.AsyncConnection[Any], job_id: str, result: FileResult) -> None:
    """Insert ``result`` as the job's result and chunk rows. The caller holds the transaction."""
    await connection.execute("DELETE FROM job_result_chunks WHERE job_id = %s", (job_id,))
    await connection.execute(_SAVE_LARGE_RESULT, (job_id, 0, result.size_bytes))  # the chunks' parent
    seq = 0
    async for data in result.chunks():
        await connection.execute(
            "INSERT INTO job_result_chunks (job_id, seq, data) VALUES (%s, %s, %s)", (job_id, seq, data)
        )
        seq += 1
    await connection.execute("UPDATE job_results SET chunk_count = %s WHERE job_id = %s", (seq, job_id))


class ChunkRowsResult(ResultStream):
    """A stored result's chunk rows, fetched one per query (``fetch(seq)``), so that a slow reader
    holds no connection of the pool between chunks."""

    def __init__(
        self, size_bytes: int, chunk_count: int, fetch: Callable[[int], Awaitable[bytes | None]]
    ) -> None:
        self.size_bytes = size_bytes
        self._chunk_count = chunk_count
        self._fetch = fetch

    async def chunks(self) -> AsyncIterator[bytes]:
        for seq in range(self._chunk_count):
            data = await self._fetch(seq)
            if data is None:
                raise ResultReadError(f"result chunk {seq} of {self._chunk_count} is gone (job deleted?)")
            yield data
