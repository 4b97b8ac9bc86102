"""Every message between the job server and its drivers, defined once for both sides.

A frame on the wire is one msgpack array ``[version, type, fields]``, except a large result's
chunk, whose bytes follow a header rather than sit in the array (``encode``). Each message is a
frozen dataclass; ``encode`` and ``decode`` are the only ways to cross the wire, so a new field or
a new message is added here and nowhere else. No pickle: a hostile or confused peer can at worst
make ``decode`` raise ``ProtocolError``.

This module is imported by both ``jobserver`` and ``driver``; it must stay free of either side's
imports (only the standard library and msgpack). It is longer than our modules should be (400
lines) because it is the one place for all that both sides share (messages, failure kinds, the
secrets file, context factories); split, the vocabulary would no longer be defined once.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from dataclasses import dataclass, field
from typing import ClassVar

import msgpack

PROTOCOL_VERSION = 2

# Why a job failed, as the driver saw it. The server maps each onto the contract's HTTP answer.
FAILURE_ERROR = "error"  # the job's own code raised
FAILURE_VALIDATION = "validation"  # validate() returned problems
FAILURE_NOT_FOUND = "not_found"  # the main class or function does not exist in the job's packages
FAILURE_LOADING = "loading"  # a package could not be loaded
FAILURE_INVALID_TYPE = "invalid_type"  # the job does not fit the context's factory
FAILURE_MALFORMED_URL = "malformed_url"  # a cp entry is a URI the driver cannot read
FAILURE_KINDS = frozenset(
    {
        FAILURE_ERROR,
        FAILURE_VALIDATION,
        FAILURE_NOT_FOUND,
        FAILURE_LOADING,
        FAILURE_INVALID_TYPE,
        FAILURE_MALFORMED_URL,
    }
)


# The main class of an SQL job (a statement in the job config's ``sql`` key, no binary needed).
SQL_MAIN_CLASS = "sql"

# What a context's factory hands its jobs (``context-factory``, spark-jobserver's class names).
# Here, not in the driver's spark module, because the server refuses any other name before it
# launches a driver, and it may import nothing of the driver but this module.
SESSION = "session"
SPARK_CONTEXT = "spark_context"
STREAMING = "streaming"
DEFAULT_CONTEXT_FACTORY = "spark.jobserver.python.PythonSessionContextFactory"
CONTEXT_FACTORIES: dict[str, str] = {
    DEFAULT_CONTEXT_FACTORY: SESSION,
    "spark.jobserver.context.SessionContextFactory": SESSION,
    "spark.jobserver.context.DefaultSparkContextFactory": SPARK_CONTEXT,
    "spark.jobserver.python.PythonSparkContextFactory": SPARK_CONTEXT,
    # spark-jobserver's Java factory names: here they hand JVM jobs (and Python ones) the same.
    "spark.jobserver.context.JavaSessionContextFactory": SESSION,
    "spark.jobserver.context.JavaSparkContextFactory": SPARK_CONTEXT,
    # Hive: the server launches these with spark.sql.catalogImplementation=hive.
    "spark.jobserver.python.PythonHiveContextFactory": SESSION,
    "spark.jobserver.context.HiveContextFactory": SESSION,
    # DStreams: a pyspark StreamingContext (a JavaStreamingContext for JVM jobs).
    "spark.jobserver.context.StreamingContextFactory": STREAMING,
    "spark.jobserver.context.JavaStreamingContextFactory": STREAMING,
}


class ProtocolError(Exception):
    """A frame that is not a message of this protocol version."""


@dataclass(frozen=True, slots=True)
class Message:
    TYPE: ClassVar[str] = ""


# --- driver to server -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """First frame of a driver: who it is and the one-time token it was launched with."""

    TYPE: ClassVar[str] = "hello"
    context_id: str
    token: str
    pid: int
    pgid: int = 0  # the driver's process group (spark-submit's session), signalled as a whole
    host: str = ""  # where that process group lives


@dataclass(frozen=True, slots=True)
class Rejoin(Message):
    """A driver that outlived its server introduces itself to the server now listening (answer to
    ``Reintroduce``): who it is, what it runs, and which final job reports it still holds."""

    TYPE: ClassVar[str] = "rejoin"
    context_id: str
    token: str
    pid: int
    pgid: int
    host: str
    running_job_ids: list[str]
    held_job_ids: list[str]  # reports sent but never acknowledged; they are sent again
    application_id: str = ""  # empty while Spark is still starting
    web_ui_url: str | None = None


@dataclass(frozen=True, slots=True)
class ContextReady(Message):
    """The driver's Spark context is up; jobs may be sent."""

    TYPE: ClassVar[str] = "context_ready"
    application_id: str
    web_ui_url: str | None
    spark_version: str


