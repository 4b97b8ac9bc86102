"""Contexts: one driver process per context, from launch to its last exit.

(About 480 lines: the façade names every way in, ad-hoc jobs' pooled drivers and a reset of the
whole group of servers included; what each does lives in the modules below it.)

The ContextManager is what the rest of the server asks about contexts: create, find, stop, reset,
recover after a restart, shut down. Underneath, ``ContextLifecycle`` moves each context through
its phases and stores what they mean, and ``DriverMessages`` handles what drivers say over the bus.
The job domain hears of contexts only through ``ContextEvents`` (connected once, ``connect``).

After a restart of the server, the drivers the previous server process launched rejoin (they keep
running while no server is there): their contexts stay RUNNING and their jobs go on. Those that do
not rejoin within ``reattach-grace`` end as ERROR, as the contract's reconciliation says.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Mapping
from typing import Any

import structlog

from driver.protocol import Message
from jobserver.common.cluster_settings import unsupported_target
from jobserver.common.config import Settings, merge
from jobserver.common.context_settings import checked, with_canonical_names
from jobserver.common.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    JobServerError,
    NotFound,
    PeerUnavailable,
    StoreUnavailable,
)
from jobserver.common.records import Caller, ContextRecord
from jobserver.common.states import ContextState
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.client_settings import PROXY_USER, ClientSettingsPolicy, proxy_user_of
from jobserver.contexts.driver_messages import DriverMessages
from jobserver.contexts.events import ContextEvents, EventRelay
from jobserver.contexts.lifecycle import ContextLifecycle
from jobserver.contexts.live import LiveContext, LiveContexts
from jobserver.contexts.peers import PeerCall, Peers
from jobserver.contexts.phases import Phase
from jobserver.contexts.pools import POOL_KEY, DriverPools
from jobserver.drivers.bus import Bus
from jobserver.drivers.file_sender import FileSender
from jobserver.drivers.launcher import DriverLaunch, submit_target
from jobserver.storage import Store
from jobserver.uploads.datafiles import DataFiles

log = structlog.get_logger(__name__)

LISTED_STATES = (ContextState.RUNNING, ContextState.RESTARTING, ContextState.STOPPING)
# A context's name: it is in spark-submit's command line, log lines and URLs.
CONTEXT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")


class ContextManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        launch: DriverLaunch,
        data: DataFiles,
        tasks: BackgroundTasks,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = LiveContexts()
        self._events = EventRelay()
        self._lifecycle = ContextLifecycle(settings, store, bus, self._registry, self._events, launch, tasks)
        files = FileSender(
            blob_file=store.blob_file, data_file=data.path_of, chunk_bytes=settings.result_chunk_bytes
        )
        self._messages = DriverMessages(
            settings, bus, self._registry, self._lifecycle, self._events, files, tasks, restart=self._restart
        )
        self._peers = Peers(
            settings,
            store,
            self._lifecycle.key,
            adopt=self._adopt,
            endpoints_changed=self._messages.announce_endpoints,
        )
        self._messages.endpoints = self._peers.endpoints
        self.pools = DriverPools(
            settings.pools,
            self._on_cluster,  # the same defaults, cluster and all, as an ad-hoc job's own
            tasks,
            launch=self._launch_pooled,
            wait_ready=self.wait_ready,
            stop=self.stop,
        )
        self._messages.session_checked = self.pools.on_session_checked
        self._messages.still_owned = self._still_owned
        self._peers.on_adopted = self._let_go_of_adopted
        self._names_starting: set[str] = set()
        self._tasks = tasks
        self._client_settings = ClientSettingsPolicy(
            allowed=settings.client_settings_allowed, denied=settings.client_settings_denied
        )

    def reach_peers_with(self, peer_call: PeerCall) -> None:
        """How a reset reaches the contexts the other servers run (given by the web layer)."""
        self._peers.reach_with(peer_call)

    def connect(self, listener: ContextEvents) -> None:
        """The job domain's listener; connected once."""
        self._events.connect(listener)

    def set_bus_endpoint(self, endpoint: str) -> None:
        self._lifecycle.set_bus_endpoint(endpoint)
        self._peers.bus_endpoint = endpoint

    async def on_bus_message(self, identity: bytes, peer: str | None, message: Message) -> None:
        await self._messages.on_bus_message(identity, peer, message)

    def authenticate_driver(self, public_key: bytes) -> str | None:
        """The bus's question about a new CURVE peer: which live context's driver holds that key."""
        return self._registry.authenticate(public_key)

    async def run_heartbeats(self) -> None:
        await self._messages.run_heartbeats()

    # --- queries -------------------------------------------------------------------------------------

    def live_contexts(self) -> list[LiveContext]:
        """The contexts this server runs now, whatever their phase (for /metrics)."""
        return self._registry.all()

    def live(self, context_id: str) -> LiveContext | None:
        return self._registry.get(context_id)

    async def for_jobs(self, name: str, caller: Caller | None = None) -> LiveContext:
        """The context of that name, once it is up: 404 when there is none, 409 while it stops,
        403 when it runs as a user the caller may not act as (proxy-user mode)."""
        context = self._registry.by_name(name)
        if context is None:  # not here: maybe on a peer (only then does this cost a store query)
            record = await self._store.latest_context(name)
            if record is not None and record.state is ContextState.STOPPING:
                raise Conflict("Context stop in progress")
            if record is not None and not record.state.is_final:
                await self._peers.check_owner(record)
            raise NotFound(f"context {name} not found")
        self._check_runs_as(context.record, caller)
        if not context.ready.done():
            await self.wait_ready(context)
        return context

    async def clusters(self) -> list[dict[str, Any]]:
        """GET /clusters: each cluster with the names of its contexts (those GET /contexts lists)."""
        on: dict[str, list[str]] = {cluster.name: [] for cluster in self._settings.clusters.all}
        default = self._settings.clusters.default.name
        for record in await self._store.list_contexts(LISTED_STATES):
            on.setdefault(str(record.config.get("cluster") or default), []).append(record.name)
        return [
            {
                "name": cluster.name,
                "master": cluster.master,
                "deployMode": cluster.deploy_mode,
                "default": cluster.name == default,
                "kerberosPrincipal": cluster.principal or None,
                "contexts": sorted(on.get(cluster.name, [])),
            }
            for cluster in self._settings.clusters.all
        ]

    async def list_names(self) -> list[str]:
        """Pooled drivers are not listed: they are the server's, not a user's (GET /pools)."""
        records = await self._store.list_contexts(LISTED_STATES)
        return [record.name for record in records if POOL_KEY not in record.config]

    async def named_objects(self, name: str) -> list[dict[str, str]]:
        context = self._registry.by_name(name)
        if context is None:
            record = await self._store.latest_context(name)
            if record is not None and not record.state.is_final:
                await self._peers.check_owner(record)
            raise NotFound(f"context {name} not found")
        return context.named_objects

    async def check_served_here(self, context_id: str, name: str) -> None:
        """For a job of a context this server does not hold: ``ServedByPeer`` when a live peer
        runs it (the request goes there), ``PeerUnavailable`` while it awaits adoption."""
        if self._registry.get(context_id) is not None:
            return
        record = await self._store.latest_context(name)
        if record is not None and record.id == context_id and not record.state.is_final:
            await self._peers.check_owner(record)

    async def get(self, name: str) -> ContextRecord:
        record = await self._store.latest_context(name)
        if record is None:
            raise NotFound(f"can't find context with name {name}")
        return record

    def stuck_job_ids(self, context_id: str) -> list[str]:
        context = self._registry.get(context_id)
        return sorted(context.stuck_job_ids) if context is not None else []

    # --- creation ------------------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        client_settings: Mapping[str, Any],
        *,
        adhoc: bool = False,
        caller: Caller | None = None,
        proxy_user: str | None = None,
    ) -> LiveContext:
        """Launch a driver for ``name`` with settings a client asked for (checked, then laid over
        the server's defaults), and wait until its Spark context is up. ``proxy_user`` is the user
        the driver runs as, decided by the authentication (not a client's setting)."""
        config = self._client_config(client_settings, proxy_user)
        return await self._create(name, config, adhoc=adhoc, user=caller.user if caller else None)

    async def create_adhoc(
        self,
        name: str,
        client_settings: Mapping[str, Any],
        *,
        job_id: str,
        pool: str | None = None,
        caller: Caller | None = None,
        proxy_user: str | None = None,
    ) -> tuple[LiveContext, bool]:
        """The context of an ad-hoc job and whether it is a pooled driver: an idle driver of the
        pool ``pool`` names (400 unknown), or of the pool whose settings are the job's; else a
        driver of its own, launched with those settings, as ``create`` does."""
        config = self._client_config(client_settings, proxy_user)
        if pool is not None:  # the pool's settings; the user the job runs as must be its
            runs_as = proxy_user_of(config)
            config = dict(self.pools.config_of(pool))
            if proxy_user_of(config) != runs_as:
                raise Forbidden(f"pool {pool} runs as {proxy_user_of(config) or 'the server'}, not {runs_as}")
        context = await self.pools.take(config, job_id, pool)
        if context is not None:
            return context, True
        return await self._create(name, config, adhoc=True, user=caller.user if caller else None), False

    def _client_config(self, client_settings: Mapping[str, Any], proxy_user: str | None) -> dict[str, Any]:
        try:  # mem-per-node is memory-per-node, for the allow-list too
            client_settings = with_canonical_names(client_settings)
        except ConfigError as error:
            raise BadRequest(str(error)) from error
        self._client_settings.check(client_settings)
        config = self._on_cluster(client_settings)
        if proxy_user:
            config = merge(config, {PROXY_USER: proxy_user})
        return config

    def _on_cluster(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The server's defaults, then those of the cluster ``settings`` name (a 400 when it is
        unknown; the default cluster when they name none), then ``settings``."""
        cluster = self._settings.clusters.named(settings.get("cluster"))
        config = merge(self._settings.context_defaults, cluster.default_settings)
        return merge(config, {**settings, "cluster": cluster.name})

    async def _create(
        self, name: str, config: Mapping[str, Any], *, adhoc: bool = False, user: str | None = None
    ) -> LiveContext:
        """``create`` with settings the server trusts (its configuration's, or a context's own)."""
        if not adhoc and not CONTEXT_NAME.fullmatch(name):
            raise BadRequest(
                "context name must start with letters and hold at most 128 letters, digits, '_', '-' or '.'"
            )
        try:  # before anything is launched: a known factory, deadlines, python settings
            config = checked(config)
        except ConfigError as error:
            raise BadRequest(str(error)) from error
        cluster = self._settings.clusters.named(config.get("cluster"))
        refusal = unsupported_target(*submit_target(cluster.master, cluster.deploy_mode, config))
        if refusal is not None:  # spark-submit's own refusal, before it runs
            raise BadRequest(refusal)
        if name in self._names_starting:
            raise BadRequest(f"context {name} exists")
        self._names_starting.add(name)
        try:
            existing = await self._store.latest_context(name)
            if existing is not None and not existing.state.is_final:
                raise BadRequest(f"context {name} exists")
            context = await self._lifecycle.launch(name, config, adhoc=adhoc, user=user)
        finally:
            self._names_starting.discard(name)
        await self.wait_ready(context)
        return context

    async def _launch_pooled(self, name: str, config: Mapping[str, Any]) -> LiveContext:
        return await self._lifecycle.launch(name, config, adhoc=True)

    async def wait_ready(self, context: LiveContext) -> ContextRecord:
        # shield: a client that hangs up must not cancel the shared future other waiters use
        return await asyncio.shield(context.ready)

    async def start_configured_contexts(self) -> None:
        for name, settings in self._settings.startup_contexts.items():
            config = self._on_cluster(settings)
            self._tasks.spawn(self._create_logged(name, config), name=f"configured-context-{name}")

    async def _create_logged(self, name: str, config: Mapping[str, Any]) -> None:
        try:
            await self._create(name, config)
        except JobServerError as error:
            log.error("configured_context_failed", context_name=name, error=error.message)

    # --- stopping ------------------------------------------------------------------------------------

    async def delete(self, name: str, *, force: bool = False, caller: Caller | None = None) -> bool:
        """DELETE /contexts/<name>: True once it has ended, False when its stop goes on."""
        record = await self._store.latest_context(name)
        if record is None or record.state.is_final:
            raise NotFound(f"context {name} not found")
        self._check_runs_as(record, caller)
        context = self._registry.get(record.id)
        if context is None:
            await self._peers.check_owner(record)  # a live peer's: the request goes there
            # Persisted as alive but no driver of ours: nothing can stop it, so tell the truth.
            await self._store.update_context(record.id, ContextState.ERROR, error="Driver not reachable")
            raise NotFound(f"context {name} not found")
        await self._lifecycle.stop(context, force=force)
        wait_s = max(self._settings.context_deletion_timeout_s - 2.0, 0.5)
        return await self._lifecycle.wait_ended(context, wait_s)

    def _check_runs_as(self, record: ContextRecord, caller: Caller | None) -> None:
        """In proxy-user mode a context is its user's: others may use or stop it only when they may
        act as that user."""
        if caller is None or not self._settings.auth.proxy_user:
            return
        runs_as = proxy_user_of(record.config)
        if runs_as and not caller.may_act_as(runs_as):
            raise Forbidden(f"Context {record.name} runs as {runs_as}, and {caller.user} may not act as them")

    async def stop(self, context: LiveContext) -> None:
        """Stop a context the server itself ends (an ad-hoc context after its job, …)."""
        if not context.stopping:
            await self._lifecycle.stop(context)

    async def end_adhoc(self, context: LiveContext, job_id: str | None, *, killed: bool = False) -> None:
        """An ad-hoc context's job is over (``job_id``; None: a rejoined driver has none left): a
        pooled driver goes back to its pool (or is recycled), any other stops."""
        if not self.pools.give_back(context, job_id, killed=killed):
            await self.stop(context)

    async def _restart(self, context: LiveContext) -> None:
        config = {
            key: value for key, value in context.record.config.items() if key not in ("is-adhoc", "context")
        }
        await self.stop(context)
        if POOL_KEY in config:  # a pooled driver: its pool launches another
            return
        await self._lifecycle.wait_ended(context, self._settings.context_deletion_timeout_s + 10.0)
        log.info("context_restarting", context_id=context.id, context_name=context.name)
        await self._create_logged(context.name, config)

    async def reset(self, *, sync: bool, caller: Caller | None = None, peers_too: bool = True) -> None:
        """PUT /contexts?reset=reboot: stop every context; with ``sync`` restart the configured ones.

        With ``peers_too`` (a client's request, not a peer's), every live server sharing the store
        resets its own contexts too, at the same time (``Peers.reset_others``): the servers act as
        one. Its PeerUnavailable comes once this server's part is done."""
        stopped = [context for context in self._registry.all() if not context.stopping]
        for context in stopped:
            await self._lifecycle.stop(context)
        resets: list[Awaitable[object]] = (
            [self._peers.reset_others(sync=sync, caller=caller)] if peers_too else []
        )
        if sync:
            deadline_s = self._settings.context_deletion_timeout_s + 6.0
            resets += [self._lifecycle.wait_ended(context, deadline_s) for context in stopped]
        outcomes = await asyncio.gather(*resets, return_exceptions=True)
        if sync:
            for name, config in self._settings.startup_contexts.items():
                await self._create_logged(name, merge(self._settings.context_defaults, config))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    # --- start-up and shut-down ----------------------------------------------------------------------

    async def join_peers(self) -> None:
        """At start-up, before ``recover``: this server's heartbeat, so that no peer adopts what
        it is about to recover (a peer adopts only from a server whose heartbeat is old)."""
        await self._peers.beat()

    async def run_peers(self) -> None:
        await self._peers.beat()  # with the bus endpoint, now known
        await self._peers.run()

    async def _adopt(self, record: ContextRecord) -> None:
        log.warning("context_adopted", context_id=record.id, context_name=record.name)
        self.pools.adopt(await self._lifecycle.await_rejoin(record))

    async def _owned_ids(self) -> set[str]:
        active = tuple(state for state in ContextState if not state.is_final)
        return {
            record.id for record in await self._store.list_contexts(active, owner=self._settings.server_id)
        }

    async def _still_owned(self, context: LiveContext) -> bool:
        """False (and the context let go of) when a peer has adopted it; True when the store
        cannot tell."""
        try:
            owned = context.id in await self._owned_ids()
        except StoreUnavailable:
            return True
        if not owned:
            self._let_go(context)
        return owned

    async def _let_go_of_adopted(self) -> None:
        """A peer took this server's contexts over (it was silent for ``peers.timeout``): forget
        the ones it took, without touching their drivers, which are the peer's now."""
        owned = await self._owned_ids()
        for context in self._registry.all():
            if context.id not in owned:
                self._let_go(context)

    def _let_go(self, context: LiveContext) -> None:
        if self._registry.holds(context):
            log.warning("context_taken_over", context_id=context.id, context_name=context.name)
            self._registry.remove(context)
            self._lifecycle.release(context)
            self.pools.forget(context)
            self._events.on_context_released(context)
            context.fail_waiters(PeerUnavailable(f"context {context.name} was taken over by another server"))

    async def recover(self) -> None:
        """At start-up, before serving: the contexts this server launched before its restart wait
        ``reattach-grace`` for their drivers to rejoin; the others end as ERROR then."""
        active = tuple(state for state in ContextState if not state.is_final)
        for record in await self._store.list_contexts(active, owner=self._settings.server_id):
            self.pools.adopt(await self._lifecycle.await_rejoin(record))

    async def shutdown(self) -> None:
        """Stop every context (their final states are stored before the store closes)."""
        self.pools.close()
        await self._let_drivers_rejoin()
        for context in self._registry.all():
            if context.phase is Phase.AWAITING_REJOIN:
                await self._lifecycle.give_up_rejoin(context)
        contexts = self._registry.all()
        for context in contexts:
            if context.process is None or context.phase is not Phase.STOPPING:
                await self._lifecycle.stop(context)
        grace_s = self._settings.context_deletion_timeout_s
        await asyncio.gather(*(self._lifecycle.wait_ended(context, grace_s) for context in contexts))
        await self._lifecycle.terminate_all(grace_s=5.0)
        await self._peers.leave()

    async def _let_drivers_rejoin(self) -> None:
        """A stop right after a start that found drivers still running (kept by a
        ``--keep-contexts`` stop) waits a few heartbeats for them to rejoin: only a driver that
        has rejoined tells its pid, and only then can this stop end it."""
        awaiting = [
            context.rejoined.wait()
            for context in self._registry.all()
            if context.phase is Phase.AWAITING_REJOIN
        ]
        if not awaiting:
            return
        wait_s = min(self._settings.reattach_grace_s, 3 * self._settings.heartbeat_interval_s + 1.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await asyncio.gather(*awaiting)

    async def detach(self) -> None:
        """Stop with --keep-contexts: leave every driver running, its context as it is, for the
        next server process to re-attach (timers still pending find no context to act on)."""
        self.pools.close()
        await self._lifecycle.let_go()
        log.info("contexts_left_running", count=len(self._registry.all()))
        self._registry.clear()
