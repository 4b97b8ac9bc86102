"""Streaming in a context's driver: the StreamingContext of a streaming context, and the
Structured Streaming queries each job starts, so that killing a job stops its streams.

Neither kind of stream runs in the killed job's Spark job group: a DStream's batches are
scheduled by the StreamingContext, a query's by its own thread under a job group of its own (the
query's run id). Cancelling the job's group therefore leaves them running, and a job waiting in
``awaitTermination`` sits in a JVM call that the Python-level interrupt cannot reach. A kill
stops them here instead; the job's wait then returns and the interrupt ends the job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py4j.java_gateway import JavaGateway, JavaObject
    from pyspark.sql import SparkSession
    from pyspark.streaming import StreamingContext

log = logging.getLogger("driver.streaming")

# Each job thread's JVM thread carries one job tag naming it; a query's thread inherits the tags of
# the thread that started it, and Spark reports them when the query starts.
THREAD_TAG_PREFIX = "jobserver-thread-"


class StreamingContexts:
    """The one StreamingContext (DStreams) of a streaming context at a time.

    Jobs that run while it exists share it. Killing one of them stops it (never the SparkContext),
    so the job's ``awaitTermination`` returns; the next job gets a new one, since a stopped
    StreamingContext cannot start again. When the context ends it stops as
    ``streaming.stopGracefully`` and ``streaming.stopSparkContext`` say.
    """

    def __init__(
        self,
        make_context: Callable[[], StreamingContext],
        *,
        stop_gracefully: bool,
        stop_spark_context: bool,
    ) -> None:
        self._make_context = make_context
        self._stop_gracefully = stop_gracefully
        self._stop_spark_context = stop_spark_context
        self._lock = threading.Lock()
        self._current: StreamingContext | None = None
        self._users: set[str] = set()  # jobs that were handed the current one

    def context_for(self, job_id: str) -> StreamingContext:
        with self._lock:
            if self._current is None or _has_stopped(self._current):
                # A job stopped the last one itself (stopSparkContext=False): start afresh.
                self._current = self._make_context()
                self._users.clear()
            self._users.add(job_id)
            return self._current

    def job_ended(self, job_id: str) -> None:
        with self._lock:
            self._users.discard(job_id)

    def stop_for_kill(self, job_id: str) -> threading.Thread | None:
        """Stop the StreamingContext the killed job was handed, keeping Spark; in the
        background, since that takes seconds and the caller is the thread that heartbeats."""
        with self._lock:
            if job_id not in self._users or self._current is None:
                return None
            streaming_context, self._current = self._current, None
            self._users.clear()
        return _in_background(
            "stop-streaming-context",
            lambda: streaming_context.stop(stopSparkContext=False, stopGraceFully=False),
        )

    def stop(self) -> None:
        """The context ends: stop the StreamingContext as its settings ask."""
        with self._lock:
            streaming_context, self._current = self._current, None
            self._users.clear()
        if streaming_context is not None and not _has_stopped(streaming_context):
            streaming_context.stop(
                stopSparkContext=self._stop_spark_context, stopGraceFully=self._stop_gracefully
            )


def _in_background(name: str, work: Callable[[], None]) -> threading.Thread:
    def logged() -> None:
        try:
            work()
        except Exception:  # Spark already stopping, or the stream failed meanwhile
            log.warning("%s failed", name, exc_info=True)

    thread = threading.Thread(target=logged, name=name, daemon=True)
    thread.start()
    return thread


def _has_stopped(streaming_context: StreamingContext) -> bool:
    state = getattr(streaming_context, "_jssc", None)
    if state is None:  # a stand-in without a JVM side
        return bool(getattr(streaming_context, "stopped", False))
    return str(state.getState()) == "STOPPED"


class QueryTracker:
    """Which running job started which Structured Streaming query.

    Every job thread's JVM thread carries the job tag ``jobserver-thread-<ident>`` (set once per
    thread; again after a kill, which may cost the thread its py4j connection and with it its JVM
    thread). A query's thread inherits it, and Spark reports a query's start to listeners before
    ``start()`` returns, so the job running on the tagged thread at that moment is the one that
    started it, also when several jobs start queries at once. Queries started from threads a job
    makes itself are not tracked unless those are ``pyspark.InheritableThread``s, nor are those
    of other sessions than the one the listener is registered with (``track_queries``).
    """

    def __init__(self, add_tag: Callable[[str], None], stop_query: Callable[[str], None]) -> None:
        self._add_tag = add_tag  # tags the calling thread's JVM thread
        self._stop_query = stop_query  # stops a query by id (blocks until it has stopped)
        self._lock = threading.Lock()
        self._job_by_tag: dict[str, str] = {}
        self._thread = threading.local()  # .tagged: this thread's JVM thread carries its tag
        self._queries: dict[str, set[str]] = {}  # job id -> ids of the queries it started
        self._killed: set[str] = set()

    def job_started(self, job_id: str) -> None:
        """Called on the job's thread before its code runs."""
        ident = threading.get_ident()
        tag = f"{THREAD_TAG_PREFIX}{ident}"
        with self._lock:
            self._job_by_tag[tag] = job_id
        if not getattr(self._thread, "tagged", False):
            self._add_tag(tag)
            self._thread.tagged = True

    def job_ended(self, job_id: str, *, killed: bool) -> None:
        """Called on the job's thread when it ends; queries it leaves running run on untracked."""
        ident = threading.get_ident()
        with self._lock:
            tag = f"{THREAD_TAG_PREFIX}{ident}"
            if self._job_by_tag.get(tag) == job_id:
                del self._job_by_tag[tag]
            self._queries.pop(job_id, None)
            self._killed.discard(job_id)
        if killed:
            self._thread.tagged = False

    def queries_of(self, job_id: str) -> list[str]:
        with self._lock:
            return sorted(self._queries.get(job_id, ()))

    def stop_queries_of(self, job_id: str) -> threading.Thread | None:
        """The job was killed: stop the queries it started (in the background, since a query's
        stop waits for its current batch), and any it starts from now on."""
        with self._lock:
            self._killed.add(job_id)
            query_ids = sorted(self._queries.get(job_id, ()))
        return _in_background("stop-queries", lambda: self._stop_all(query_ids)) if query_ids else None

    def on_query_started(self, query_id: str, tags: Iterable[str]) -> None:
        """From the listener, on the query's thread while the starting job waits in ``start()``."""
        with self._lock:
            job_id = next((self._job_by_tag[tag] for tag in tags if tag in self._job_by_tag), None)
            if job_id is None:
                return
            self._queries.setdefault(job_id, set()).add(query_id)
            stop_now = job_id in self._killed
        if stop_now:
            # A kill that came while start() ran. Stopping waits for this very thread, which is
            # still inside the listener call: stop from another one.
            _in_background("stop-queries", lambda: self._stop_all([query_id]))

    def on_query_terminated(self, query_id: str) -> None:
        with self._lock:
            for query_ids in self._queries.values():
                query_ids.discard(query_id)

    def _stop_all(self, query_ids: list[str]) -> None:
        for query_id in query_ids:
            try:
                self._stop_query(query_id)
            except Exception:  # Spark already stopping, or the query failed meanwhile
                log.warning("could not stop streaming query %s", query_id, exc_info=True)