@dataclass(frozen=True, slots=True)
class ContextInitFailed(Message):
    TYPE: ClassVar[str] = "context_init_failed"
    error: dict[str, str]


@dataclass(frozen=True, slots=True)
class JobStarted(Message):
    """The job was loaded (and, where the job API asks for it, validated) and now runs."""

    TYPE: ClassVar[str] = "job_started"
    job_id: str


@dataclass(frozen=True, slots=True)
class JobResultChunk(Message):
    """Part of a large result; the rest follows, then ``JobResultSize`` and ``JobFinished``.

    ``data`` travels after the frame's header, and decodes as a memoryview of the frame: the
    server writes it where it goes without a copy of its own. The driver sends the next part once
    the server says this one is put away (``JobResultChunkAck``)."""

    TYPE: ClassVar[str] = "job_result_chunk"
    job_id: str
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class JobResultSize(Message):
    """After a large result's last ``JobResultChunk``, before its ``JobFinished``: the whole
    encoding's size, which the server checks its parts add up to. A message of its own rather than
    a field, so that a server of an earlier release drops it (logged) and takes the rest."""

    TYPE: ClassVar[str] = "job_result_size"
    job_id: str
    result_bytes: int


@dataclass(frozen=True, slots=True)
class JobFinished(Message):
    """The job returned. ``result`` is (the last chunk of) its JSON encoding."""

    TYPE: ClassVar[str] = "job_finished"
    job_id: str
    result: bytes


@dataclass(frozen=True, slots=True)
class JobFailed(Message):
    TYPE: ClassVar[str] = "job_failed"
    job_id: str
    kind: str  # one of FAILURE_KINDS
    error: dict[str, str]  # the contract's error map: message, errorClass, stack


@dataclass(frozen=True, slots=True)
class JobKilled(Message):
    TYPE: ClassVar[str] = "job_killed"
    job_id: str


@dataclass(frozen=True, slots=True)
class FetchBlob(Message):
    """A driver asks for a binary's bytes (it cannot read the server's file: another host)."""

    TYPE: ClassVar[str] = "fetch_blob"
    request_id: str
    sha256: str


@dataclass(frozen=True, slots=True)
class FetchDataFile(Message):
    """A job asks for a data file uploaded through /data, by the name the upload returned."""

    TYPE: ClassVar[str] = "fetch_data_file"
    request_id: str
    name: str


@dataclass(frozen=True, slots=True)
class NamedObjectsChanged(Message):
    """The context's named objects now are these (name, type, storageLevel each)."""

    TYPE: ClassVar[str] = "named_objects_changed"
    objects: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class JobLog(Message):
    """Lines a job printed or logged (stdout, stderr, Python logging of its thread), batched.
    ``first_line`` numbers the first of them (from 0), so a batch sent twice is stored once. New
    within version 2: a server of an earlier release never launches drivers that send it."""

    TYPE: ClassVar[str] = "job_log"
    job_id: str
    first_line: int
    lines: list[str]


@dataclass(frozen=True, slots=True)
class JobProgress(Message):
    """A running job's Spark work from Spark's status tracker for its job group: ``jobs``,
    ``stages`` and ``tasks``, each ``{"total", "active", "completed", "failed"}``. Sent only for a
    job still running after the first progress interval, and only when it changed."""

    TYPE: ClassVar[str] = "job_progress"
    job_id: str
    progress: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class SessionChecked(Message):
    """Answer to ``CheckSession``: whether the jobs run so far left the Spark session otherwise
    than it was when the driver became ready, and what changed (pooled drivers only)."""

    TYPE: ClassVar[str] = "session_checked"
    changed: bool
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DriverHeartbeat(Message):
    TYPE: ClassVar[str] = "driver_heartbeat"
    running_job_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DriverStopping(Message):
    """The driver is going away on its own (stop requested, server silent, fatal error)."""

    TYPE: ClassVar[str] = "driver_stopping"
    reason: str


# --- server to driver -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Answer to a valid Hello, with the liveness settings the driver must follow."""

    TYPE: ClassVar[str] = "welcome"
    heartbeat_interval_s: float
    server_silence_grace_s: float
    max_jobs: int  # worker threads the driver runs jobs on
    result_chunk_bytes: int  # results larger than this are sent as JobResultChunk frames
    context_config_json: bytes  # the context's merged settings (factory, streaming, …), JSON
    server_config_json: bytes  # the server's whole config, JSON: every job's config falls back to it


