"""Rows to domain records, shared by the SQL backends.

Both backends select the same columns in the same order (the ``*_COLUMNS`` tuples). SQLite hands
JSON columns back as text, PostgreSQL as parsed values (JSONB, arrays); the decoders accept both.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jobserver.common.records import (
    BinaryRecord,
    BinaryType,
    ContextRecord,
    JobRecord,
    PendingCallback,
    ServerRecord,
    from_epoch_ms,
    to_epoch_ms,
)
from jobserver.common.states import ContextState, JobState

BINARY_COLUMNS = ("id", "app_name", "binary_type", "upload_time", "sha256", "size_bytes")
CONTEXT_COLUMNS = (
    "id",
    "name",
    "config",
    "state",
    "start_time",
    "end_time",
    "error",
    "application_id",
    "web_ui_url",
    "is_adhoc",
    "owner",
    "user_name",
)
JOB_COLUMNS = (
    "id",
    "context_id",
    "context_name",
    "class_path",
    "state",
    "start_time",
    "end_time",
    "uris",
    "error",
    "callback_url",
    "user_name",
)


def column_list(columns: Sequence[str], table_alias: str = "") -> str:
    prefix = f"{table_alias}." if table_alias else ""
    return ", ".join(prefix + column for column in columns)


def to_json(value: Any) -> str:
    """Compact JSON; any Mapping (a pyhocon tree, a read-only proxy) is written as an object."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_value(value: Any) -> Any:
    """A JSON column's value: parsed when the driver returned text, as is otherwise."""
    return json.loads(value) if isinstance(value, str) else value


def _optional_time(epoch_ms: int | None) -> Any:
    return None if epoch_ms is None else from_epoch_ms(epoch_ms)


def binary_from_row(row: Sequence[Any]) -> BinaryRecord:
    id_, app_name, binary_type, upload_time, sha256, size_bytes = row
    return BinaryRecord(
        id=id_,
        app_name=app_name,
        binary_type=BinaryType(binary_type),
        upload_time=from_epoch_ms(upload_time),
        sha256=sha256,
        size_bytes=size_bytes,
    )


def context_from_row(row: Sequence[Any]) -> ContextRecord:
    (
        id_,
        name,
        config,
        state,
        start_time,
        end_time,
        error,
        application_id,
        web_ui_url,
        is_adhoc,
        owner,
        user,
    ) = row
    return ContextRecord(
        id=id_,
        name=name,
        config=json_value(config),
        state=ContextState(state),
        start_time=from_epoch_ms(start_time),
        end_time=_optional_time(end_time),
        error=error,
        application_id=application_id,
        web_ui_url=web_ui_url,
        is_adhoc=bool(is_adhoc),
        owner=owner,
        user=user,
    )


def job_from_row(row: Sequence[Any], binary_ids: Sequence[int]) -> JobRecord:
    (
        id_,
        context_id,
        context_name,
        class_path,
        state,
        start_time,
        end_time,
        uris,
        error,
        callback_url,
        user,
    ) = row
    return JobRecord(
        id=id_,
        context_id=context_id,
        context_name=context_name,
        class_path=class_path,
        state=JobState(state),
        start_time=from_epoch_ms(start_time),
        end_time=_optional_time(end_time),
        binary_ids=tuple(binary_ids),
        uris=tuple(json_value(uris)),
        error=None if error is None else json_value(error),
        callback_url=callback_url,
        user=user,
    )


def _optional_ms(moment: datetime.datetime | None) -> int | None:
    return None if moment is None else to_epoch_ms(moment)


def context_values(context: ContextRecord, encode_json: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The values of CONTEXT_COLUMNS for an insert; ``encode_json`` adapts JSON for the driver."""
    return (
        context.id,
        context.name,
        encode_json(context.config),
        context.state.value,
        to_epoch_ms(context.start_time),
        _optional_ms(context.end_time),
        context.error,
        context.application_id,
        context.web_ui_url,
        context.is_adhoc,
        context.owner,
        context.user,
    )


def job_values(job: JobRecord, encode_json: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The values of JOB_COLUMNS for an insert (the binary ids go to the job_binaries table)."""
    return (
        job.id,
        job.context_id,
        job.context_name,
        job.class_path,
        job.state.value,
        to_epoch_ms(job.start_time),
        _optional_ms(job.end_time),
        encode_json(list(job.uris)),
        None if job.error is None else encode_json(job.error),
        job.callback_url,
        job.user,
    )


PENDING_CALLBACK_COLUMNS = ("job_id", "url", "attempts", "next_attempt_time", "owner")


def pending_callback_from_row(row: Sequence[Any]) -> PendingCallback:
    return PendingCallback(
        job_id=row[0], url=row[1], attempts=int(row[2]), next_attempt_time=from_epoch_ms(row[3]), owner=row[4]
    )


SERVER_COLUMNS = ("server_id", "rest_url", "bus_endpoint", "key_fingerprint", "heartbeat_time", "adopted_by")


def server_values(server: ServerRecord) -> tuple[Any, ...]:
    """The row of a server's beat (``adopted_by`` is cleared: it is alive)."""
    return (
        server.server_id,
        server.rest_url,
        server.bus_endpoint,
        server.key_fingerprint,
        to_epoch_ms(server.heartbeat_time),
        None,
    )


def server_from_row(row: Sequence[Any]) -> ServerRecord:
    server_id, rest_url, bus_endpoint, fingerprint, heartbeat_ms, adopted_by = row
    return ServerRecord(
        server_id=server_id,
        rest_url=rest_url,
        bus_endpoint=bus_endpoint,
        key_fingerprint=fingerprint,
        heartbeat_time=from_epoch_ms(heartbeat_ms),
        adopted_by=adopted_by,
    )
