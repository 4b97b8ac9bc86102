"""A context's driver log read by line (Livy's paging) and its retention (jobserver.contexts.logs)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

from jobserver.common.records import LogPage
from jobserver.contexts.logs import ContextLogs, read_page
from jobserver.contexts.manager import ContextManager


def test_a_log_is_paged_by_line_and_the_last_lines_by_default(tmp_path: Path) -> None:
    log = tmp_path / "context.log"
    log.write_text("".join(f"line {index}\r\n" for index in range(5)))
    assert read_page(log, None, 2) == LogPage(start=3, total=5, lines=["line 3", "line 4"])
    assert read_page(log, 1, 2) == LogPage(start=1, total=5, lines=["line 1", "line 2"])
    assert read_page(log, 4, 100) == LogPage(start=4, total=5, lines=["line 4"])
    assert read_page(log, 9, 100) == LogPage(start=9, total=5, lines=[])
    assert read_page(log, None, 100) == LogPage(start=0, total=5, lines=[f"line {i}" for i in range(5)])
    assert read_page(tmp_path / "never-written.log", None, 10) == LogPage(start=0, total=0, lines=[])


class RunningOnly:
    """The one question retention asks the context manager: does this context run here?"""

    def __init__(self, *running: str) -> None:
        self._running = set(running)

    def live(self, context_id: str) -> object | None:
        return object() if context_id in self._running else None


async def test_old_logs_of_contexts_that_no_longer_run_are_removed(tmp_path: Path) -> None:
    long_ago = time.time() - 3600
    for name in ("ended-long-ago", "idle-but-running", "ended-recently"):
        (tmp_path / f"{name}.log").write_text("x\n")
    for name in ("ended-long-ago", "idle-but-running"):
        os.utime(tmp_path / f"{name}.log", (long_ago, long_ago))
    logs = ContextLogs(tmp_path, cast(ContextManager, RunningOnly("idle-but-running")))

    assert await logs.remove_expired(600) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ended-recently.log", "idle-but-running.log"]
