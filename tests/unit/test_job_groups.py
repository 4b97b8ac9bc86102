"""A job's Spark job group is set ahead of its thread's first py4j command, and only then."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from driver.jobgroups import JobGroups


class FakeClient:
    """py4j's gateway client: every proxy call ends in send_command."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_next = False

    def send_command(self, command: str, retry: bool = True, binary: bool = False) -> str:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("gateway gone")
        self.sent.append((threading.current_thread().name, command))
        return "yv"


class FakeSparkContext:
    def __init__(self) -> None:
        self._gateway = type("Gateway", (), {})()
        self._gateway._gateway_client = FakeClient()

    @property
    def client(self) -> FakeClient:
        return self._gateway._gateway_client

    def setJobGroup(self, group_id: str, description: str, interrupt: bool) -> None:
        self.client.send_command(f"setJobGroup {group_id} {description} {interrupt}")

    def call(self, name: str) -> Any:  # a job calling into the JVM
        return self.client.send_command(name)


def commands(context: FakeSparkContext) -> list[str]:
    return [command for _, command in context.client.sent]


def test_the_group_goes_ahead_of_the_first_command_only() -> None:
    context = FakeSparkContext()
    groups = JobGroups(context)
    groups.enter("job-1", "jobserver job job-1")
    assert commands(context) == []
    context.call("parallelize")
    context.call("count")
    assert commands(context) == ["setJobGroup job-1 jobserver job job-1 True", "parallelize", "count"]


def test_a_job_that_never_calls_spark_costs_no_command() -> None:
    context = FakeSparkContext()
    groups = JobGroups(context)
    groups.enter("job-1", "d")
    groups.leave()
    context.call("later")  # the same thread, after the job: no group of a job that is over
    assert commands(context) == ["later"]


def test_each_thread_sets_its_own_group() -> None:
    context = FakeSparkContext()
    groups = JobGroups(context)
    groups.enter("job-main", "d")

    def other_job() -> None:
        groups.enter("job-other", "d")
        context.call("collect")

    thread = threading.Thread(target=other_job, name="job-2")
    thread.start()
    thread.join()
    assert context.client.sent == [("job-2", "setJobGroup job-other d True"), ("job-2", "collect")]
    context.call("count")
    assert context.client.sent[-2:] == [
        ("MainThread", "setJobGroup job-main d True"),
        ("MainThread", "count"),
    ]


def test_a_group_that_could_not_be_set_is_tried_again() -> None:
    context = FakeSparkContext()
    groups = JobGroups(context)
    groups.enter("job-1", "d")
    context.client.fail_next = True
    with pytest.raises(ConnectionError):
        context.call("count")
    context.call("count")
    assert commands(context) == ["setJobGroup job-1 d True", "count"]


def test_without_a_gateway_the_group_is_set_at_once() -> None:
    calls: list[tuple[str, str, bool]] = []

    class StandIn:
        def setJobGroup(self, group_id: str, description: str, interrupt: bool) -> None:
            calls.append((group_id, description, interrupt))

    JobGroups(StandIn()).enter("job-1", "d")
    assert calls == [("job-1", "d", True)]
