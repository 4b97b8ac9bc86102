"""What the server counts, for ``/metrics`` (Prometheus' text format, prometheus-client).

Counters and histograms live here, process-wide, and are bumped where things happen: requests in
the web middleware, job ends where they are recorded, driver restarts and losses in the context
life cycle, bus messages in the bus, store operations in the backends. Gauges of the present
(jobs running and queued per context, contexts by phase) are read from the live state when
``/metrics`` is scraped (``jobserver.web.metrics``), so the job path pays nothing for them.

One sample costs a dictionary lookup and an addition; label sets that repeat on the job path are
bound once (``_counter``, ``_histogram``).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram

from jobserver.common.records import JobRecord

REGISTRY = CollectorRegistry(auto_describe=True)

# Buckets from half a millisecond (a job answered from a warm context) to a minute.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2)

REQUESTS = Counter(
    "jobserver_http_requests_total",
    "HTTP requests answered, by method, route and status",
    ("method", "route", "status"),
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "jobserver_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route",
    ("method", "route"),
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
JOBS_ENDED = Counter(
    "jobserver_jobs_ended_total", "Jobs that ended, by final state", ("state",), registry=REGISTRY
)
JOB_SECONDS = Histogram(
    "jobserver_job_duration_seconds",
    "Jobs' run time from start to end, by final state",
    ("state",),
    buckets=JOB_BUCKETS,
    registry=REGISTRY,
)
DRIVER_RESTARTS = Counter(
    "jobserver_driver_restarts_total",
    "Drivers launched again (supervise, restart on stuck kill)",
    registry=REGISTRY,
)
DRIVERS_LOST = Counter(
    "jobserver_drivers_lost_total",
    "Drivers declared lost (no heartbeat, or exited unasked)",
    ("reason",),
    registry=REGISTRY,
)
BUS_MESSAGES = Counter(
    "jobserver_bus_messages_total",
    "Messages on the driver bus, by direction (in, out) and type",
    ("direction", "type"),
    registry=REGISTRY,
)
STORE_SECONDS = Histogram(
    "jobserver_store_operation_duration_seconds",
    "Metadata store operations, by backend and kind (read, write)",
    ("backend", "kind"),
    buckets=STORE_BUCKETS,
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "jobserver_store_errors_total",
    "Store operations that failed, by backend",
    ("backend",),
    registry=REGISTRY,
)


@functools.cache
def _counter(metric: Counter, *labels: str) -> Counter:
    return metric.labels(*labels)


@functools.cache
def _histogram(metric: Histogram, *labels: str) -> Histogram:
    return metric.labels(*labels)


def request_answered(method: str, route: str, status: int, seconds: float) -> None:
    _counter(REQUESTS, method, route, str(status)).inc()
    _histogram(REQUEST_SECONDS, method, route).observe(seconds)


def job_ended(record: JobRecord) -> None:
    state = record.state.value
    _counter(JOBS_ENDED, state).inc()
    if record.end_time is not None:
        elapsed = (record.end_time - record.start_time).total_seconds()
        _histogram(JOB_SECONDS, state).observe(max(elapsed, 0.0))


def bus_message(direction: str, message_type: str) -> None:
    _counter(BUS_MESSAGES, direction, message_type).inc()


@contextlib.contextmanager
def store_operation(backend: str, kind: str) -> Iterator[None]:
    """Time a store operation; count it as an error when it raises."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        _counter(STORE_ERRORS, backend).inc()
        raise
    finally:
        _histogram(STORE_SECONDS, backend, kind).observe(time.perf_counter() - started)
