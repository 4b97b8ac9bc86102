"""The driver reports JobStarted only for a job still running a while after it was handed over,
once it is loaded and validated, and never for one refused while validating: a short job is
reported by its outcome alone."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from driver.protocol import JobFailed, Message, StartJob
from driver.runner import JobRunner
from driver.spark import SESSION, SparkHandle
from tests.support import wait_for

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

# The real loop also ticks on every heartbeat; far longer here, so that a job whose announcement
# fell due while it validated is announced only if its thread wakes the loop.
HEARTBEAT_S = 60.0
OUTCOMES = {"job_finished", "job_failed", "job_killed"}


class StandInContext:
    def setJobGroup(self, group_id: str, description: str, interrupt: bool) -> None:
        pass


class MainLoop:
    """The driver's main loop as the runner sees it: it hands jobs over and ticks the runner
    when woken, when the runner says an announcement falls due, and on each heartbeat."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: list[Message] = []
        self._woken = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def post(self, message: Message) -> None:
        with self._lock:
            self._posted.append(message)

    def wake(self) -> None:
        self._woken.set()

    def serve(self, runner: JobRunner) -> None:
        def loop() -> None:
            due_s: float | None = None
            while not self._stopped:
                self._woken.wait(HEARTBEAT_S if due_s is None else due_s)
                self._woken.clear()
                due_s = runner.announce_started(time.monotonic())

        self._thread = threading.Thread(target=loop, name="main-loop", daemon=True)
        self._thread.start()

    def hand_over(self, runner: JobRunner, job_id: str, main_class: str, config: dict[str, object]) -> None:
        """As the loop does with a StartJob; the turn that handed it over then ticks."""
        request = StartJob(
            job_id=job_id, main_class=main_class, packages=[], config_json=json.dumps(config).encode()
        )
        runner.start(request)
        self.wake()

    def stop(self) -> None:
        self._stopped = True
        self.wake()
        if self._thread is not None:
            self._thread.join(5)

    def posted(self, job_id: str) -> list[Message]:
        with self._lock:
            return [message for message in self._posted if getattr(message, "job_id", None) == job_id]

    def kinds(self, job_id: str) -> list[str]:
        return [message.TYPE for message in self.posted(job_id)]

    def run(
        self, runner: JobRunner, main_class: str, config: dict[str, object], job_id: str = "job-1"
    ) -> None:
        """Hand the job over and wait for its outcome."""
        self.hand_over(runner, job_id, main_class, config)
        wait_for(lambda: OUTCOMES & set(self.kinds(job_id)), timeout_s=10, what=f"the outcome of {job_id}")


@pytest.fixture
def jobs_module(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "announce_jobs.py").write_text(textwrap.dedent(JOBS))
    sys.path.insert(0, str(tmp_path))
    yield "announce_jobs.Job"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("announce_jobs", None)


RunnerFactory = Callable[[float], tuple[JobRunner, MainLoop]]


@pytest.fixture
def runner_announcing_after(tmp_path: Path) -> Iterator[RunnerFactory]:
    """A runner that announces jobs still running ``announce_after_s`` after hand-over, served
    by a main loop; time scales far from what a test on a busy machine could miss."""
    made: list[tuple[JobRunner, MainLoop]] = []

    def make(announce_after_s: float) -> tuple[JobRunner, MainLoop]:
        loop = MainLoop()
        context = StandInContext()
        runner = JobRunner(
            SparkHandle(kind=SESSION, session=context, spark_context=context),
            loop.post,
            loop.wake,
            max_jobs=2,
            announce_after_s=announce_after_s,
            context_config={},
            package_dir=tmp_path / "packages",
            result_chunk_bytes=1 << 20,
        )
        loop.serve(runner)
        made.append((runner, loop))
        return runner, loop

    yield make
    for runner, loop in made:
        runner.shutdown(1.0)
        loop.stop()


def test_a_short_job_is_reported_by_its_outcome_alone(
    runner_announcing_after: RunnerFactory, jobs_module: str
) -> None:
    runner, loop = runner_announcing_after(2.0)
    loop.run(runner, jobs_module, {})
    assert loop.kinds("job-1") == ["job_finished"]


def test_a_long_job_is_announced_before_its_outcome(
    runner_announcing_after: RunnerFactory, jobs_module: str
) -> None:
    runner, loop = runner_announcing_after(0.05)
    loop.run(runner, jobs_module, {"run_s": 0.5})
    assert loop.kinds("job-1") == ["job_started", "job_finished"]


def test_a_job_that_validates_past_its_due_time_is_announced_once_it_runs(
    runner_announcing_after: RunnerFactory, jobs_module: str
) -> None:
    runner, loop = runner_announcing_after(0.05)
    loop.run(runner, jobs_module, {"validate_s": 0.3, "run_s": 0.5})
    assert loop.kinds("job-1") == ["job_started", "job_finished"]


def test_a_job_refused_while_validating_is_never_announced(
    runner_announcing_after: RunnerFactory, jobs_module: str
) -> None:
    runner, loop = runner_announcing_after(0.05)
    loop.run(runner, jobs_module, {"validate_s": 0.2, "refuse": True})
    assert loop.kinds("job-1") == ["job_failed"]
    failed = loop.posted("job-1")[0]
    assert isinstance(failed, JobFailed) and failed.kind == "validation"


def test_jobs_running_together_are_each_announced_once(
    runner_announcing_after: RunnerFactory, jobs_module: str
) -> None:
    runner, loop = runner_announcing_after(0.05)
    loop.hand_over(runner, "long-1", jobs_module, {"run_s": 0.4})
    loop.run(runner, jobs_module, {"run_s": 0.3}, job_id="long-2")
    wait_for(
        lambda: "job_finished" in loop.kinds("long-1"), timeout_s=10, what="the first long job's outcome"
    )
    assert loop.kinds("long-1") == ["job_started", "job_finished"]
    assert loop.kinds("long-2") == ["job_started", "job_finished"]
