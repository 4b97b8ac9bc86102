"""``GET /metrics``: the server's counters in Prometheus' text format (``jobserver.common.metrics``),
and gauges of the present read from the live state at each scrape: contexts by phase, jobs running
and queued in each context and in all. Its permission is ``metrics:read``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobserver.common import metrics
from jobserver.contexts.phases import Phase
from jobserver.server import JobServer
from jobserver.web.keys import SERVER

routes = web.RouteTableDef()


class _Present(Collector):
    def __init__(self, server: JobServer) -> None:
        self._server = server

    def collect(self) -> Iterator[GaugeMetricFamily]:
        live = self._server.contexts.live_contexts()
        phases = Counter(context.phase for context in live)
        contexts = GaugeMetricFamily(
            "jobserver_contexts", "Contexts this server runs, by phase", labels=("phase",)
        )
        for phase in Phase:
            contexts.add_metric((phase.value,), phases.get(phase, 0))
        yield contexts
        names = {context.id: context.name for context in live}
        running = GaugeMetricFamily(
            "jobserver_context_jobs_running", "Jobs running, by context", labels=("context",)
        )
        queued = GaugeMetricFamily(
            "jobserver_context_jobs_queued", "Jobs waiting for a slot, by context", labels=("context",)
        )
        totals = [0, 0]
        for context_id, (now_running, now_queued) in self._server.jobs.occupancy().items():
            name = names.get(context_id)
            if name is None:
                continue  # a context that ended: its empty slots linger until reused
            running.add_metric((name,), now_running)
            queued.add_metric((name,), now_queued)
            totals[0] += now_running
            totals[1] += now_queued
        yield running
        yield queued
        jobs = GaugeMetricFamily("jobserver_jobs", "Jobs this server runs now, by state", labels=("state",))
        jobs.add_metric(("running",), totals[0])
        jobs.add_metric(("queued",), totals[1])
        yield jobs


@routes.get("/metrics")
async def scrape(request: web.Request) -> web.Response:
    present = CollectorRegistry(auto_describe=False)
    present.register(_Present(request.app[SERVER]))
    body = generate_latest(metrics.REGISTRY) + generate_latest(present)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
