"""PostgreSQL going away and coming back: while it is gone every call fails soon with
StoreUnavailable (503), and once it is back the same store works again without being reopened.

Uses a PostgreSQL server of its own (not the session's), because it stops it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from jobserver.common.errors import StoreUnavailable
from jobserver.storage import Store, create_store
from tests.pg import PostgresServer
from tests.storage.factories import make_job
from tests.support import wait_until

_T = TypeVar("_T")

POOL_TIMEOUT_S = 2
REPORT_LIMIT_S = 15.0
RECOVERY_LIMIT_S = 90.0


@pytest.fixture
async def store(private_postgres_server: PostgresServer, tmp_path: Path) -> AsyncIterator[Store]:
    url = private_postgres_server.create_database()
    opened = create_store(
        f"{url}?pool_min_size=1&pool_max_size=2&pool_timeout={POOL_TIMEOUT_S}", blob_dir=tmp_path / "blobs"
    )
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def assert_unavailable_soon(call: Callable[[], Awaitable[object]]) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"^metadata store unavailable: \S") as raised:
        await call()
    assert time.monotonic() - started < REPORT_LIMIT_S
    assert raised.value.http_status == 503


async def first_success(call: Callable[[], Awaitable[_T]], limit_s: float) -> _T:
    """What ``call`` gives once the store takes it again."""
    outcome: list[_T] = []

    async def succeeded() -> bool:
        try:
            outcome.append(await call())
        except StoreUnavailable:
            return False
        return True

    await wait_until(succeeded, timeout_s=limit_s, interval_s=0.2, what="the store back")
    return outcome[0]


async def test_outage_is_reported_as_unavailable_and_store_recovers_without_reopening(
    store: Store, private_postgres_server: PostgresServer, tmp_path: Path
) -> None:
    await store.insert_job(make_job("before"), {"input": 1})
    upload = tmp_path / "upload"
    upload.write_bytes(b"bytes")

    await asyncio.to_thread(private_postgres_server.shut_down, "fast")

    await assert_unavailable_soon(lambda: store.get_job("before"))
    await assert_unavailable_soon(lambda: store.insert_job(make_job("during"), {}))
    await assert_unavailable_soon(lambda: store.put_blob(hashlib.sha256(b"bytes").hexdigest(), upload))

    await asyncio.to_thread(private_postgres_server.start)

    assert await first_success(lambda: store.get_job("before"), RECOVERY_LIMIT_S) == make_job("before")
    assert await store.get_job_config("before") == {"input": 1}
    await store.insert_job(make_job("after", start_ms=1), {})
    assert [job.id for job in await store.list_jobs(10)] == ["after", "before"]
