"""What each job prints or logs, captured per job and sent to the server in batches (``JobLog``).

Jobs run on threads of one pool in one process, so ``sys.stdout`` and ``sys.stderr`` are shared:
they become proxies that look up the calling thread and, when it runs a job, add what it writes to
that job's lines (and still write it to the driver's own output, the context's log). A handler on
the root logger does the same for Python ``logging`` records made on a job's thread (by the thread
that made them: ``record.thread``), leaving out the driver's own loggers. What a job's own helper
threads write is not the job's (it stays in the context's log): threads carry no job.

Spark's log4j lines are not captured: log4j does not know of Python threads, and its lines carry no
job group; they stay in the context's log (``GET /contexts/<name>/logs``).

A job's lines go out when ``batch_lines`` of them are waiting (sent by the job's thread) or when
the oldest has waited ``batch_interval_s`` (sent by the main loop's tick), and the rest just before
the job's outcome, from its thread, so the server has every line before it learns the job ended.
A batch also goes once its lines hold 256 Ki characters (lines are cut at 16 Ki), so no batch
comes near the bus's frame limit. A job that prints nothing costs two dictionary operations.
Beyond ``max_lines`` a job's lines are dropped, after one marker line saying so.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from driver.protocol import JobLog, Message

# Loggers of the driver itself (and py4j's chatter): theirs are not the job's lines.
_OWN_LOGGERS = ("driver", "py4j")
_LINE_CHARS = 16_384  # a longer line is cut: one line must not make a frame of its own size
# A batch also goes once its lines hold this many characters: the server refuses frames beyond a
# result chunk plus 1 MiB, and 500 long lines would make one.
_BATCH_CHARS = 256 * 1024


def truncation_marker(max_lines: int) -> str:
    return f"[jobserver] log truncated after {max_lines} lines (spark.jobserver.job-logs.max-lines)"


class _Capture:
    """One job's lines not sent yet; changed under ``JobOutput``'s lock."""

    __slots__ = ("chars", "job_id", "lines", "numbered", "partial", "truncated", "waiting_since")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.partial = ""  # text after the last newline
        self.lines: list[str] = []
        self.chars = 0  # in the unsent lines
        self.numbered = 0  # lines taken so far, sent or not
        self.waiting_since = 0.0  # when the oldest unsent line came
        self.truncated = False


class JobOutput:
    def __init__(
        self,
        post: Callable[[Message], None],
        *,
        max_lines: int,
        batch_lines: int,
        batch_interval_s: float,
    ) -> None:
        self._post = post
        self._max_lines = max(max_lines, 0)
        self._batch_lines = max(batch_lines, 1)
        self._batch_interval_s = batch_interval_s
        self._lock = threading.Lock()
        # thread ident -> capture of the job it runs (plain dict operations: atomic under the GIL)
        self._by_thread: dict[int, _Capture] = {}
        self._waiting: dict[str, _Capture] = {}  # captures holding unsent lines, by job id

    def install(self) -> None:
        """Put the proxies in place of sys.stdout/sys.stderr and the handler on the root logger."""
        if not isinstance(sys.stdout, _ThreadStream):
            sys.stdout = _ThreadStream(sys.stdout, self)
        if not isinstance(sys.stderr, _ThreadStream):
            sys.stderr = _ThreadStream(sys.stderr, self)
        root = logging.getLogger()
        if not any(isinstance(handler, _JobLogHandler) for handler in root.handlers):
            root.addHandler(_JobLogHandler(self))

    def begin(self, job_id: str) -> None:
        """On the job's thread: what it writes from now on is the job's."""
        self._by_thread[threading.get_ident()] = _Capture(job_id)

    def end(self) -> None:
        """On the job's thread, before its outcome is sent: the rest of its lines go out now."""
        capture = self._by_thread.pop(threading.get_ident(), None)
        if capture is None or not (capture.lines or capture.partial):
            return
        with self._lock:
            if capture.partial:
                self._take(capture, capture.partial)
                capture.partial = ""
            self._send(capture)

    def write(self, text: str) -> None:
        """From a proxy: ``text`` counts for the calling thread's job, if it runs one."""
        capture = self._by_thread.get(threading.get_ident())
        if capture is not None and text:
            self.add(capture, text)

    def add(self, capture: _Capture, text: str) -> None:
        with self._lock:
            *complete, capture.partial = (capture.partial + text).split("\n")
            for line in complete:
                self._take(capture, line)
            # A line is cut at _LINE_CHARS anyway: output without newlines holds no more than that.
            capture.partial = capture.partial[:_LINE_CHARS]
            if len(capture.lines) >= self._batch_lines or capture.chars >= _BATCH_CHARS:
                self._send(capture)

    def capture_of(self, thread_ident: int | None) -> _Capture | None:
        return self._by_thread.get(thread_ident) if thread_ident is not None else None

    def send_due(self, now: float) -> float | None:
        """From the main loop's tick: send batches that waited long enough; when to look again."""
        if not self._waiting:
            return None
        next_due: float | None = None
        with self._lock:
            for capture in list(self._waiting.values()):
                due_in = capture.waiting_since + self._batch_interval_s - now
                if due_in <= 0:
                    self._send(capture)
                else:
                    next_due = due_in if next_due is None else min(next_due, due_in)
        return next_due

    def _take(self, capture: _Capture, line: str) -> None:
        """Under the lock."""
        if capture.numbered >= self._max_lines:
            if capture.truncated:
                return
            capture.truncated = True
            line = truncation_marker(self._max_lines)
        if not capture.lines:
            capture.waiting_since = time.monotonic()
            self._waiting[capture.job_id] = capture
        line = line[:_LINE_CHARS].rstrip("\r")
        capture.lines.append(line)
        capture.chars += len(line)
        capture.numbered += 1

    def _send(self, capture: _Capture) -> None:
        """Under the lock, so that a job's batches leave in order."""
        if not capture.lines:
            return
        lines, capture.lines, capture.chars = capture.lines, [], 0
        self._waiting.pop(capture.job_id, None)
        self._post(JobLog(job_id=capture.job_id, first_line=capture.numbered - len(lines), lines=lines))


class _ThreadStream:
    """sys.stdout or sys.stderr: everything goes to the original; a job thread's text also to its
    job's lines."""

    def __init__(self, original: TextIO, output: JobOutput) -> None:
        self._original = original
        self._output = output

    def write(self, text: str) -> int:
        self._output.write(text)
        return self._original.write(text)

    def flush(self) -> None:
        self._original.flush()

    def __getattr__(self, name: str) -> object:  # encoding, fileno, isatty, buffer, …
        return getattr(self._original, name)


class _JobLogHandler(logging.Handler):
    def __init__(self, output: JobOutput) -> None:
        super().__init__(logging.NOTSET)
        self._output = output
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        capture = self._output.capture_of(record.thread)
        if capture is None or record.name.split(".", 1)[0] in _OWN_LOGGERS:
            return
        try:
            self._output.add(capture, self.format(record) + "\n")
        except Exception:
            self.handleError(record)
