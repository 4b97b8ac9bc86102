"""Moving blob bytes between local files and PostgreSQL chunk rows, one chunk in memory at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg

CHUNK_BYTES = 1 << 20


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