class QueryListener:
    """A py4j proxy of Spark's Python streaming-query listener interface.

    Not pyspark's ``StreamingQueryListener``: in pyspark 4.3 its event conversion fails on any
    query started with job tags (py4j hands the tags over as Python strings, which it then calls
    ``toString`` on), and tags are what we track queries by.
    """

    def __init__(self, tracker: QueryTracker) -> None:
        self._tracker = tracker

    def onQueryStarted(self, event: JavaObject) -> None:
        iterator = event.jobTags().iterator()
        tags = []
        while iterator.hasNext():
            tags.append(str(iterator.next()))
        self._tracker.on_query_started(str(event.id().toString()), tags)

    def onQueryProgress(self, event: JavaObject) -> None:
        pass

    def onQueryIdle(self, event: JavaObject) -> None:
        pass

    def onQueryTerminated(self, event: JavaObject) -> None:
        self._tracker.on_query_terminated(str(event.id().toString()))

    class Java:
        implements = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]


def track_queries(session: SparkSession, gateway: JavaGateway) -> QueryTracker:
    """A QueryTracker listening to ``session``'s streaming queries (``gateway`` is Spark's)."""
    from pyspark.java_gateway import ensure_callback_server_started

    spark_context = session.sparkContext

    def stop_query(query_id: str) -> None:
        query = session.streams.get(query_id)
        if query is not None:
            query.stop()

    tracker = QueryTracker(spark_context.addJobTag, stop_query)
    ensure_callback_server_started(gateway)  # type: ignore[no-untyped-call]  # pyspark leaves it unannotated
    wrapper = gateway.jvm.org.apache.spark.sql.streaming.PythonStreamingQueryListenerWrapper(
        QueryListener(tracker)
    )
    session._jsparkSession.streams().addListener(wrapper)
    return tracker
