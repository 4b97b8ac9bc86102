"""The domain records the storage layer returns and the domain layer passes around."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.common.states import ContextState, JobState

ErrorMap = Mapping[str, str]


class BinaryType(enum.StrEnum):
    JAR = "Jar"
    EGG = "Egg"
    WHEEL = "Wheel"
    URI = "Uri"
    PYTHON = "Python"  # a single module, uploaded as text/x-python

    @property
    def extension(self) -> str:
        return {"Jar": "jar", "Egg": "egg", "Wheel": "whl", "Uri": "uri", "Python": "py"}[self.value]


def utc_now() -> datetime.datetime:
    """Now, in UTC, to the millisecond (what the store keeps and the API prints)."""
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_epoch_ms(moment: datetime.datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_epoch_ms(epoch_ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated client, as the domain needs to know it: its name (recorded on the jobs and
    contexts it starts) and the users its work may run as (``*``: anyone)."""

    user: str
    acts_as: frozenset[str]

    def may_act_as(self, user: str) -> bool:
        return "*" in self.acts_as or user in self.acts_as


@dataclass(frozen=True, slots=True)
class BinaryRecord:
    """One uploaded version of a binary. The bytes live once per sha256 in the blob store."""

    id: int
    app_name: str
    binary_type: BinaryType
    upload_time: datetime.datetime
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ContextRecord:
    id: str
    name: str
    config: Mapping[str, Any]
    state: ContextState
    start_time: datetime.datetime
    end_time: datetime.datetime | None = None
    error: str | None = None
    application_id: str | None = None
    web_ui_url: str | None = None
    is_adhoc: bool = False
    # The server that launched the driver (its server id): at start-up a server reconciles only
    # the contexts it owns, so two servers can share one database.
    owner: str | None = None
    # The authenticated user who started it (None: authentication off).
    user: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    context_id: str
    context_name: str
    class_path: str
    state: JobState
    start_time: datetime.datetime
    end_time: datetime.datetime | None = None
    binary_ids: tuple[int, ...] = ()
    uris: tuple[str, ...] = ()
    error: ErrorMap | None = None
    callback_url: str | None = None
    user: str | None = None  # the authenticated user who submitted it (None: authentication off)


@dataclass(frozen=True, slots=True)
class PendingCallback:
    """A job's callback not delivered yet. The store queues it in the transaction that stores the
    job's end, so it survives the server; the body is rebuilt from the stored job."""

    job_id: str
    url: str
    attempts: int  # made so far
    next_attempt_time: datetime.datetime
    # The server delivering it (its server id), None while nobody is; it holds it until its lease
    # runs out, and another server may take it over after that.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """A server sharing the metadata store, as it last said (``heartbeat_time``): where peers
    forward requests about its contexts, and where its drivers may go when their server dies."""

    server_id: str
    rest_url: str
    bus_endpoint: str
    key_fingerprint: str  # servers with the same key trust each other and can adopt each other's drivers
    heartbeat_time: datetime.datetime
    adopted_by: str | None = None  # the server that took over its contexts once it went silent


@dataclass(frozen=True, slots=True)
class LogPage:
    """Lines of a log (a context's driver log, or what a job printed): ``start`` is the number of
    the first line given (from 0), ``total`` how many lines the log has (Livy's ``from``/``total``)."""

    start: int
    total: int
    lines: list[str]
