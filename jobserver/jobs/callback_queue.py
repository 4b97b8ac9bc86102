"""Pending callbacks, delivered from the store so that they survive the server that queued them.

The store queues a job's callback in the transaction that stores its end (base.Store). The
server that ended the job claims it at once (``job_ended``); a server claims callbacks under a
lease that lasts until LEASE_GRACE_S after the next attempt's deadline, and renews it with each
failed attempt, so no other server sharing the database delivers it meanwhile. After each failed
attempt the count and the next attempt's time are stored; once delivered, refused (the URL may no
longer be called) or out of attempts, the callback is removed.

At start, and every TAKEOVER_INTERVAL_S after, the server takes over what nobody holds: what its
own previous process left (at start), what a stopped server released, and what a server that
died or lost the store held when its lease ran out. Each is delivered with the attempts it has
left, at the time its next attempt was due, and still only where the allowed hosts say.

A stop does not wait for retries: the tasks are cancelled with the server's background work and
the server releases what it held, for the next server (or its own next process) to take over.
Delivery is at least once: a server that dies between a successful attempt and its removal
leaves the callback for another to deliver again.
"""

from __future__ import annotations

import asyncio
import datetime
from concurrent.futures import ThreadPoolExecutor

import structlog

from jobserver.common.config import Settings
from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import JobRecord, PendingCallback, utc_now
from jobserver.common.states import JobState
from jobserver.common.tasks import BackgroundTasks, retry_while_store_unavailable
from jobserver.jobs.callbacks import (
    CALLBACK_THREADS,
    CallbackBody,
    CallbackPolicy,
    CallbackTargets,
    Outcome,
    callback_body,
    post_callback,
)
from jobserver.storage.base import Store
from jobserver.storage.results import Result

log = structlog.get_logger(__name__)

# How long a lease outlasts its holder's next attempt: room for clocks of servers sharing the
# database that disagree, and for a busy event loop.
LEASE_GRACE_S = 60.0
# How often a running server looks for callbacks nobody holds (a stopped or dead server's).
TAKEOVER_INTERVAL_S = 30.0
# A delivered callback's removal is retried this long (within the lease: nobody else delivers it
# meanwhile).
REMOVE_RETRY_LIMIT_S = LEASE_GRACE_S / 2


