"""The driver's capture of what each job prints or logs (driver.job_output) and its progress
figures (driver.progress.measure)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from driver.job_output import JobOutput, truncation_marker
from driver.progress import measure
from driver.protocol import JobLog, Message


@pytest.fixture(autouse=True)
def restored_streams() -> Iterator[None]:
    """JobOutput.install replaces the process's streams and adds a root handler: undone after."""
    streams, handlers = (sys.stdout, sys.stderr), list(logging.getLogger().handlers)
    yield
    sys.stdout, sys.stderr = streams
    logging.getLogger().handlers[:] = handlers


def capture(**limits: int) -> tuple[JobOutput, list[Message]]:
    sent: list[Message] = []
    output = JobOutput(
        sent.append,
        max_lines=limits.get("max_lines", 100),
        batch_lines=limits.get("batch_lines", 100),
        batch_interval_s=0.2,
    )
    output.install()
    return output, sent


def lines_of(sent: list[Message], job_id: str) -> list[str]:
    batches = [message for message in sent if isinstance(message, JobLog) and message.job_id == job_id]
    numbered = [
        (batch.first_line + offset, line) for batch in batches for offset, line in enumerate(batch.lines)
    ]
    assert [number for number, _ in numbered] == list(range(len(numbered)))  # no gap, no repeat
    return [line for _, line in numbered]


def test_concurrent_jobs_get_their_own_prints_and_logging_and_other_threads_none() -> None:
    output, sent = capture(batch_lines=3)
    start = threading.Barrier(2)

    def job(job_id: str) -> None:
        output.begin(job_id)
        start.wait()
        for index in range(10):
            print(f"{job_id} {index}")
        logging.getLogger("user.code").warning("from %s", job_id)
        logging.getLogger("driver.runner").warning("the driver's own, not the job's")
        print(f"{job_id} no newline", end="")
        output.end()

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    print("not a job's line")
    for thread in threads:
        thread.join()

    for job_id in ("a", "b"):
        lines = lines_of(sent, job_id)
        assert lines[:10] == [f"{job_id} {index}" for index in range(10)]
        assert lines[10].endswith(f"WARNING user.code: from {job_id}")
        assert lines[11:] == [f"{job_id} no newline"]


def test_lines_beyond_the_cap_are_dropped_after_one_marker() -> None:
    output, sent = capture(max_lines=3)
    output.begin("chatty")
    for index in range(10):
        print(index)
    output.end()
    assert lines_of(sent, "chatty") == ["0", "1", "2", truncation_marker(3)]


def test_waiting_lines_leave_at_the_interval_and_a_silent_job_sends_nothing() -> None:
    output, sent = capture()
    output.begin("quiet")
    output.end()
    assert sent == []
    output.begin("slow")
    print("one")
    assert sent == [] and output.send_due(0.0) is not None  # not due yet
    output.send_due(float("inf"))
    assert lines_of(sent, "slow") == ["one"]
    assert output.send_due(float("inf")) is None  # nothing waits
    output.end()


def test_progress_counts_a_groups_jobs_stages_and_tasks() -> None:
    stages = {
        0: SimpleNamespace(numTasks=4, numActiveTasks=0, numCompletedTasks=4, numFailedTasks=0),
        1: SimpleNamespace(numTasks=4, numActiveTasks=2, numCompletedTasks=1, numFailedTasks=1),
        2: SimpleNamespace(numTasks=2, numActiveTasks=0, numCompletedTasks=0, numFailedTasks=2),
    }
    tracker = SimpleNamespace(
        getJobIdsForGroup=lambda group: [7, 8] if group == "job-1" else [],
        getJobInfo=lambda job: SimpleNamespace(
            status="RUNNING" if job == 7 else "FAILED", stageIds=[0, 1] if job == 7 else [2, 3]
        ),
        getStageInfo=lambda stage: stages.get(stage),  # stage 3 never ran
        getActiveStageIds=lambda: [1],
    )
    assert measure(tracker, "job-1") == {
        "jobs": {"total": 2, "active": 1, "completed": 0, "failed": 1},
        "stages": {"total": 4, "active": 1, "completed": 1, "failed": 1},
        "tasks": {"total": 10, "active": 2, "completed": 5, "failed": 3},
    }
    assert measure(tracker, "other")["jobs"]["total"] == 0


def test_long_lines_are_cut_and_batches_stay_far_below_the_frame_limit() -> None:
    output, sent = capture(batch_lines=500)
    output.begin("wide")
    for _ in range(40):
        print("x" * 100_000)
    output.end()
    batches = [message for message in sent if isinstance(message, JobLog)]
    assert len(lines_of(sent, "wide")) == 40 and all(len(line) == 16_384 for line in lines_of(sent, "wide"))
    assert len(batches) > 1 and all(sum(map(len, batch.lines)) <= 300_000 for batch in batches)
