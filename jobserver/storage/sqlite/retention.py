"""Retention for the SQLite store: deleting old finished jobs and contexts, and unused blob files.

Runs on the store's worker thread, like every other use of the connection and the blob folder, so
no ``add_binary_version`` can slip in between deciding that a blob is unused and deleting it.
"""

from __future__ import annotations

import sqlite3
import time

from jobserver.common.states import FINAL_CONTEXT_STATES, FINAL_JOB_STATES
from jobserver.storage.base import BLOB_GRACE_PERIOD_S
from jobserver.storage.blobs import BlobFolder
from jobserver.storage.sqlite.connection import placeholders, transaction

_FINAL_JOB_STATES = tuple(state.value for state in FINAL_JOB_STATES)
_FINAL_CONTEXT_STATES = tuple(state.value for state in FINAL_CONTEXT_STATES)


# Jobs deleted per transaction: the store has one writer thread, and other writes (job states,
# results) wait behind each batch, so a large backlog must not be one long transaction.
JOB_BATCH_SIZE = 500


def delete_expired_jobs_batch(
    connection: sqlite3.Connection, before_ms: int, limit: int = JOB_BATCH_SIZE
) -> int:
    with transaction(connection):
        # foreign_keys=ON: ON DELETE CASCADE takes each job's config, result and class path entries.
        return connection.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
            f" WHERE state IN ({placeholders(len(_FINAL_JOB_STATES))}) AND end_time < ? LIMIT ?)",
            (*_FINAL_JOB_STATES, before_ms, limit),
        ).rowcount


def delete_expired(
    connection: sqlite3.Connection,
    blobs: BlobFolder,
    before_ms: int,
    *,
    blob_grace_s: float = BLOB_GRACE_PERIOD_S,
) -> dict[str, int]:
    """Contexts and blobs; jobs go first, in batches (``delete_expired_jobs_batch``)."""
    with transaction(connection):
        contexts = connection.execute(
            f"DELETE FROM contexts WHERE state IN ({placeholders(len(_FINAL_CONTEXT_STATES))})"
            " AND end_time < ?",
            (*_FINAL_CONTEXT_STATES, before_ms),
        ).rowcount
    return {
        "contexts": contexts,
        "blobs": _delete_unused_blobs(connection, blobs, blob_grace_s),
    }


def _delete_unused_blobs(connection: sqlite3.Connection, blobs: BlobFolder, grace_s: float) -> int:
    """Delete the blob files no binary version references whose modification time is at least
    ``grace_s`` old (BlobFolder.adopt sets it whenever a blob is put, new or not)."""
    oldest_kept = time.time() - grace_s
    deleted = 0
    for sha256, modified in list(blobs.listing()):
        if modified >= oldest_kept:
            continue
        if connection.execute("SELECT 1 FROM binaries WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone():
            continue
        blobs.discard([sha256])
        deleted += 1
    return deleted