@dataclass(frozen=True, slots=True)
class ServerEndpoints(Message):
    """The bus endpoints of the servers that may take this driver over (its own server's first,
    then its live peers sharing its key), sent after ``Welcome`` and whenever they change. A driver
    whose server goes silent tries them in turn and sends ``Rejoin`` to the one that answers. A
    driver of an earlier release drops it as an unknown message and keeps its one server."""

    TYPE: ClassVar[str] = "server_endpoints"
    endpoints: list[str]


@dataclass(frozen=True, slots=True)
class ResultLimit(Message):
    """Sent after ``Welcome``: the largest job result the server keeps (``max-result-size``). The
    driver fails a job whose encoded result is larger instead of sending it; the server enforces
    the limit anyway. A driver of an earlier release drops it as an unknown message."""

    TYPE: ClassVar[str] = "result_limit"
    max_result_bytes: int


@dataclass(frozen=True, slots=True)
class Reintroduce(Message):
    """To a connection the server does not know (it restarted): say who you are (``Rejoin``)."""

    TYPE: ClassVar[str] = "reintroduce"


@dataclass(frozen=True, slots=True)
class JobReportAck(Message):
    """The job's final report (result, failure or kill) is stored: the driver may forget it."""

    TYPE: ClassVar[str] = "job_report_ack"
    job_id: str


@dataclass(frozen=True, slots=True)
class JobResultChunkAck(Message):
    """The job's result parts so far (``received_bytes`` of it) are put away: send the next.

    No more than a chunk's worth of a result goes unanswered (``driver.result_parts``): the server
    never holds more than one chunk of it, however fast the driver makes them. A driver that hears
    nothing for a while sends on anyway."""

    TYPE: ClassVar[str] = "job_result_chunk_ack"
    job_id: str
    received_bytes: int


@dataclass(frozen=True, slots=True)
class Rejected(Message):
    TYPE: ClassVar[str] = "rejected"
    reason: str


@dataclass(frozen=True, slots=True)
class JobPackage:
    """A binary the job needs: where the driver can read it and how to check it."""

    name: str
    sha256: str
    binary_type: str  # Jar, Egg, Wheel, Python (a single module) or Uri
    location: str  # the server's local path ("" when the driver must fetch it), or a URI for Uri
    # sha256 is "" for a Uri: the driver names what it fetches by its content


@dataclass(frozen=True, slots=True)
class StartJob(Message):
    TYPE: ClassVar[str] = "start_job"
    job_id: str
    main_class: str
    packages: list[dict[str, str]]  # JobPackage fields, in cp order
    config_json: bytes  # the job's posted config, JSON (the driver merges it over the server's)
    validate_before_start: bool = False  # report JobStarted only after validate() passed


@dataclass(frozen=True, slots=True)
class BlobData(Message):
    """Part of the bytes a FetchBlob or FetchDataFile asked for; ``last`` on the final part,
    ``error`` when there are none."""

    TYPE: ClassVar[str] = "blob_data"
    request_id: str
    data: bytes
    last: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class KillJob(Message):
    TYPE: ClassVar[str] = "kill_job"
    job_id: str


@dataclass(frozen=True, slots=True)
class StopContext(Message):
    TYPE: ClassVar[str] = "stop_context"


@dataclass(frozen=True, slots=True)
class CheckSession(Message):
    """To a pooled driver whose job ended: has the session changed (``SessionChecked``)?"""

    TYPE: ClassVar[str] = "check_session"


@dataclass(frozen=True, slots=True)
class ServerHeartbeat(Message):
    TYPE: ClassVar[str] = "server_heartbeat"


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Rejoin,
        ServerEndpoints,
        ContextReady,
        ContextInitFailed,
        JobStarted,
        JobResultChunk,
        JobResultSize,
        JobFinished,
        JobFailed,
        JobKilled,
        JobLog,
        JobProgress,
        DriverHeartbeat,
        DriverStopping,
        FetchBlob,
        FetchDataFile,
        NamedObjectsChanged,
        BlobData,
        Welcome,
        ResultLimit,
        Reintroduce,
        JobReportAck,
        JobResultChunkAck,
        Rejected,
        StartJob,
        KillJob,
        StopContext,
        ServerHeartbeat,
        CheckSession,
        SessionChecked,
    )
}

# What a driver says about one of its jobs (the server's job manager takes these).
JOB_REPORTS: frozenset[type[Message]] = frozenset(
    {JobStarted, JobResultChunk, JobResultSize, JobFinished, JobFailed, JobKilled, JobLog, JobProgress}
)

# Each message type's field names, in order (dataclasses.fields() rebuilds its tuple per call).
_FIELD_NAMES: dict[type[Message], tuple[str, ...]] = {
    cls: tuple(field.name for field in dataclasses.fields(cls)) for cls in MESSAGE_TYPES.values()
}


