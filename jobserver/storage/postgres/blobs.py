"""Blobs in PostgreSQL: moving their bytes between local files and chunk rows, one chunk in memory
at a time, and deleting the blobs no binary version references."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg

CHUNK_BYTES = 1 << 20
# The database's clock, so that servers with skewed clocks agree on the age of a blob.
NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


async def store_blob(connection: psycopg.AsyncConnection[Any], sha256: str, source: Path) -> None:
    """Insert the blob from ``source`` unless it is there already. The caller holds a transaction."""
    # Claiming the hash first makes a concurrent put of the same bytes wait for this one and then
    # find the blob there. A blob put again is stamped anew, so that retention spares it until the
    # caller has added the version that references it. Only this transaction can see the chunk
    # count -1 of a row it inserted.
    cursor = await connection.execute(
        f"INSERT INTO blobs (sha256, size_bytes, chunk_count, created_at) VALUES (%s, 0, -1, {NOW_MS})"
        " ON CONFLICT (sha256) DO UPDATE SET created_at = EXCLUDED.created_at RETURNING chunk_count",
        (sha256,),
    )
    claimed = await cursor.fetchone()
    if claimed is None or claimed[0] >= 0:
        return
    size_bytes, chunk_count = await copy_file_in(connection, sha256, source)
    # Its age counts from now: copying a large file in may have taken a while.
    await connection.execute(
        f"UPDATE blobs SET size_bytes = %s, chunk_count = %s, created_at = {NOW_MS} WHERE sha256 = %s",
        (size_bytes, chunk_count, sha256),
    )


async def delete_unused_blobs(connection: psycopg.AsyncConnection[Any], *, grace_s: float) -> list[str]:
    """Delete the blobs (and their chunks) that no binary version references and that were put at
    least ``grace_s`` ago; returns their hashes."""
    # A put_blob stamping the row concurrently holds its lock; this statement then waits and
    # re-checks created_at against the new stamp, so the blob stays.
    cursor = await connection.execute(
        f"DELETE FROM blobs WHERE created_at < {NOW_MS} - %s"
        " AND NOT EXISTS (SELECT 1 FROM binaries WHERE binaries.sha256 = blobs.sha256) RETURNING sha256",
        (round(grace_s * 1000),),
    )
    return [row[0] for row in await cursor.fetchall()]


async def copy_file_in(
    connection: psycopg.AsyncConnection[Any], sha256: str, source: Path
) -> tuple[int, int]:
    """Insert ``source`` as the chunk rows of ``sha256``; returns (size in bytes, chunk count).
    The caller holds the transaction that also writes the ``blobs`` row."""
    size_bytes = 0
    chunk_count = 0
    with await asyncio.to_thread(source.open, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            await connection.execute(
                "INSERT INTO blob_chunks (sha256, seq, data) VALUES (%s, %s, %s)",
                (sha256, chunk_count, chunk),
            )
            size_bytes += len(chunk)
            chunk_count += 1
    return size_bytes, chunk_count


async def export_blob(connection: psycopg.AsyncConnection[Any], sha256: str, target: Path) -> None:
    """Write the chunks of ``sha256`` to ``target`` (removed again if anything fails)."""
    try:
        with await asyncio.to_thread(target.open, "wb") as file:
            cursor = connection.cursor()
            # stream() fetches row by row, so only one chunk is in memory.
            async for (data,) in cursor.stream(
                "SELECT data FROM blob_chunks WHERE sha256 = %s ORDER BY seq", (sha256,)
            ):
                await asyncio.to_thread(file.write, data)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
