"""The one storage interface. Everything above it cannot tell SQLite from PostgreSQL.

Rules every backend keeps (the contract tests in tests/storage check them on each backend):
* Methods return domain records (jobserver.common.records), never rows.
* State changes are compare-and-set: ``update_job`` / ``update_context`` change the row only when
  its current state is one the target may be entered from (jobserver.common.states tables) and return
  the new record, or ``None`` when nothing changed. Entering a final state sets ``end_time``.
* A job entering FINISHED or ERROR (``CALLBACK_JOB_STATES``) with a ``callback_url`` queues its
  pending callback in the same transaction: it is stored exactly when the job's end is.
* Times are UTC with millisecond precision.
* Blobs are content addressed by sha256 and stored once however many versions or names use them.
* Every method raises ``StoreUnavailable`` (HTTP 503, made by ``store_unavailable``) when the
  database cannot be reached, and never the driver's own connection errors.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import (
    BinaryRecord,
    BinaryType,
    ContextRecord,
    ErrorMap,
    JobRecord,
    PendingCallback,
    ServerRecord,
)
from jobserver.common.states import ContextState, JobState
from jobserver.storage.results import FileResult, Result
from jobserver.storage.scheduling import SchedulingStore

# Retention spares unreferenced blobs younger than this: an upload puts its blob first and adds
# the binary version that references it a moment later.
BLOB_GRACE_PERIOD_S = 60.0


def store_unavailable(reason: str) -> StoreUnavailable:
    """The error for "the database cannot be reached"; ``reason`` is short (one line)."""
    return StoreUnavailable(f"metadata store unavailable: {reason}")


class Store(SchedulingStore, abc.ABC):
    """Schedules and workflows: ``SchedulingStore`` (storage/scheduling.py)."""

    # --- life cycle ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations from sql/<dialect>/ (under a lock)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- binaries --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def put_blob(self, sha256: str, source: Path) -> None:
        """Take the file at ``source`` (a temporary file the caller no longer needs) as the blob
        with this hash. Idempotent: an existing blob is kept and ``source`` is removed."""

    @abc.abstractmethod
    async def blob_file(self, sha256: str) -> Path:
        """A local file holding the blob's bytes (raises KeyError when there is no such blob)."""

    @abc.abstractmethod
    async def add_binary_version(
        self,
        app_name: str,
        binary_type: BinaryType,
        sha256: str,
        size_bytes: int,
        upload_time: datetime.datetime,
    ) -> BinaryRecord: ...

    @abc.abstractmethod
    async def latest_binaries(self) -> list[BinaryRecord]:
        """The newest version of every app name, ordered by app name."""

    @abc.abstractmethod
    async def latest_binary(self, app_name: str) -> BinaryRecord | None: ...

    @abc.abstractmethod
    async def get_binaries(self, binary_ids: Collection[int]) -> list[BinaryRecord]: ...

    @abc.abstractmethod
    async def binary_users(self, app_name: str) -> list[str]:
        """Ids of jobs in a non-final state that use any version of ``app_name``."""

    @abc.abstractmethod
    async def delete_binary(self, app_name: str) -> bool:
        """Remove every version of ``app_name``, and each blob no other version references.
        False when there was no such binary."""

    # --- contexts --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_context(self, context: ContextRecord) -> None: ...

    @abc.abstractmethod
    async def latest_context(self, name: str) -> ContextRecord | None:
        """The most recently started context of that name, in any state."""

    @abc.abstractmethod
    async def list_contexts(
        self, states: Collection[ContextState] | None = None, *, owner: str | None = None
    ) -> list[ContextRecord]:
        """Newest first; all states when ``states`` is None. With ``owner``, only the contexts of
        that owner and those of no owner (launched before contexts had owners)."""

    @abc.abstractmethod
    async def update_context(
        self,
        context_id: str,
        target: ContextState,
        *,
        error: str | None = None,
        application_id: str | None = None,
        web_ui_url: str | None = None,
    ) -> ContextRecord | None:
        """Compare-and-set to ``target``; ``application_id``/``web_ui_url`` are set when given."""

    # --- jobs ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_job(self, job: JobRecord, config: Mapping[str, Any]) -> None:
        """Store a new job together with its posted config (kept for GET /jobs/<id>/config)."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    @abc.abstractmethod
    async def list_jobs(self, limit: int, state: JobState | None = None) -> list[JobRecord]:
        """Newest start_time first, at most ``limit``."""

    @abc.abstractmethod
    async def jobs_in_context(
        self, context_id: str, states: Collection[JobState] | None = None
    ) -> list[JobRecord]: ...

    @abc.abstractmethod
    async def update_job(
        self, job_id: str, target: JobState, *, error: ErrorMap | None = None
    ) -> JobRecord | None:
        """Compare-and-set to ``target``."""

    @abc.abstractmethod
    async def get_job_config(self, job_id: str) -> Mapping[str, Any] | None: ...

    @abc.abstractmethod
    async def finish_job(
        self, job_id: str, result_json: bytes | FileResult, *, end_time: datetime.datetime | None = None
    ) -> JobRecord | None:
        """Store the result and move the job to FINISHED in one transaction, if it may still
        finish; otherwise (killed, failed meanwhile) store nothing and return None. ``end_time``
        defaults to now (a caller that already told a client when the job ended passes that).
        A ``FileResult`` (a spooled large result, results.py) is stored without reading it whole;
        the caller removes its spool file afterwards."""

    @abc.abstractmethod
    async def get_result(self, job_id: str) -> Result | None:
        """The stored result: ``bytes``, or a ``ResultStream`` for a result stored in chunks."""

    # --- job logs ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def append_job_log(self, job_id: str, first_line: int, lines: Sequence[str]) -> None:
        """Store lines a job printed, numbered from ``first_line``; a line number already stored
        keeps its line (a batch sent twice is stored once). The job must exist."""

    @abc.abstractmethod
    async def job_log(self, job_id: str, start: int, size: int) -> tuple[int, list[str]]:
        """The number of lines stored for the job (0 when none) and up to ``size`` of them from
        line ``start``."""

    # --- pending callbacks -------------------------------------------------------------------------
    # Queued by update_job / finish_job (above). A server claims one for itself (its owner, the
    # server id) with a lease; the lease runs until ``lease_s`` after the callback's next attempt
    # time (or now, if that is past), and until it runs out no other server may claim it.

    @abc.abstractmethod
    async def claim_callbacks(
        self, owner: str, *, lease_s: float, job_id: str | None = None, own: bool = False
    ) -> list[PendingCallback]:
        """Claim for ``owner`` the pending callbacks nobody holds (no owner, or a lease that ran
        out), and with ``own`` also those ``owner`` holds already (left by its previous process);
        with ``job_id``, only that job's. Atomic: two servers never claim the same callback.
        Returns what was claimed, oldest next attempt first."""

    @abc.abstractmethod
    async def reschedule_callback(
        self, job_id: str, owner: str, *, attempts: int, next_attempt_time: datetime.datetime, lease_s: float
    ) -> bool:
        """After a failed attempt: ``attempts`` made so far, the next one at ``next_attempt_time``,
        the lease renewed. False (and nothing changed) when ``owner`` no longer holds it."""

    @abc.abstractmethod
    async def remove_callback(self, job_id: str) -> None:
        """Delivered, or given up: no server delivers it again."""

    @abc.abstractmethod
    async def release_callbacks(self, owner: str) -> int:
        """``owner`` stops: its callbacks may be claimed by any server at once. How many."""

    @abc.abstractmethod
    async def list_callbacks(self) -> list[PendingCallback]:
        """Every pending callback, oldest next attempt first."""

    # --- servers sharing the store ------------------------------------------------------------------

    @abc.abstractmethod
    async def beat(self, server: ServerRecord) -> str | None:
        """Insert or refresh this server's row (its ``heartbeat_time`` and addresses); a server
        that beats again is nobody's to adopt any more (``adopted_by`` cleared). Returns who had
        adopted it since its last beat (None: nobody), read and cleared in one transaction, so
        that an adoption between a server's look at the table and its beat is never lost."""

    @abc.abstractmethod
    async def list_servers(self) -> list[ServerRecord]:
        """Every server that has beaten, by server id."""

    @abc.abstractmethod
    async def remove_server(self, server_id: str) -> None:
        """A server that stops (its contexts stopped) leaves nothing to adopt."""

    @abc.abstractmethod
    async def adopt_contexts(
        self, dead_server_id: str, adopter_id: str, *, silent_since: datetime.datetime
    ) -> list[ContextRecord]:
        """Take over the contexts in a non-final state of a server whose last heartbeat is before
        ``silent_since`` and that nobody adopted yet: in one transaction, mark it adopted by
        ``adopter_id`` and make ``adopter_id`` their owner. Exactly one of several servers trying
        at once gets them; the others (and a try after the server beat again) get []."""

    # --- retention -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def delete_expired(self, before: datetime.datetime) -> dict[str, int]:
        """Delete what is no longer needed, each group in its own transaction, and count it:
        ``jobs`` in a final state whose end_time is before ``before`` (with their configs, results
        and class path entries), ``contexts`` in a final state that ended before ``before``, and
        ``blobs`` no binary version references that were put at least BLOB_GRACE_PERIOD_S ago
        (whatever ``before`` is). Jobs and contexts in a non-final state are never deleted."""
