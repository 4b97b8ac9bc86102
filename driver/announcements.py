"""Which jobs the driver reports as started: those still running a short while after hand-over.

A job that ends within ``after_s`` of being handed to the runner is reported once, by its outcome
alone: one message instead of two for every short job. A longer one gets a ``JobStarted`` first,
once it is loaded and validated (never before: a job refused while loading or validating was
never running). The main loop sends the announcements on its ticks, so a job's thread wakes it
only for a job whose announcement fell due while it was still loading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from driver.protocol import JobStarted, Message


class StartAnnouncements:
    def __init__(self, post: Callable[[Message], None], wake: Callable[[], None], *, after_s: float) -> None:
        self._post = post
        self._wake = wake  # makes the main loop call announce_due soon
        self._after_s = after_s
        self._lock = threading.Lock()
        self._handed_over: dict[str, float] = {}  # job id -> when, until announced or ended
        self._running: set[str] = set()  # of those, the jobs that are loaded and validated

    def handed_over(self, job_id: str) -> None:
        """Called by the main loop as it hands the job over; its next tick sees when the
        announcement may be due, so nobody needs to wake it for that."""
        with self._lock:
            self._handed_over[job_id] = time.monotonic()

    def running(self, job_id: str) -> None:
        """Called by the job's thread once the job is loaded and validated."""
        with self._lock:  # the clock is read under the lock: a tick that skipped this job came before
            self._running.add(job_id)
            handed_over = self._handed_over.get(job_id)
            late = handed_over is not None and handed_over + self._after_s <= time.monotonic()
        if late:  # its announcement fell due while it loaded: the main loop sends it now
            self._wake()

    def ended(self, job_id: str) -> None:
        """Called by the job's thread before it reports the outcome: no announcement after this."""
        with self._lock:
            self._handed_over.pop(job_id, None)
            self._running.discard(job_id)

    def announce_due(self, now: float) -> float | None:
        """Send JobStarted for the running jobs that are due (called by the main loop); returns
        the seconds until the next one falls due, if any job is waiting for its announcement."""
        next_due: float | None = None
        with self._lock:
            for job_id, handed_over in list(self._handed_over.items()):
                due_in = handed_over + self._after_s - now
                if due_in > 0:
                    next_due = due_in if next_due is None else min(next_due, due_in)
                elif job_id in self._running:
                    del self._handed_over[job_id]
                    self._running.discard(job_id)
                    # Posted under the lock: the job's outcome (see ended) cannot go before it.
                    self._post(JobStarted(job_id=job_id))
                # else: still loading or validating; running() wakes the loop once it runs
        return next_due
