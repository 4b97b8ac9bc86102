"""The driver reports JobStarted only for a job still running 5 ms after it was handed over, and
never for one refused while loading; a short job costs one message and no wake-up of the loop."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driver import runner as runner_module
from driver.protocol import JobFailed, JobFinished, JobStarted, Message, StartJob
from driver.runner import JobRunner
from driver.spark import SESSION, SparkHandle

JOBS = """
import time
from sparkjobserver.native import ValidationError

class Job:
    def validate(self, spark, config):
        time.sleep(config.get("validate_s", 0))
        if config.get("refuse", False):
            raise ValidationError("refused")
        return config

    def run(self, spark, data, env):
        time.sleep(data.get("run_s", 0))
        return "done"
"""


class StandInContext:
    def setJobGroup(self, group_id: str, description: str, interrupt: bool) -> None:
        pass


class Loop:
    """The driver's main loop as far as the runner sees it: posts, wake-ups and ticks."""

    def __init__(self) -> None:
        self.posted: list[Message] = []
        self.wakes = 0
        self.lock = threading.Lock()

    def post(self, message: Message) -> None:
        with self.lock:
            self.posted.append(message)

    def wake(self) -> None:
        self.wakes += 1

    def kinds(self, job_id: str = "job-1") -> list[str]:
        with self.lock:
            return [message.TYPE for message in self.posted if getattr(message, "job_id", None) == job_id]

    def messages(self, job_id: str = "job-1") -> list[Message]:
        with self.lock:
            return [message for message in self.posted if getattr(message, "job_id", None) == job_id]


@pytest.fixture
def jobs_module(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "announce_jobs.py").write_text(textwrap.dedent(JOBS))
    sys.path.insert(0, str(tmp_path))
    yield "announce_jobs.Job"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("announce_jobs", None)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[JobRunner, Loop]]:
    loop = Loop()
    context = StandInContext()
    spark = SparkHandle(kind=SESSION, session=context, spark_context=context)
    job_runner = JobRunner(
        spark,
        loop.post,
        loop.wake,
        max_jobs=2,
        context_config={},
        package_dir=tmp_path / "packages",
        result_chunk_bytes=1 << 20,
    )
    yield job_runner, loop
    job_runner.shutdown(1.0)


def start(job_runner: JobRunner, job_id: str, main_class: str, config: dict) -> None:
    config_json = json.dumps(config).encode()
    job_runner.start(StartJob(job_id=job_id, main_class=main_class, packages=[], config_json=config_json))


def run(job_runner: JobRunner, loop: Loop, main_class: str, config: dict, job_id: str = "job-1") -> None:
    """Hand the job over, then tick as the main loop does (every millisecond) until it ends."""
    start(job_runner, job_id, main_class, config)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not {"job_finished", "job_failed"} & set(loop.kinds(job_id)):
        job_runner.announce_started(time.monotonic())
        time.sleep(0.001)


@pytest.fixture
def warm(runner: tuple[JobRunner, Loop], jobs_module: str) -> tuple[JobRunner, Loop, str]:
    """The runner after a first job: imports done, as in a context that has run jobs."""
    job_runner, loop = runner
    run(job_runner, loop, jobs_module, {}, job_id="warm-up")
    loop.wakes = 0
    return job_runner, loop, jobs_module


def announce_after(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Time scales far from what a test on a busy machine could miss."""
    monkeypatch.setattr(runner_module, "ANNOUNCE_AFTER_S", seconds)


def test_a_short_job_is_reported_once_without_waking_the_loop(warm, monkeypatch) -> None:
    job_runner, loop, jobs = warm
    announce_after(monkeypatch, 2.0)
    run(job_runner, loop, jobs, {})
    assert loop.kinds() == ["job_finished"] and isinstance(loop.messages()[0], JobFinished)
    assert loop.wakes == 0


def test_a_long_job_is_announced_before_its_outcome(warm, monkeypatch) -> None:
    job_runner, loop, jobs = warm
    announce_after(monkeypatch, 0.05)
    run(job_runner, loop, jobs, {"run_s": 0.5})
    assert loop.kinds() == ["job_started", "job_finished"]
    assert isinstance(loop.messages()[0], JobStarted) and loop.wakes == 0


def test_a_job_that_validates_past_its_due_time_is_announced_once_it_runs(warm, monkeypatch) -> None:
    job_runner, loop, jobs = warm
    announce_after(monkeypatch, 0.05)
    start(job_runner, "job-1", jobs, {"validate_s": 0.5, "run_s": 0.5})
    time.sleep(0.1)
    assert job_runner.announce_started(time.monotonic()) is None  # validating: not announced, no timer
    assert loop.kinds() == []
    deadline = time.monotonic() + 5
    while loop.wakes == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert loop.wakes == 1  # it started running late: the loop is woken to announce it
    job_runner.announce_started(time.monotonic())
    assert loop.kinds() == ["job_started"]
    run_until = time.monotonic() + 5
    while "job_finished" not in loop.kinds() and time.monotonic() < run_until:
        time.sleep(0.01)
    assert loop.kinds() == ["job_started", "job_finished"]


def test_a_job_refused_while_validating_is_never_announced(warm, monkeypatch) -> None:
    job_runner, loop, jobs = warm
    announce_after(monkeypatch, 0.05)
    run(job_runner, loop, jobs, {"validate_s": 0.2, "refuse": True})
    assert loop.kinds() == ["job_failed"]
    failed = loop.messages()[0]
    assert isinstance(failed, JobFailed) and failed.kind == "validation"
    assert job_runner.announce_started(time.monotonic()) is None
