"""Streams a kill must stop: the StreamingContext of a streaming context, and the Structured
Streaming queries of each job. Spark is replaced at the seams these classes take (a factory of
StreamingContexts; a tagger and a query stopper), so no JVM starts here."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from driver.streaming import THREAD_TAG_PREFIX, QueryTracker, StreamingContexts


class StandInStreamingContext:
    def __init__(self) -> None:
        self.stopped = False
        self.stops: list[dict[str, bool]] = []

    def stop(self, stopSparkContext: bool, stopGraceFully: bool) -> None:
        self.stopped = True
        self.stops.append({"stopSparkContext": stopSparkContext, "stopGraceFully": stopGraceFully})


def streaming_contexts(
    *, graceful: bool = True, with_spark: bool = True
) -> tuple[StreamingContexts, list[Any]]:
    made: list[StandInStreamingContext] = []

    def make() -> StandInStreamingContext:
        made.append(StandInStreamingContext())
        return made[-1]

    return StreamingContexts(make, stop_gracefully=graceful, stop_spark_context=with_spark), made


def finished(thread: threading.Thread | None) -> None:
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive()


def test_jobs_running_together_share_one_streaming_context() -> None:
    contexts, made = streaming_contexts()
    assert contexts.context_for("job-1") is contexts.context_for("job-2")
    assert len(made) == 1


def test_killing_a_job_stops_its_streaming_context_but_not_spark_and_the_next_job_gets_a_new_one() -> None:
    contexts, made = streaming_contexts()
    first = contexts.context_for("job-1")
    finished(contexts.stop_for_kill("job-1"))
    assert first.stops == [{"stopSparkContext": False, "stopGraceFully": False}]
    assert contexts.context_for("job-2") is not first
    assert len(made) == 2


def test_killing_a_job_that_never_got_the_streaming_context_leaves_it_alone() -> None:
    contexts, made = streaming_contexts()
    contexts.context_for("job-1")
    assert contexts.stop_for_kill("job-2") is None
    contexts.job_ended("job-1")
    assert contexts.stop_for_kill("job-1") is None
    assert made[0].stops == []


def test_a_streaming_context_a_job_stopped_itself_is_replaced() -> None:
    contexts, made = streaming_contexts()
    contexts.context_for("job-1").stop(stopSparkContext=False, stopGraceFully=True)
    assert contexts.context_for("job-2") is made[1]


@pytest.mark.parametrize(("graceful", "with_spark"), [(True, True), (False, False), (True, False)])
def test_the_context_ending_stops_the_streaming_context_as_configured(
    graceful: bool, with_spark: bool
) -> None:
    contexts, made = streaming_contexts(graceful=graceful, with_spark=with_spark)
    contexts.context_for("job-1")
    contexts.stop()
    assert made[0].stops == [{"stopSparkContext": with_spark, "stopGraceFully": graceful}]


def test_the_context_ending_without_streaming_stops_nothing() -> None:
    contexts, made = streaming_contexts()
    contexts.stop()
    assert made == []


class Queries:
    """A QueryTracker with a recording tagger and stopper."""

    def __init__(self) -> None:
        self.tags: list[str] = []
        self.stopped: list[str] = []
        self.stopped_event = threading.Event()
        self.tracker = QueryTracker(self.tags.append, self._stop)

    def _stop(self, query_id: str) -> None:
        self.stopped.append(query_id)
        self.stopped_event.set()


def test_a_job_thread_is_tagged_once_and_again_after_a_kill() -> None:
    queries = Queries()
    tracker = queries.tracker
    ident = threading.get_ident()
    tracker.job_started("job-1")
    tracker.job_ended("job-1", killed=False)
    tracker.job_started("job-2")
    assert queries.tags == [f"{THREAD_TAG_PREFIX}{ident}"]
    tracker.job_ended("job-2", killed=True)  # a kill may have cost the thread its JVM thread
    tracker.job_started("job-3")
    assert queries.tags == [f"{THREAD_TAG_PREFIX}{ident}"] * 2


def test_queries_belong_to_the_job_running_on_the_thread_that_started_them() -> None:
    queries = Queries()
    tracker = queries.tracker
    tag_of: dict[str, str] = {}
    registered = threading.Barrier(3)
    done = threading.Event()

    def run(job_id: str) -> None:  # a job thread that stays alive, as the runner's do
        tracker.job_started(job_id)
        tag_of[job_id] = f"{THREAD_TAG_PREFIX}{threading.get_ident()}"
        registered.wait(5)
        done.wait(5)

    threads = [threading.Thread(target=run, args=(job_id,)) for job_id in ("job-1", "job-2")]
    for thread in threads:
        thread.start()
    registered.wait(5)
    try:
        tracker.on_query_started("query-a", ["user-tag", tag_of["job-1"]])
        tracker.on_query_started("query-b", [tag_of["job-2"]])
        tracker.on_query_started("query-c", ["someone-else"])
        assert (tracker.queries_of("job-1"), tracker.queries_of("job-2")) == (["query-a"], ["query-b"])
        finished(tracker.stop_queries_of("job-1"))
        assert queries.stopped == ["query-a"]
    finally:
        done.set()
        for thread in threads:
            thread.join(5)


def test_a_kill_without_queries_stops_nothing_and_starts_no_thread() -> None:
    queries = Queries()
    queries.tracker.job_started("job-1")
    assert queries.tracker.stop_queries_of("job-1") is None
    assert queries.stopped == []


def test_a_query_a_killed_job_starts_is_stopped_as_soon_as_it_starts() -> None:
    queries = Queries()
    tracker = queries.tracker
    tracker.job_started("job-1")
    tracker.stop_queries_of("job-1")  # the kill came while the job was inside start()
    tracker.on_query_started("query-late", [f"{THREAD_TAG_PREFIX}{threading.get_ident()}"])
    assert queries.stopped_event.wait(5)
    assert queries.stopped == ["query-late"]


def test_a_terminated_query_and_an_ended_job_are_forgotten() -> None:
    queries = Queries()
    tracker = queries.tracker
    tag = f"{THREAD_TAG_PREFIX}{threading.get_ident()}"
    tracker.job_started("job-1")
    tracker.on_query_started("query-a", [tag])
    tracker.on_query_started("query-b", [tag])
    tracker.on_query_terminated("query-a")
    assert tracker.queries_of("job-1") == ["query-b"]
    tracker.job_ended("job-1", killed=False)
    assert tracker.queries_of("job-1") == []
    # A query started later from the same thread, with no job on it, belongs to nobody.
    tracker.on_query_started("query-c", [tag])
    assert tracker.stop_queries_of("job-1") is None
