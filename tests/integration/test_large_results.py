"""Results of any size: a 100 MB result arrives whole, byte for byte, from a sync POST and from
GET /jobs/<id>, on SQLite and on PostgreSQL, with write-behind on and off (and a chunked one in
its callback); the server keeps no
spool file of it afterwards (nor any a crash left); a result over max-result-size ends its job in
ERROR with a message naming the key, and nothing of it is stored.

The job is a lone module on the light stand-in driver (no JVM): it returns random bytes, which
the driver encodes as a base64 string, so the test knows every byte it must get back."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support import FAKE_SPARK_HOMES, Api, callback_listener, running_server, wait_until

BIG_RESULT = """
import random


def main(spark, config):
    return random.Random(int(config.get("seed"))).randbytes(int(config.get("bytes")))
"""
RESULT_BYTES = 75 << 20  # base64 makes 100 MiB of them
JOB = "/jobs?cp=big_result&mainClass=big_result:main&context=big"
SPOOL = "result-spool"


def expected_result(seed: int, size_bytes: int) -> bytes:
    return b'"' + base64.b64encode(random.Random(seed).randbytes(size_bytes)) + b'"'


async def start(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", "/binaries/big_result", data=BIG_RESULT, headers={"Content-Type": "text/x-python"}
    )
    assert status == 201, body
    assert (await api.call("POST", "/contexts/big"))[0] == 200


async def raw_call(api: Api, method: str, path: str, data: str = "") -> tuple[int, bytes, str]:
    """The answer's bytes as they came (no JSON decoding of 100 MB) and its transfer encoding."""
    async with api.session.request(method, path, data=data or None) as response:
        return response.status, await response.read(), response.headers.get("Transfer-Encoding", "")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'work' / 'metadata.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.mark.parametrize("write_behind", [True, False], ids=["write-behind", "write-behind-off"])
async def test_a_100_mb_result_arrives_whole_from_sync_post_and_get(
    tmp_path: Path, store_url: str, write_behind: bool
) -> None:
    work_dir = tmp_path / "work"
    orphan = work_dir / SPOOL / "left-by-a-crash.spool"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 1024)
    overrides: dict[str, Any] = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.store.url": store_url,
        "spark.jobserver.write-behind": write_behind,
    }
    async with running_server(work_dir, overrides) as api:
        assert not orphan.exists()  # removed at start: its driver sends the report again
        await start(api)
        config = json.dumps({"seed": 7, "bytes": RESULT_BYTES})
        status, body, encoding = await raw_call(api, "POST", f"{JOB}&sync=true&timeout=120", config)
        assert status == 200, body[:500]
        assert encoding == "chunked"
        job_id = json.loads(body[:100].split(b',"result":')[0] + b"}")["jobId"]
        wanted = expected_result(7, RESULT_BYTES)
        assert len(wanted) == (100 << 20) + 2
        assert body == b'{"jobId":"' + job_id.encode() + b'","result":' + wanted + b"}"
        del body

        status, stored, encoding = await raw_call(api, "GET", f"/jobs/{job_id}")
        assert (status, encoding) == (200, "chunked")
        head, result = stored.split(b',"result":', 1)
        assert result == wanted + b"}"
        assert json.loads(head + b"}")["status"] == "FINISHED"
        del stored, result

        async def spool_empty() -> bool:
            return not any((work_dir / SPOOL).iterdir())

        await wait_until(spool_empty, timeout_s=30, what="no result spooled once stored")


async def test_a_result_over_max_result_size_ends_the_job_in_error_and_stores_nothing(tmp_path: Path) -> None:
    overrides = {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.max-result-size": "2m"}
    async with running_server(tmp_path / "work", overrides) as api:
        await start(api)
        config = json.dumps({"seed": 1, "bytes": 3 << 20})
        status, body, _ = await api.call("POST", f"{JOB}&sync=true", data=config)
        assert status == 200, body
        assert body["status"] == "ERROR"
        assert body["result"]["errorClass"] == "ResultTooLarge"
        message = body["result"]["message"]
        assert "spark.jobserver.max-result-size (2097152 bytes)" in message
        assert "Job result of 4194306 bytes" in message
        _, report, _ = await api.call("GET", f"/jobs/{body['jobId']}")
        assert report["status"] == "ERROR"
        assert report["result"]["message"] == message

        small = json.dumps({"seed": 2, "bytes": 1 << 20})  # 1.3 MiB encoded: chunked, under the cap
        status, answer, encoding = await raw_call(api, "POST", f"{JOB}&sync=true", small)
        assert (status, encoding) == (200, "chunked")
        assert answer.endswith(b',"result":' + expected_result(2, 1 << 20) + b"}")

        async def spool_empty() -> bool:  # the answer may come before the finish is stored
            return not any((tmp_path / "work" / SPOOL).iterdir())

        await wait_until(spool_empty, timeout_s=30, what="no result spooled once stored")


async def test_a_chunked_result_reaches_its_callback_whole(tmp_path: Path) -> None:
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.callback.allowed-hosts": ["127.0.0.1"],  # the listener's
    }
    async with (
        callback_listener(max_body_bytes=8 << 20) as (receiver, url),
        running_server(tmp_path / "work", overrides) as api,
    ):
        await start(api)
        config = json.dumps({"seed": 5, "bytes": 3 << 20})  # 4 MiB encoded: four chunks
        path = f"{JOB}&callbackUrl={quote(url, safe='')}"
        status, job, _ = await api.call("POST", path, data=config)
        assert status == 202, job

        async def received() -> bool:
            return bool(receiver.received)

        await wait_until(received, timeout_s=30, what="the callback delivered")
        wanted = json.loads(expected_result(5, 3 << 20))
        assert receiver.received == [{"jobId": job["jobId"], "result": wanted}]
