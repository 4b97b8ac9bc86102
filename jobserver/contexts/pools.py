"""Warm driver pools: drivers launched before any ad-hoc job asks, handed to one job at a time.

Each pool (``spark.jobserver.pool``) keeps ``size`` drivers idle: launched in the background at
start-up, and another launched whenever one is taken or ends. A pooled driver is an ad-hoc context
(``is-adhoc``, its config naming the pool: stored, so a restarted server or an adopting peer knows
it again) that serves one job at a time. When its job ends it goes back to the pool only when
nothing of that job can reach the next one: fewer than ``max-jobs`` jobs so far, no job killed
(its thread may still run), no named objects, and the driver says its session is as it was when
Spark came up (``CheckSession``/``SessionChecked``: temporary views and functions, SQL conf,
current catalog and database, cached data). Otherwise it is recycled: stopped and replaced.

Drivers beyond ``size`` (given back while a replacement was already up) stop once idle for
``idle-timeout``. A pooled driver rejoining after a restart, or adopted from a dead peer, goes
back to the pool of its name when this server has that pool with the same settings; otherwise it
ends as any ad-hoc context whose job is over.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from driver.protocol import CheckSession, SessionChecked
from jobserver.common.context_settings import checked
from jobserver.common.errors import BadRequest, ConfigError, JobServerError
from jobserver.common.pool_settings import PoolSettings, pool_context_config, settings_key
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.live import LiveContext
from jobserver.drivers.bus import BusError

log = structlog.get_logger(__name__)

POOL_KEY = "pool"  # in a pooled context's config: the name of its pool
SESSION_CHECK_TIMEOUT_S = 10.0  # a driver that does not answer CheckSession in time is recycled
RETURN_WAIT_S = 5.0  # how long a job waits for a driver on its way back to the pool
MAX_LAUNCH_BACKOFF_S = 60.0  # between launches of a pool whose drivers keep failing to start


class DriverState(enum.Enum):
    LAUNCHING = "launching"
    IDLE = "idle"
    BUSY = "busy"
    RETURNING = "returning"  # its job ended; the session is being checked
    REJOINING = "rejoining"  # launched before a restart (or by a dead peer); not back yet


@dataclass(eq=False)
class PooledDriver:
    context: LiveContext
    state: DriverState
    jobs_run: int = 0
    job_id: str | None = None  # the job it serves now
    idle_since: float = 0.0
    session_checked: asyncio.Future[SessionChecked] | None = None


@dataclass(eq=False)
class DriverPool:
    settings: PoolSettings
    config: Mapping[str, Any]  # what its drivers are launched with
    key: str  # settings_key(config): what an ad-hoc job's settings must be
    drivers: dict[str, PooledDriver] = field(default_factory=dict)
    pending_launches: int = 0  # launches under way whose context does not exist yet
    failed_launches: int = 0  # in a row, for the backoff
    waiting: int = 0  # jobs waiting for a returning driver
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.settings.name

    def count(self, *states: DriverState) -> int:
        return sum(1 for driver in self.drivers.values() if driver.state in states)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class DriverPools:
    def __init__(
        self,
        pools: tuple[PoolSettings, ...],
        context_config: Callable[[Mapping[str, Any]], dict[str, Any]],
        tasks: BackgroundTasks,
        *,
        launch: Callable[[str, Mapping[str, Any]], Awaitable[LiveContext]],
        wait_ready: Callable[[LiveContext], Awaitable[object]],
        stop: Callable[[LiveContext], Awaitable[None]],
    ) -> None:
        self._tasks = tasks
        self._launch = launch
        self._wait_ready = wait_ready
        self._stop = stop
        self._pools: dict[str, DriverPool] = {}
        for settings in pools:
            config = checked(pool_context_config(settings, context_config))
            self._pools[settings.name] = DriverPool(settings, config, settings_key(config))
        self._by_key = {pool.key: pool for pool in reversed(self._pools.values())}  # first pool wins
        self._closed = False

    @property
    def names(self) -> list[str]:
        return list(self._pools)

    def config_of(self, name: str) -> Mapping[str, Any]:
        """The settings of the pool a job names (400 naming the pools when there is none)."""
        pool = self._pools.get(name)
        if pool is None:
            known = ", ".join(self._pools) or "none configured"
            raise BadRequest(f"unknown pool {name}; pools: {known}")
        return pool.config

    # --- filling -------------------------------------------------------------------------------------

    def start(self) -> None:
        """At start-up, after the recovery (rejoining drivers count): fill every pool."""
        for pool in self._pools.values():
            self._fill(pool)
        if self._pools:
            self._tasks.spawn(self._stop_idle_extras(), name="pool-idle-timeout")

    def _fill(self, pool: DriverPool) -> None:
        if self._closed:
            return
        supply = pool.pending_launches + pool.count(
            DriverState.IDLE, DriverState.LAUNCHING, DriverState.RETURNING, DriverState.REJOINING
        )
        for _ in range(pool.settings.size - supply):
            pool.pending_launches += 1
            self._tasks.spawn(self._launch_one(pool), name=f"pool-launch-{pool.name}")

    async def _launch_one(self, pool: DriverPool) -> None:
        if pool.failed_launches:
            await asyncio.sleep(min(2.0**pool.failed_launches, MAX_LAUNCH_BACKOFF_S))
        if self._closed:
            pool.pending_launches -= 1
            return
        name = f"pool-{pool.name}-{uuid.uuid4()}"
        try:
            context = await self._launch(name, {**pool.config, POOL_KEY: pool.name})
        except JobServerError as error:
            pool.pending_launches -= 1
            self._launch_failed(pool, error.message)
            return
        pool.pending_launches -= 1
        if self._closed:  # the server began to stop while it launched: it goes with the others
            await self._stop(context)
            return
        driver = PooledDriver(context, DriverState.LAUNCHING)
        pool.drivers[context.id] = driver
        self._tasks.spawn(self._watch(pool, driver), name=f"pool-watch-{context.id}")
        try:
            await self._wait_ready(context)
        except JobServerError as error:
            self._launch_failed(pool, error.message)  # its end (watched) refills the pool
            return
        pool.failed_launches = 0
        if driver.state is DriverState.LAUNCHING:
            self._make_idle(pool, driver)
            log.info("pool_driver_ready", pool=pool.name, context_id=context.id)

    def _launch_failed(self, pool: DriverPool, message: str) -> None:
        pool.failed_launches += 1
        log.warning("pool_driver_failed", pool=pool.name, error=message, failures=pool.failed_launches)
        self._fill(pool)

    async def _watch(self, pool: DriverPool, driver: PooledDriver) -> None:
        """However a pooled driver ends (recycled, stopped, lost), the pool is filled again."""
        await driver.context.ended.wait()
        if pool.drivers.pop(driver.context.id, None) is not None:
            log.info("pool_driver_ended", pool=pool.name, context_id=driver.context.id)
        if driver.session_checked is not None and not driver.session_checked.done():
            driver.session_checked.cancel()
        pool.notify()
        self._fill(pool)

    def _make_idle(self, pool: DriverPool, driver: PooledDriver) -> None:
        driver.state = DriverState.IDLE
        driver.job_id = None
        driver.idle_since = time.monotonic()
        pool.notify()

    # --- jobs ----------------------------------------------------------------------------------------

    async def take(self, config: Mapping[str, Any], job_id: str, pool_name: str | None) -> LiveContext | None:
        """An idle driver of the pool ``pool_name`` names, or whose settings are ``config``, for
        ``job_id`` alone; None when there is no such pool or no driver is free (the job then gets
        a driver of its own). A driver on its way back is waited for a little."""
        if pool_name:
            pool = self._pools.get(pool_name)
        else:
            try:
                pool = self._by_key.get(settings_key(checked(config))) if self._by_key else None
            except ConfigError:  # its own launch says what is wrong
                return None
        if pool is None or self._closed:
            return None
        deadline = time.monotonic() + RETURN_WAIT_S
        while True:
            idle = [driver for driver in pool.drivers.values() if driver.state is DriverState.IDLE]
            if idle:  # the one that ran most (warm imports and JIT); the others age out beyond the size
                driver = max(idle, key=lambda driver: (driver.jobs_run, driver.idle_since))
                driver.state, driver.job_id = DriverState.BUSY, job_id
                driver.jobs_run += 1
                self._fill(pool)
                return driver.context
            remaining_s = deadline - time.monotonic()
            if pool.waiting >= pool.count(DriverState.RETURNING) or remaining_s <= 0:
                log.info("pool_empty", pool=pool.name, job_id=job_id)
                return None
            pool.waiting += 1
            try:
                async with asyncio.timeout(remaining_s):
                    await pool.changed.wait()
            except TimeoutError:
                pass
            finally:
                pool.waiting -= 1

    def give_back(self, context: LiveContext, job_id: str | None, *, killed: bool = False) -> bool:
        """``job_id``'s job in ``context`` ended (None: a rejoined driver has no job left). False
        when the context is no pooled driver of this server's (it is then stopped as ad-hoc)."""
        found = self._find(context)
        if found is None:
            return False
        pool, driver = found
        if driver.state is DriverState.REJOINING and job_id is None:
            driver.state = DriverState.BUSY
        elif driver.state is not DriverState.BUSY or driver.job_id != job_id:
            return True  # said before, or about an earlier job: the driver is already on its way
        driver.state = DriverState.RETURNING
        self._tasks.spawn(self._check_and_return(pool, driver, killed), name=f"pool-return-{context.id}")
        return True

    async def _check_and_return(self, pool: DriverPool, driver: PooledDriver, killed: bool) -> None:
        context = driver.context
        reason = self._recycle_reason(pool, driver, killed)
        if reason is None:
            loop = asyncio.get_running_loop()
            driver.session_checked = loop.create_future()
            try:
                context.send(CheckSession())
                async with asyncio.timeout(SESSION_CHECK_TIMEOUT_S):
                    answer = await driver.session_checked
                if answer.changed:
                    reason = "the job changed the session: " + ", ".join(answer.changes)
            except (BusError, TimeoutError, asyncio.CancelledError) as error:
                reason = f"no answer about its session ({type(error).__name__})"
            finally:
                driver.session_checked = None
        if context.ended.is_set() or driver.state is not DriverState.RETURNING:
            return
        if reason is None and not self._closed:
            self._make_idle(pool, driver)
            return
        await self.recycle(pool, driver, reason or "the server stops")

    @staticmethod
    def _recycle_reason(pool: DriverPool, driver: PooledDriver, killed: bool) -> str | None:
        context = driver.context
        if not context.accepts_jobs:
            return "it no longer takes jobs"
        if driver.jobs_run >= pool.settings.max_jobs:
            return f"it ran max-jobs ({pool.settings.max_jobs}) jobs"
        if killed or context.killed_at or context.stuck_job_ids:
            return "a job was killed"
        if context.named_objects:
            return "a job left named objects"
        return None

    def on_session_checked(self, context: LiveContext, answer: SessionChecked) -> None:
        found = self._find(context)
        if found is not None:
            future = found[1].session_checked
            if future is not None and not future.done():
                future.set_result(answer)

    async def recycle(self, pool: DriverPool, driver: PooledDriver, reason: str) -> None:
        pool.drivers.pop(driver.context.id, None)
        log.info("pool_driver_recycled", pool=pool.name, context_id=driver.context.id, reason=reason)
        pool.notify()
        self._fill(pool)
        await self._stop(driver.context)

    async def _stop_idle_extras(self) -> None:
        tick_s = max(0.1, min(pool.settings.idle_timeout_s for pool in self._pools.values()) / 4)
        while not self._closed:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            for pool in self._pools.values():
                idle = sorted(
                    (driver for driver in pool.drivers.values() if driver.state is DriverState.IDLE),
                    key=lambda driver: driver.idle_since,
                )
                for driver in idle[: max(0, len(idle) - pool.settings.size)]:
                    if now - driver.idle_since >= pool.settings.idle_timeout_s:
                        await self.recycle(pool, driver, "idle beyond the pool's size for idle-timeout")

    # --- restarts ------------------------------------------------------------------------------------

    def adopt(self, context: LiveContext) -> None:
        """A pooled driver launched before a restart (or by a dead peer) awaits its rejoin: it
        counts for its pool, and joins it once its jobs are over, if this server has that pool
        with the same settings."""
        name = context.record.config.get(POOL_KEY)
        pool = self._pools.get(str(name)) if name else None
        launched_with = {key: value for key, value in context.record.config.items() if key != POOL_KEY}
        if pool is None or settings_key(checked_quietly(launched_with)) != pool.key:
            return
        driver = PooledDriver(context, DriverState.REJOINING)
        pool.drivers[context.id] = driver
        self._tasks.spawn(self._watch(pool, driver), name=f"pool-watch-{context.id}")

    def forget(self, context: LiveContext) -> None:
        """A peer took the context over (this server was silent): no longer this pool's."""
        found = self._find(context)
        if found is not None:
            pool, _ = found
            pool.drivers.pop(context.id, None)
            pool.notify()
            self._fill(pool)

    def is_pooled(self, context: LiveContext) -> bool:
        return bool(context.record.config.get(POOL_KEY))

    def close(self) -> None:
        """The server stops: no more launches (its contexts are stopped, or left running, by the
        ContextManager with all others)."""
        self._closed = True
        for pool in self._pools.values():
            pool.notify()

    def _find(self, context: LiveContext) -> tuple[DriverPool, PooledDriver] | None:
        pool = self._pools.get(str(context.record.config.get(POOL_KEY, "")))
        driver = pool.drivers.get(context.id) if pool is not None else None
        return None if pool is None or driver is None else (pool, driver)

    # --- GET /pools ----------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "name": pool.name,
                "size": pool.settings.size,
                "maxJobs": pool.settings.max_jobs,
                "idle": pool.count(DriverState.IDLE),
                "busy": pool.count(DriverState.BUSY, DriverState.RETURNING),
                "launching": pool.count(DriverState.LAUNCHING) + pool.pending_launches,
                "rejoining": pool.count(DriverState.REJOINING),
                "contextIds": sorted(pool.drivers),
            }
            for pool in self._pools.values()
        ]


def checked_quietly(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored context's launch settings, compared as the pool's were (``checked``)."""
    try:
        return checked({key: value for key, value in config.items() if key not in ("is-adhoc", "context")})
    except ConfigError:
        return config