class CallbackQueue:
    def __init__(self, settings: Settings, store: Store, tasks: BackgroundTasks) -> None:
        self._owner = settings.server_id
        self._store = store
        self._tasks = tasks
        self._policy = CallbackPolicy(
            attempts=settings.callback_attempts,
            retry_interval_s=settings.callback_retry_interval_s,
            timeout_s=settings.callback_timeout_s,
        )
        self.targets = CallbackTargets(settings.callback_allowed_hosts)
        self._threads = ThreadPoolExecutor(CALLBACK_THREADS, thread_name_prefix="callback")
        # Covers the wait for the next attempt (the lease counts from its time) and the attempt.
        self._lease_s = self._policy.timeout_s + LEASE_GRACE_S
        self._delivering: set[str] = set()  # job ids: a claim renewed by a take-over is not a second delivery

    def job_ended(self, record: JobRecord, result: Result | None) -> None:
        """``record``'s end is stored, and with it its pending callback if it gets one: deliver it."""
        body = callback_body(record, result) if record.callback_url else None
        if body is not None:
            self._tasks.spawn(self._deliver_new(record.id, body), name=f"callback-{record.id}")

    async def keep_taking_over(self) -> None:
        """Take over the callbacks nobody holds, this server's previous process's first, then
        every TAKEOVER_INTERVAL_S."""
        own = True
        while True:
            try:
                await self.take_over(own=own)
                own = False
            except StoreUnavailable as error:
                log.warning("callback_takeover_failed", error=error.message)
            await asyncio.sleep(TAKEOVER_INTERVAL_S)

    async def take_over(self, *, own: bool) -> None:
        claimed = await self._store.claim_callbacks(self._owner, lease_s=self._lease_s, own=own)
        for pending in claimed:
            if self._begin(pending.job_id):
                log.info("callback_taken_over", job_id=pending.job_id, attempts_made=pending.attempts)
                self._tasks.spawn(self._deliver_stored(pending), name=f"callback-{pending.job_id}")

    async def close(self) -> None:
        """After the server's background work is cancelled: what this server held may be taken over
        at once by another (or by its own next process)."""
        try:
            released = await self._store.release_callbacks(self._owner)
        except StoreUnavailable as error:  # then they are taken over when their leases run out
            log.warning("callbacks_not_released", error=error.message)
        else:
            if released:
                log.info("callbacks_released", count=released)
        self._threads.shutdown(wait=False, cancel_futures=True)

    # --- delivery ----------------------------------------------------------------------------------

    def _begin(self, job_id: str) -> bool:
        if job_id in self._delivering:
            return False
        self._delivering.add(job_id)
        return True

    async def _deliver_new(self, job_id: str, body: CallbackBody) -> None:
        try:
            claimed = await self._store.claim_callbacks(self._owner, lease_s=self._lease_s, job_id=job_id)
        except StoreUnavailable as error:  # stored with the job's end: a take-over delivers it
            log.warning("callback_postponed", job_id=job_id, error=error.message)
            return
        for pending in claimed:
            if self._begin(pending.job_id):
                await self._deliver(pending, body)

    async def _deliver_stored(self, pending: PendingCallback) -> None:
        """A taken-over callback: its body is rebuilt from the stored job."""
        try:
            job = await self._store.get_job(pending.job_id)
            result = None
            if job is not None and job.state is JobState.FINISHED:
                result = await self._store.get_result(job.id)
            body = callback_body(job, result) if job is not None else None
            if body is None:
                log.warning("callback_dropped", job_id=pending.job_id, reason="the job is gone")
                await self._store.remove_callback(pending.job_id)
                self._delivering.discard(pending.job_id)
                return
        except StoreUnavailable as error:  # taken over again when the lease runs out
            log.warning("callback_postponed", job_id=pending.job_id, error=error.message)
            self._delivering.discard(pending.job_id)
            return
        await self._deliver(pending, body)

    async def _deliver(self, pending: PendingCallback, body: CallbackBody) -> None:
        """Attempt until delivered, refused or out of attempts, storing each failure; then remove."""
        job_id = pending.job_id
        try:
            attempt = pending.attempts
            await _sleep_until(pending.next_attempt_time)
            while attempt < self._policy.attempts:
                attempt += 1
                outcome = await post_callback(
                    pending.url, body, job_id, attempt, self._policy, self.targets, self._threads
                )
                if outcome is not Outcome.FAILED or attempt == self._policy.attempts:
                    break
                next_attempt_time = utc_now() + datetime.timedelta(seconds=self._policy.retry_interval_s)
                if not await self._store.reschedule_callback(
                    job_id,
                    self._owner,
                    attempts=attempt,
                    next_attempt_time=next_attempt_time,
                    lease_s=self._lease_s,
                ):
                    log.warning("callback_lease_lost", job_id=job_id)
                    return
                await _sleep_until(next_attempt_time)
            else:
                outcome = Outcome.FAILED  # out of attempts before this server's first
            if outcome is Outcome.FAILED:
                log.error("callback_abandoned", job_id=job_id, attempts=attempt)
            await retry_while_store_unavailable(
                lambda: self._store.remove_callback(job_id),
                what="callback_removed",
                limit_s=REMOVE_RETRY_LIMIT_S,
            )
        except StoreUnavailable as error:  # stays stored: taken over again when the lease runs out
            log.warning("callback_postponed", job_id=job_id, error=error.message)
        finally:
            self._delivering.discard(job_id)


async def _sleep_until(moment: datetime.datetime) -> None:
    delay_s = (moment - utc_now()).total_seconds()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
