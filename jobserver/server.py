"""The job server's domain, wired together and started and stopped in the right order.

Start: folders, store (migrations), this server's heartbeat among its peers, reconciliation of
what the store believed alive (the contexts this server launched before a restart wait for their
drivers to rejoin), bus, the take-over of stored callbacks left pending, then heartbeats (to
drivers and among peers) and the configured contexts. Stop is
the reverse, and stops every driver before the store closes so that their final states are
written, unless the server stops with --keep-contexts: then the drivers are left running for the
next server process. Pending callbacks are not waited for: they stay stored, released for the next
server to deliver.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

import structlog

from jobserver.common.clock import Clock, SystemClock
from jobserver.common.config import Settings, redacted_url
from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import utc_now
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.logs import ContextLogs
from jobserver.contexts.manager import ContextManager
from jobserver.contexts.peers import PeerCall
from jobserver.drivers import tokens
from jobserver.drivers.bus import Bus
from jobserver.drivers.launcher import DriverLaunch, build_bundle
from jobserver.jobs.manager import JobManager
from jobserver.schedules.scheduler import Scheduler
from jobserver.storage import create_store
from jobserver.storage.write_behind import WriteBehindStore
from jobserver.uploads.binaries import BinaryManager
from jobserver.uploads.datafiles import DataFiles
from jobserver.workflows.engine import Workflows

log = structlog.get_logger(__name__)


@dataclass(eq=False)
class JobServer:
    settings: Settings
    store: WriteBehindStore
    bus: Bus
    tasks: BackgroundTasks
    contexts: ContextManager
    jobs: JobManager
    binaries: BinaryManager
    data: DataFiles
    context_logs: ContextLogs
    workflows: Workflows
    schedules: Scheduler
    # Set by SIGUSR1 (bin/server_stop.sh --keep-contexts): stop without stopping the drivers.
    keep_contexts: bool = False

    @classmethod
    async def start(
        cls, settings: Settings, *, clock: Clock | None = None, peer_call: PeerCall | None = None
    ) -> JobServer:
        """``clock``: the scheduler's time (tests move it on); the wall clock by default.
        ``peer_call``: how a workflow step reaches the server that runs its context (the web
        layer's signed requests); without it such a step fails."""
        for folder in (settings.work_dir, settings.blob_dir, settings.data_dir, settings.log_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the server's user's alone
        store = WriteBehindStore(
            create_store(settings.store_url, blob_dir=settings.blob_dir), enabled=settings.write_behind
        )
        await store.open()
        curve_keys = (
            tokens.curve_server_keys(tokens.load_key(settings.key_file)) if settings.bus_curve else None
        )
        bus = Bus(
            bind_address=settings.bus_bind_address,
            port=settings.bus_port,
            advertised_host=settings.bus_advertised_host,
            port_file=settings.work_dir / "bus.port",
            # A driver's largest frame is a result chunk and its message's few fields.
            max_frame_bytes=settings.result_chunk_bytes + 1024 * 1024,
            curve_keys=curve_keys,
        )
        tasks = BackgroundTasks()
        data = DataFiles(settings.data_dir, max_upload_bytes=settings.max_upload_bytes)
        contexts = ContextManager(settings, store, bus, _driver_launch(settings), data, tasks)
        jobs = JobManager(settings, store, contexts, tasks)
        workflows = Workflows(settings, store, jobs, tasks)
        if peer_call is not None:
            workflows.reach_peers_with(peer_call)
            contexts.reach_peers_with(peer_call)
        server = cls(
            settings=settings,
            store=store,
            bus=bus,
            tasks=tasks,
            contexts=contexts,
            jobs=jobs,
            binaries=BinaryManager(
                store, blob_dir=settings.blob_dir, max_upload_bytes=settings.max_upload_bytes
            ),
            data=data,
            context_logs=ContextLogs(settings.log_dir, contexts),
            workflows=workflows,
            schedules=Scheduler(settings, store, jobs, workflows, tasks, clock or SystemClock(), contexts),
        )
        try:
            # A heartbeat before the recovery: no peer adopts what this server is recovering.
            await contexts.join_peers()
            # The contexts to recover first: the bus's ZAP handler refuses the key of a context it
            # does not know yet, and ZeroMQ never retries a connection refused so.
            await contexts.recover()
            await bus.start(contexts.on_bus_message, contexts.authenticate_driver)
            contexts.set_bus_endpoint(bus.endpoint)
            _warn_if_cluster_drivers_cannot_reach(settings)
        except BaseException:
            await tasks.close()
            await bus.close()
            await store.close()
            raise
        server.jobs.take_over_callbacks()
        tasks.spawn(contexts.run_heartbeats(), name="heartbeats")
        tasks.spawn(contexts.run_peers(), name="peers")
        tasks.spawn(server._clean_periodically(), name="metadata-cleanup")
        await contexts.start_configured_contexts()
        contexts.pools.start()  # after the recovery: drivers rejoining count for their pools
        # After the contexts' recovery: steps whose drivers rejoin go on, ended ones advance.
        await workflows.recover()
        tasks.spawn(workflows.keep_reconciling(), name="workflow-reconcile")
        tasks.spawn(workflows.keep_adopting(), name="workflow-adoption")
        server.schedules.start()
        log.info(
            "jobserver_started", port=settings.port, bus=bus.endpoint, store=redacted_url(settings.store_url)
        )
        return server

    async def stop(self) -> None:
        if self.keep_contexts:
            await self.contexts.detach()
            log.info("jobserver_stopping_keeping_contexts")
        else:
            await self.contexts.shutdown()
        await self.jobs.close()
        await self.bus.close()  # no more driver messages, so nothing new starts in the background
        await self.tasks.close()
        await self.jobs.close_callbacks()  # pending ones stay stored: their retries do not hold the stop up
        await self.store.close()
        log.info("jobserver_stopped")

    async def _clean_periodically(self) -> None:
        """Retention (``dao-cleanup-after``): old finished jobs (their log lines with them) and
        contexts, their driver logs, unreferenced blobs; schedule runs that are over and ended
        workflows (``scheduler.runs-cleanup-after``, ``workflows.cleanup-after``)."""
        while True:
            now = utc_now()
            before = now - datetime.timedelta(seconds=self.settings.dao_cleanup_after_s)
            try:
                counts = await self.store.delete_expired(before)
                counts |= await self.store.delete_expired_scheduling(
                    runs_before=now - datetime.timedelta(seconds=self.settings.schedule_runs_cleanup_after_s),
                    workflows_before=now - datetime.timedelta(seconds=self.settings.workflow_cleanup_after_s),
                )
                counts["context_logs"] = await self.context_logs.remove_expired(
                    self.settings.dao_cleanup_after_s
                )
            except StoreUnavailable as error:
                log.warning("metadata_cleanup_failed", error=error.message)
            else:
                if any(counts.values()):
                    log.info("metadata_cleaned", before=before.isoformat(), **counts)
            await asyncio.sleep(self.settings.dao_cleanup_interval_s)


def _warn_if_cluster_drivers_cannot_reach(settings: Settings) -> None:
    """A driver in cluster deploy mode runs on a cluster node: a bus on the loopback interface is
    out of its reach, and its context would only fail after forked-jvm-init-timeout."""
    remote = [cluster.name for cluster in settings.clusters.all if cluster.deploy_mode == "cluster"]
    if remote and settings.bus_advertised_host in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "bus_unreachable_from_cluster_nodes",
            clusters=remote,
            advertised_host=settings.bus_advertised_host,
            hint="set spark.jobserver.bus.bind-address and bus.advertised-host",
        )


def _driver_launch(settings: Settings) -> DriverLaunch:
    return DriverLaunch(
        spark_home=settings.spark_home,
        master=settings.master,
        deploy_mode=settings.deploy_mode,
        python=settings.driver_python,
        bus_endpoint="",  # known once the bus is bound
        bundle=build_bundle(settings.work_dir / "driver-bundle.zip"),
    )
