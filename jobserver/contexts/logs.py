"""A context's driver log (``<work-dir>/logs/<context id>.log``: spark-submit, Spark's log4j, the
driver and its jobs' output), paged by line as Livy pages a session's log. A context that ended
keeps its log: retention (``dao-cleanup-after``) removes a log last written before its cut-off
once its context no longer runs on this server, as it removes the context's record."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from pathlib import Path

from jobserver.common.records import LogPage
from jobserver.contexts.manager import ContextManager

DEFAULT_PAGE_LINES = 100


class ContextLogs:
    def __init__(self, log_dir: Path, contexts: ContextManager) -> None:
        self._log_dir = log_dir
        self._contexts = contexts

    async def page(self, name: str, start: int | None, size: int | None) -> LogPage:
        """The newest context of that name (NotFound when none): ``size`` lines from ``start``,
        the last ``size`` lines when ``start`` is None."""
        record = await self._contexts.get(name)
        path = self._log_dir / f"{record.id}.log"
        return await asyncio.to_thread(read_page, path, start, DEFAULT_PAGE_LINES if size is None else size)

    async def remove_expired(self, older_than_s: float) -> int:
        """Remove the logs last written more than ``older_than_s`` ago of contexts this server
        does not run (a context idle that long keeps its log); how many."""
        candidates = await asyncio.to_thread(_written_before, self._log_dir, time.time() - older_than_s)
        expired = [path for path in candidates if self._contexts.live(path.stem) is None]
        for path in expired:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)
        return len(expired)


def _written_before(folder: Path, cutoff: float) -> list[Path]:
    paths = []
    for path in folder.glob("*.log"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                paths.append(path)
    return paths


def read_page(path: Path, start: int | None, size: int) -> LogPage:
    """One pass over the file, holding only the lines asked for (a driver log may be large)."""
    size = max(size, 0)
    total = 0
    kept: collections.deque[str] | list[str] = collections.deque(maxlen=size) if start is None else []
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as lines:
            for line in lines:
                if start is None or start <= total < start + size:
                    kept.append(line.rstrip("\r\n"))
                total += 1
    except FileNotFoundError:
        pass
    first = max(total - len(kept), 0) if start is None else start
    return LogPage(start=first, total=total, lines=list(kept))
