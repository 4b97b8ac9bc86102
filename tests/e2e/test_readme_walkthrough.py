"""The README's walk-through, run as a user runs it: its own shell commands, in order, with bash
and curl against the real ``jobserver`` command, each answer compared with the one the README
shows under the command.

How an answer is compared: both are parsed as JSON; objects must have the same keys, lists the
same length, numbers and booleans the same values. In a string the README shows, ``…`` stands
for anything and a run of digits for any digits (ids, instants, durations, ports). A command the
README shows no answer for must succeed all the same (curl fails on an HTTP error here). A
``GET`` whose answer still differs is asked again until a deadline, as a user reading the output
would only look once the job had ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    EXAMPLES_WHEEL,
    REPO,
    SPARK_TEST_OVERRIDES,
    ServerProcess,
    free_port,
    processes_mentioning,
)

README = REPO / "README.md"
ASSIGNMENT = re.compile(r"^([A-Z_]+)=\$\(")
# Every command runs with a curl that fails on an HTTP error, so an error answer never passes.
CURL = 'curl() { command curl -sS --fail-with-body "$@"; }\n'
GET_RETRY_S = 60.0


@dataclass
class Step:
    command: str
    answer: str | None  # the JSON the README shows under the command, if any


def walkthrough_steps(readme: str) -> list[Step]:
    """The commands of the walk-through's shell block, each with the answer shown under it."""
    section = readme.split("## Walk-through", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    steps: list[Step] = []
    pending: list[str] = []  # the lines of a command continued with a backslash
    for line in block.splitlines():
        if pending:
            pending.append(line)
            if not line.endswith("\\"):
                steps.append(Step("\n".join(pending), None))
                pending = []
        elif line.startswith(("# {", "# [")):
            steps[-1].answer = line[2:]
        elif line.startswith("#  "):  # an answer shown on more than one line
            assert steps[-1].answer is not None
            steps[-1].answer += line[1:].strip()
        elif line.startswith("#") or not line.strip():
            continue  # the README's own explanations
        elif line.endswith("\\"):
            pending = [line]
        else:
            steps.append(Step(line, None))
    assert not pending, "the walk-through ends inside a command"
    return steps


def shown_string(shown: str) -> re.Pattern[str]:
    parts = re.split(r"(…|\d+)", shown)
    return re.compile(
        "".join(".*" if part == "…" else r"\d+" if part.isdigit() else re.escape(part) for part in parts),
        re.DOTALL,
    )


def differences(shown: Any, actual: Any, where: str = "answer") -> list[str]:
    """How ``actual`` differs from what the README shows (empty: it matches)."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        found = (
            [f"{where}: keys {sorted(actual)} instead of {sorted(shown)}"]
            if set(shown) != set(actual)
            else []
        )
        for key in shown.keys() & actual.keys():
            found += differences(shown[key], actual[key], f"{where}.{key}")
        return found
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(actual) != len(shown):
            return [f"{where}: {actual!r} instead of {shown!r}"]
        return [
            problem
            for index, item in enumerate(shown)
            for problem in differences(item, actual[index], f"{where}[{index}]")
        ]
    if isinstance(shown, str):
        if isinstance(actual, str) and shown_string(shown).fullmatch(actual):
            return []
        return [f"{where}: {actual!r} does not look like {shown!r}"]
    return (
        []
        if shown == actual and type(shown) is type(actual)
        else [f"{where}: {actual!r} instead of {shown!r}"]
    )


def test_the_walkthrough_reads_its_steps_and_compares_answers_as_documented() -> None:
    steps = walkthrough_steps(README.read_text())
    assert steps[0].command.startswith("curl -X POST -H 'Content-Type: application/python-wheel'")
    assert steps[0].answer == '{"status":"SUCCESS"}'
    assert any(ASSIGNMENT.match(step.command) for step in steps)
    assert all(json.loads(step.answer) is not None for step in steps if step.answer is not None)

    shown = {
        "jobId": "…",
        "startTime": "2026-11-22T02:19:53.961Z",
        "duration": "0.31 secs",
        "result": {"a": 2},
    }
    assert not differences(
        shown,
        {"jobId": "x-1", "startTime": "2026-12-06T10:00:00.5Z", "duration": "12.04 secs", "result": {"a": 2}},
    )
    assert differences(shown, {**shown, "result": {"a": 3}}) == ["answer.result.a: 3 instead of 2"]
    assert differences(shown, {**shown, "duration": "soon"}) == [
        "answer.duration: 'soon' does not look like '0.31 secs'"
    ]
    assert differences({"a": 1}, {"a": 1, "b": 2}) == ["answer: keys ['a', 'b'] instead of ['a']"]
    assert differences({"a": True}, {"a": 1}) == ["answer.a: 1 instead of True"]


def run_step(step: Step, port: int, variables: dict[str, str]) -> str:
    """Run one command of the walk-through in bash from the repository root; its output."""
    command = step.command.replace("localhost:8090", f"127.0.0.1:{port}")
    assigned = ASSIGNMENT.match(command)
    if assigned:  # hand the value on to the later commands, as the user's shell keeps it
        command += f'\nprintf %s "${assigned.group(1)}"'
    finished = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", CURL + command],
        cwd=REPO,
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert finished.returncode == 0, (
        f"{step.command}\nfailed ({finished.returncode}): {finished.stdout}{finished.stderr}"
    )
    if assigned:
        variables[assigned.group(1)] = finished.stdout
    return finished.stdout


@pytest.mark.spark
async def test_the_readme_walkthrough_works_as_shown(tmp_path: Path) -> None:
    assert EXAMPLES_WHEEL.exists(), "make install builds the example package the walk-through uploads"
    port = free_port()
    work_dir = tmp_path / "jobserver-work"  # the default's name: the README shows it in a path
    config = tmp_path / "walkthrough.conf"
    # The defaults `make run` serves on, but the tests' JVM settings (start-up over throughput:
    # nothing a client sees) and this test's port and work dir.
    settings = {key: value for key, value in SPARK_TEST_OVERRIDES.items() if ".launcher." in key}
    settings |= {"spark.jobserver.port": port, "spark.jobserver.work-dir": str(work_dir)}
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    server = ServerProcess(config, tmp_path / "server.log")
    await server.start(f"http://127.0.0.1:{port}")
    try:
        variables: dict[str, str] = {}
        for step in walkthrough_steps(README.read_text()):
            deadline = time.monotonic() + GET_RETRY_S
            problems: list[str] = []
            while True:
                output = await asyncio.to_thread(run_step, step, port, variables)
                if step.answer is None:
                    break
                problems = differences(json.loads(step.answer), json.loads(output))
                asks_again = " -X " not in step.command and " -d " not in step.command
                if not problems or not asks_again or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)  # a GET asked again until the job it shows has ended
            assert not problems, f"{step.command}\nanswered {output}\n" + "\n".join(problems)
    finally:
        assert await server.stop() == 0
        server.kill_if_running()
    assert not processes_mentioning(str(work_dir)), "a driver outlived the server"
