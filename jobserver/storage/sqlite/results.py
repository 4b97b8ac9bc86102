"""Results that arrived in chunks, for the SQLite store: a file in the results folder named by the
sha256 of its bytes (``BlobFolder``), which the ``job_results`` row names. Functions of the worker
thread (they block on the file system)."""

from __future__ import annotations

import os
import sqlite3
import time

from jobserver.storage.base import BLOB_GRACE_PERIOD_S
from jobserver.storage.blobs import BlobFolder
from jobserver.storage.results import FileResult


def keep_file(folder: BlobFolder, result: FileResult) -> str:
    """Put ``result`` in ``folder`` under its hash (a hard link of the spool when it can, a copy
    otherwise), stamped now so that retention spares it until its row is written; its name."""
    target = folder.path_of(result.sha256)
    if target.exists():
        os.utime(target)
        return result.sha256
    partial = folder.partial_path(result.sha256)
    try:
        try:
            if result.path is None:
                raise FileNotFoundError("no path")
            os.link(result.path, partial)
        except OSError:  # another file system, or the spool is gone: copy what the descriptor reads
            result.copy_to(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    os.utime(target)
    return result.sha256


def open_file(folder: BlobFolder, name: str) -> FileResult | None:
    """The result file ``name``; None when it is gone (its job deleted since its row was read)."""
    try:
        return FileResult.open(folder.path_of(name), name)
    except FileNotFoundError:
        return None


def delete_unused_files(connection: sqlite3.Connection, folder: BlobFolder) -> int:
    """Delete the result files no row names that are older than the grace period (a file is put
    before the row that names it is written); how many."""
    oldest_kept = time.time() - BLOB_GRACE_PERIOD_S
    named = {
        name
        for (name,) in connection.execute("SELECT result_file FROM job_results WHERE result_file IS NOT NULL")
    }
    unused = [name for name, modified in folder.listing() if modified < oldest_kept and name not in named]
    folder.discard(unused)
    return len(unused)
