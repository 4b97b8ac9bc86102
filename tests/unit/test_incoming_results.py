"""The server's side of max-result-size, for a driver that does not check it (one of an earlier
release): a result that passes the limit while its chunks arrive is refused, its spool removed at
once, and the job's end says how large it was; results under the limit come back whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.common.config import load_settings
from jobserver.jobs.incoming_results import SPOOL_FOLDER, IncomingResults, ResultIncomplete, ResultTooLarge
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


async def test_a_result_whose_parts_do_not_add_up_to_its_size_is_refused_not_stored_cut(
    tmp_path: Path,
) -> None:
    results = incoming(tmp_path)
    await results.add_chunk("ctx-1", "job-1", CHUNK)  # the driver sent two chunks; one was lost
    results.expect("job-1", 2 * len(CHUNK) + 3)
    with pytest.raises(ResultIncomplete) as incomplete:
        await results.complete("job-1", b"end")
    assert incomplete.value.error["errorClass"] == "ResultIncomplete"
    assert incomplete.value.error["message"].startswith(
        "Job result arrived incomplete: 1027 of its 2051 bytes reached the server"
    )
    assert results.spool_files() == []
    await results.add_chunk("ctx-1", "unsaid", CHUNK)  # a driver of an earlier release: no size
    unchecked = await results.complete("unsaid", b"end")
    assert isinstance(unchecked, FileResult) and unchecked.read_all() == CHUNK + b"end"


async def test_a_rejoined_drivers_report_sent_again_starts_over(tmp_path: Path) -> None:
    results = incoming(tmp_path)
    await results.add_chunk("ctx-1", "job-1", b"first ")  # then the connection broke
    results.restart({"job-1", "unknown"})
    assert results.spool_files() == []
    for part in (b"first ", b"second "):  # the whole report again
        await results.add_chunk("ctx-1", "job-1", part)
    results.expect("job-1", 17)
    result = await results.complete("job-1", b"last")
    assert isinstance(result, FileResult)
    assert result.read_all() == b"first second last"
    results.restart({"job-1"})  # complete: being stored, kept
    assert await results.complete("job-1", b"last") is result
