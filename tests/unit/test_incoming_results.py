"""The server's side of max-result-size, for a driver that does not check it (one of an earlier
release): a result that passes the limit while its chunks arrive is refused, its spool removed at
once, and the job's end says how large it was; results under the limit come back whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.common.config import load_settings
from jobserver.jobs.incoming_results import SPOOL_FOLDER, IncomingResults, ResultTooLarge
from jobserver.storage.results import FileResult

CHUNK = b"x" * 1024


def incoming(tmp_path: Path) -> IncomingResults:
    settings = load_settings(
        None, {"spark.jobserver.work-dir": str(tmp_path), "spark.jobserver.max-result-size": "3k"}
    )
    return IncomingResults(settings)


async def test_a_result_over_the_limit_is_refused_and_its_spool_removed_at_once(tmp_path: Path) -> None:
    results = incoming(tmp_path)
    for _ in range(3):
        await results.add_chunk("ctx-1", "job-1", CHUNK)
    assert len(results.spool_files()) == 1
    await results.add_chunk("ctx-1", "job-1", CHUNK)  # 4 KiB: over
    assert results.spool_files() == []
    await results.add_chunk("ctx-1", "job-1", CHUNK)
    with pytest.raises(ResultTooLarge) as refused:
        await results.complete("job-1", b"tail")
    assert refused.value.error["errorClass"] == "ResultTooLarge"
    assert refused.value.error["message"].startswith(
        "Job result of 5124 bytes is larger than spark.jobserver.max-result-size (3072 bytes) allows"
    )


async def test_results_under_the_limit_come_back_whole_and_spools_go_when_discarded(tmp_path: Path) -> None:
    (tmp_path / SPOOL_FOLDER).mkdir()
    (tmp_path / SPOOL_FOLDER / "orphan.spool").write_bytes(b"left by a crash")
    results = incoming(tmp_path)
    assert results.spool_files() == []  # a new server starts with nothing in transit
    assert await results.complete("small", b'"one message"') == b'"one message"'
    await results.add_chunk("ctx-1", "big", CHUNK)
    await results.add_chunk("ctx-2", "other", CHUNK)
    result = await results.complete("big", b"end")
    assert isinstance(result, FileResult)
    assert result.read_all() == CHUNK + b"end"
    assert await results.complete("big", b"end") is result  # asked again after a store outage
    results.discard("big")
    results.discard_context("ctx-2")
    assert results.spool_files() == []
    assert result.read_all() == CHUNK + b"end"  # a reader holding it reads on