# A frame that starts with this byte (one msgpack never uses) carries a message's bulk field after
# its header: the mark, the header's length (4 bytes, big-endian), the header (the usual array,
# without the bulk field), then the bulk bytes as they are. Decoded, the field is a memoryview of
# the frame rather than the copy msgpack would make.
_BULK_MARK = 0xC1
_BULK_FIELDS: dict[type[Message], str] = {JobResultChunk: "data"}


def encode(message: Message) -> bytes:
    fields = {name: getattr(message, name) for name in _FIELD_NAMES[type(message)]}
    bulk_field = _BULK_FIELDS.get(type(message))
    if bulk_field is None:
        frame: bytes = msgpack.packb([PROTOCOL_VERSION, message.TYPE, fields], use_bin_type=True)
        return frame
    bulk = fields.pop(bulk_field)
    header: bytes = msgpack.packb([PROTOCOL_VERSION, message.TYPE, fields], use_bin_type=True)
    return b"".join((bytes((_BULK_MARK,)), len(header).to_bytes(4, "big"), header, bulk))


def decode(frame: bytes | memoryview) -> Message:
    bulk: memoryview | None = None
    if len(frame) and frame[0] == _BULK_MARK:
        view = memoryview(frame)
        end = 5 + int.from_bytes(view[1:5], "big")
        if len(view) < end:
            raise ProtocolError("frame is shorter than its header says")
        frame, bulk = view[5:end], view[end:]
    try:
        version, type_name, fields = msgpack.unpackb(frame, raw=False)
    except Exception as error:  # msgpack raises several unrelated types for garbage
        raise ProtocolError(f"frame is not a protocol message: {error}") from error
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r}, expected {PROTOCOL_VERSION}")
    cls = MESSAGE_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {type_name!r}")
    if not isinstance(fields, dict):
        raise ProtocolError(f"message {type_name} has no field map")
    if bulk is not None:
        bulk_field = _BULK_FIELDS.get(cls)
        if bulk_field is None:
            raise ProtocolError(f"message {type_name} has no bulk field")
        fields[bulk_field] = bulk
    try:
        return cls(**fields)
    except TypeError as error:
        raise ProtocolError(f"message {type_name} has wrong fields: {error}") from error


# --- the driver's secrets file -------------------------------------------------------------------

# In client deploy mode the path of the secrets file comes in this environment variable; in cluster
# deploy mode spark-submit ships the file (--files) into the driver's working folder.
SECRETS_PATH_ENV = "JOBSERVER_DRIVER_SECRETS"


@dataclass(frozen=True, slots=True)
class DriverSecrets:
    """What a driver proves itself with, in a file only the server's user can read (never on a
    command line): its token, and its CURVE keys (Z85 text; empty when the bus is plaintext)."""

    token: str
    server_public_key: str = ""
    public_key: str = ""
    secret_key: str = ""

    @property
    def curve(self) -> bool:
        return bool(self.secret_key)

    def to_json(self) -> str:
        return json.dumps({field.name: getattr(self, field.name) for field in dataclasses.fields(self)})

    @classmethod
    def from_json(cls, text: str) -> DriverSecrets:
        try:
            fields = json.loads(text)
            secrets = cls(**fields)
        except (ValueError, TypeError) as error:
            raise ProtocolError(f"not a driver secrets file: {error}") from error
        if not all(isinstance(getattr(secrets, field.name), str) for field in dataclasses.fields(cls)):
            raise ProtocolError("not a driver secrets file: every field is a string")
        return secrets


def package_fields(package: JobPackage) -> dict[str, str]:
    # Field by field: dataclasses.asdict deep-copies and costs ten times as much, on every job.
    return {field.name: getattr(package, field.name) for field in _PACKAGE_FIELDS}


_PACKAGE_FIELDS = dataclasses.fields(JobPackage)


def error_map(message: str, error_class: str = "", stack: str = "") -> dict[str, str]:
    """spark-jobserver's error map, the one shape every error takes on the wire and in the API."""
    return {"message": message, "errorClass": error_class, "stack": stack}


MAX_RESULT_SIZE_KEY = "spark.jobserver.max-result-size"
RESULT_TOO_LARGE = "ResultTooLarge"  # the error class of a job whose result was refused


def result_too_large(size_bytes: int, max_bytes: int) -> dict[str, str]:
    """The error of a job whose result is over the server's limit, the same from either side."""
    message = (
        f"Job result of {size_bytes} bytes is larger than {MAX_RESULT_SIZE_KEY} ({max_bytes} bytes)"
        " allows; return less, or write it to a file the client fetches"
    )
    return error_map(message, RESULT_TOO_LARGE)


def describe_exception(exception: BaseException) -> dict[str, str]:
    cls = type(exception)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return error_map(str(exception), name, "".join(traceback.format_exception(exception)))
