"""The driver's job threads as the server sees them: a killed job still unwinding does not hold up
the next job, a driver that stops reports its running jobs killed, and each end is logged once
the server has it (or when the driver stops without that)."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from driver.protocol import JobFinished, JobKilled, Message, StartJob
from driver.runner import ANNOUNCE_AFTER_S, JobRunner
from driver.spark import SESSION, SparkHandle
from tests.support import wait_for

JOBS = """
import threading
import time

STARTED = {}  # job id -> set once the job runs its own code


def sleeping(spark, config, env):
    STARTED.setdefault(env.job_id, threading.Event()).set()
    time.sleep(config["sleep_s"])  # in C: a kill takes effect only when it returns
    return "slept"


def looping(spark, config, env):
    STARTED.setdefault(env.job_id, threading.Event()).set()
    while True:
        time.sleep(0.01)


def quick(spark, config):
    return "quick"
"""


class StandInContext:
    def setJobGroup(self, group_id: str, description: str, interrupt: bool) -> None:
        pass

    def cancelJobGroup(self, group_id: str) -> None:
        pass


class Posted:
    """What the runner sends toward the server, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        with self._lock:
            self._messages.append(message)

    def outcomes(self) -> list[Message]:
        with self._lock:
            return [message for message in self._messages if isinstance(message, JobFinished | JobKilled)]


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[ModuleType]:
    (tmp_path / "thread_jobs.py").write_text(textwrap.dedent(JOBS))
    sys.path.insert(0, str(tmp_path))
    import thread_jobs  # type: ignore[import-not-found]

    yield thread_jobs
    sys.path.remove(str(tmp_path))
    sys.modules.pop("thread_jobs", None)


def make_runner(tmp_path: Path, posted: Posted, *, max_jobs: int) -> JobRunner:
    context = StandInContext()
    return JobRunner(
        SparkHandle(kind=SESSION, session=context, spark_context=context),
        posted,
        lambda: None,
        max_jobs=max_jobs,
        announce_after_s=ANNOUNCE_AFTER_S,
        context_config={},
        package_dir=tmp_path / "packages",
        result_chunk_bytes=1 << 20,
    )


def start(runner: JobRunner, job_id: str, function: str, config: dict[str, object] | None = None) -> None:
    config_json = json.dumps(config or {}).encode()
    runner.start(
        StartJob(job_id=job_id, main_class=f"thread_jobs:{function}", packages=[], config_json=config_json)
    )


def test_a_killed_job_still_unwinding_does_not_hold_up_the_next_job(tmp_path: Path, jobs: ModuleType) -> None:
    posted = Posted()
    runner = make_runner(tmp_path, posted, max_jobs=1)
    try:
        start(runner, "killed", "sleeping", {"sleep_s": 1.0})
        wait_for(lambda: "killed" in jobs.STARTED, timeout_s=10, what="the first job running")
        runner.kill("killed")  # the server frees its one slot at once and sends the next job
        start(runner, "next", "quick")
        wait_for(lambda: len(posted.outcomes()) == 2, timeout_s=10, what="both outcomes")
        assert posted.outcomes() == [
            JobFinished(
                job_id="next",
                result=b'"quick"',
            ),
            JobKilled(job_id="killed"),
        ]
    finally:
        runner.shutdown(5.0)


def test_a_stopping_driver_reports_its_running_jobs_killed(tmp_path: Path, jobs: ModuleType) -> None:
    posted = Posted()
    runner = make_runner(tmp_path, posted, max_jobs=2)
    start(runner, "first", "looping")
    start(runner, "second", "looping")
    wait_for(lambda: {"first", "second"} <= set(jobs.STARTED), timeout_s=10, what="both jobs running")
    assert runner.shutdown(5.0) == []
    assert sorted(posted.outcomes(), key=str) == [JobKilled(job_id="first"), JobKilled(job_id="second")]
    assert runner.running_job_ids() == []


def test_a_jobs_end_is_logged_once_the_server_has_it_or_when_it_is_late_or_at_the_drivers_stop(
    tmp_path: Path, jobs: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="driver.runner")
    posted = Posted()
    runner = make_runner(tmp_path, posted, max_jobs=1)

    def ends() -> list[str]:
        return [message for message in caplog.messages if "ended" in message]

    try:
        for count, job_id in enumerate(("job-1", "job-2", "job-3"), start=1):
            start(runner, job_id, "quick")
            wait_for(lambda n=count: len(posted.outcomes()) == n, timeout_s=10, what="its report")
            if job_id == "job-2":
                sent_by = time.monotonic()
        assert ends() == []
        runner.on_acknowledged("job-1")  # the server stored the first report
        assert ends() == ["job job-1 ended: job_finished"]
        runner.note_unacknowledged(sent_by)  # the second is late (no server, or its store down)
        assert ends()[1:] == ["job job-2 ended: job_finished (not acknowledged yet)"]
    finally:
        runner.shutdown(5.0)
    assert ends()[2:] == ["job job-3 ended: job_finished (not acknowledged)"]
