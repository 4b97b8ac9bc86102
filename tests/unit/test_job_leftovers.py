"""What a job leaves behind (its job object, config tree, data, environment and result) is freed
by the driver's main loop when the job's end is acknowledged, not by the job's thread between its
result and its report."""

from __future__ import annotations

import gc
import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driver.protocol import JobFinished, Message, StartJob
from driver.runner import JobRunner
from driver.spark import SESSION, SparkHandle

JOBS = """
import weakref

REFS = []

class Result(dict):
    pass

class Job:
    def validate(self, spark, config):
        REFS.append(weakref.ref(config))
        return config

    def run(self, spark, data, env):
        result = Result(answer=42)
        REFS.extend([weakref.ref(self), weakref.ref(env), weakref.ref(result)])
        return result
"""


class StandInContext:
    def setJobGroup(self, group_id: str, description: str, interrupt: bool) -> None:
        pass


@pytest.fixture
def jobs_module(tmp_path: Path) -> Iterator[object]:
    (tmp_path / "leftover_jobs.py").write_text(textwrap.dedent(JOBS))
    sys.path.insert(0, str(tmp_path))
    import leftover_jobs  # type: ignore[import-not-found]

    yield leftover_jobs
    sys.path.remove(str(tmp_path))
    sys.modules.pop("leftover_jobs", None)


def test_a_jobs_leftovers_live_until_its_end_is_acknowledged(tmp_path: Path, jobs_module) -> None:
    posted: list[Message] = []
    lock = threading.Lock()

    def post(message: Message) -> None:
        with lock:
            posted.append(message)

    context = StandInContext()
    runner = JobRunner(
        SparkHandle(kind=SESSION, session=context, spark_context=context),
        post,
        lambda: None,
        max_jobs=1,
        context_config={},
        package_dir=tmp_path / "packages",
        result_chunk_bytes=1 << 20,
        server_config_json=lambda: json.dumps({"server": {"key": 1}}).encode(),
    )
    try:
        runner.start(StartJob(job_id="job-1", main_class="leftover_jobs.Job", packages=[], config_json=b"{}"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (posted and not runner.running_job_ids()):
            time.sleep(0.001)
        assert [type(message) for message in posted] == [JobFinished]
        assert posted[0].result == b'{"answer":42}'
        gc.collect()
        refs = jobs_module.REFS
        assert len(refs) == 4 and all(ref() is not None for ref in refs)  # held for the main loop
        runner.drop_leftovers()
        gc.collect()
        assert [ref() for ref in refs] == [None] * 4
    finally:
        runner.shutdown(1.0)
