"""The driver's job threads: as many as jobs need up to the limit, reused, the rest queued."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from driver.protocol import StartJob
from driver.runner import JobThreads

DEADLINE_S = 5.0


def request(job_id: str) -> StartJob:
    return StartJob(job_id=job_id, main_class="x", packages=[], config_json=b"{}")


class Jobs:
    """Jobs that block until released, recording which thread ran each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[str, str] = {}  # job id -> thread name
        self.ended: list[str] = []
        self.threads: dict[str, threading.Thread] = {}  # job id -> its thread
        self.release: dict[str, threading.Event] = {}

    def run(self, start: StartJob) -> None:
        with self.lock:
            self.started[start.job_id] = threading.current_thread().name
            self.threads[start.job_id] = threading.current_thread()
            gate = self.release.setdefault(start.job_id, threading.Event())
        assert gate.wait(DEADLINE_S)
        with self.lock:
            self.ended.append(start.job_id)

    def let_go(self, job_id: str) -> None:
        with self.lock:
            self.release.setdefault(job_id, threading.Event()).set()

    def wait_started(self, *job_ids: str) -> None:
        self._wait_for(job_ids, lambda: set(self.started), "started")

    def wait_ended(self, *job_ids: str) -> None:
        self._wait_for(job_ids, lambda: set(self.ended), "ended")

    def _wait_for(self, job_ids: tuple[str, ...], reached: Callable[[], set[str]], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            with self.lock:
                missing = set(job_ids) - reached()
            if not missing:
                return
            time.sleep(0.001)
        raise AssertionError(f"not {what}: {missing}")


def test_jobs_beyond_the_limit_wait_for_a_thread_and_threads_are_reused() -> None:
    jobs = Jobs()
    threads = JobThreads(jobs.run, limit=2)
    try:
        for job_id in ("a", "b", "c"):
            threads.submit(request(job_id))
        jobs.wait_started("a", "b")
        with jobs.lock:
            assert "c" not in jobs.started  # both threads are busy
        jobs.let_go("a")
        jobs.wait_started("c")
        assert jobs.started["c"] == jobs.started["a"]
        for job_id in ("b", "c"):
            jobs.let_go(job_id)
        jobs.wait_ended("a", "b", "c")
        # Idle threads take the next jobs; no third thread is started.
        for job_id in ("d", "e"):
            jobs.let_go(job_id)
            threads.submit(request(job_id))
        jobs.wait_ended("d", "e")
        assert set(jobs.started.values()) == {"job_0", "job_1"}
    finally:
        threads.close()


def test_one_idle_thread_takes_one_job_and_the_next_gets_a_thread_of_its_own() -> None:
    jobs = Jobs()
    threads = JobThreads(jobs.run, limit=4)
    try:
        jobs.let_go("a")
        threads.submit(request("a"))
        jobs.wait_ended("a")
        threads.submit(request("b"))
        threads.submit(request("c"))  # the idle thread is b's: c must not wait behind b
        jobs.wait_started("b", "c")
        assert jobs.started["b"] != jobs.started["c"]
        for job_id in ("b", "c"):
            jobs.let_go(job_id)
        jobs.wait_ended("b", "c")
    finally:
        threads.close()


def test_closing_drops_jobs_not_started_and_ends_the_threads() -> None:
    jobs = Jobs()
    threads = JobThreads(jobs.run, limit=1)
    threads.submit(request("running"))
    threads.submit(request("queued"))
    jobs.wait_started("running")
    threads.close()
    threads.submit(request("late"))
    jobs.let_go("running")
    jobs.wait_ended("running")
    jobs.threads["running"].join(DEADLINE_S)
    assert not jobs.threads["running"].is_alive()
    assert set(jobs.started) == {"running"}
