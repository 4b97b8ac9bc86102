"""What a workflow or a schedule asks to run, read from its posted JSON: pure, no I/O but the
parse of a HOCON config (in ``job_request``).

A job is an object of POST /jobs's parameters (``appName``, ``classPath``, ``context``, …) and
its ``config`` (an object, or HOCON text). A workflow is ``{"name", "steps": [{"name", "job",
"after": [...], "continue-on-failure": bool}]}``. A step's config may name the result of a step it
comes after (directly or not) as ``${steps.<name>.result}``: in HOCON text the reference is
replaced by the result's JSON text before the text is parsed; in a JSON config a string that is
the reference alone becomes the result's JSON value, and a reference inside a longer string
becomes the result's JSON text. A result that does not exist (its step failed and was marked
continue-on-failure) is ``null``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.common.bodies import BodyParseError, parse_body
from jobserver.common.config import expand_dotted
from jobserver.common.errors import BadRequest
from jobserver.common.records import Caller
from jobserver.jobs.submission import JOB_PARAMETERS, JobRequest, request_from_parameters

REFERENCE = re.compile(r"\$\{steps\.([A-Za-z0-9_-]+)\.result\}")
SUBSTITUTION = re.compile(r"\$\{\??[^}]*\}")  # any of HOCON's, ours included
NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
MAX_STEPS = 200


@dataclass(frozen=True, slots=True)
class JobSpec:
    parameters: Mapping[str, str]
    config: Mapping[str, Any] | str  # HOCON text is parsed when the job starts (after substitution)

    def references(self) -> set[str]:
        text = self.config if isinstance(self.config, str) else json.dumps(self.config)
        return set(REFERENCE.findall(text))


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    job: JobSpec
    after: tuple[str, ...] = ()
    continue_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    steps: tuple[StepSpec, ...]

    def step(self, name: str) -> StepSpec:
        return next(step for step in self.steps if step.name == name)

    def dependants(self, name: str) -> Iterator[StepSpec]:
        return (step for step in self.steps if name in step.after)


def parse_job(value: Any, where: str = "job") -> JobSpec:
    if not isinstance(value, Mapping):
        raise BadRequest(f"{where} must be an object of POST /jobs parameters and a config")
    unknown = sorted(set(value) - JOB_PARAMETERS - {"config"})
    if unknown:
        raise BadRequest(
            f"{where}: unknown parameter {', '.join(unknown)} (known: {', '.join(sorted(JOB_PARAMETERS))})"
        )
    parameters = {key: item for key, item in value.items() if key != "config"}
    if not all(isinstance(item, str) for item in parameters.values()):
        raise BadRequest(f"{where}: parameters are strings")
    config = value.get("config", {})
    if not isinstance(config, Mapping | str):
        raise BadRequest(f"{where}.config must be an object or HOCON text")
    return JobSpec(parameters, config if isinstance(config, str) else expand_dotted(config))


def parse_workflow(value: Any) -> WorkflowSpec:
    if not isinstance(value, Mapping) or not isinstance(value.get("steps"), list) or not value["steps"]:
        raise BadRequest("a workflow is an object with a non-empty list of steps")
    unknown = sorted(set(value) - {"name", "steps"})
    if unknown:  # a typo ("nmae") would otherwise start a workflow that is not the one meant
        raise BadRequest(f"unknown workflow field {', '.join(unknown)}")
    name = value.get("name", "workflow")
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest("a workflow's name is 1 to 100 letters, digits, - or _")
    if len(value["steps"]) > MAX_STEPS:
        raise BadRequest(f"a workflow has at most {MAX_STEPS} steps")
    steps = tuple(_parse_step(item, index) for index, item in enumerate(value["steps"]))
    spec = WorkflowSpec(name, steps)
    _check_graph(spec)
    return spec


def _parse_step(value: Any, index: int) -> StepSpec:
    if not isinstance(value, Mapping):
        raise BadRequest(f"steps[{index}] must be an object")
    unknown = sorted(set(value) - {"name", "job", "after", "continue-on-failure"})
    if unknown:
        raise BadRequest(f"steps[{index}]: unknown field {', '.join(unknown)}")
    name = value.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest(f"steps[{index}].name must be 1 to 100 letters, digits, - or _")
    after = value.get("after", [])
    if not isinstance(after, list) or not all(isinstance(item, str) for item in after):
        raise BadRequest(f"step {name}: after must be a list of step names")
    keep_going = value.get("continue-on-failure", False)
    if not isinstance(keep_going, bool):
        raise BadRequest(f"step {name}: continue-on-failure must be true or false")
    return StepSpec(name, parse_job(value.get("job"), f"step {name}: job"), tuple(after), keep_going)


def _check_graph(spec: WorkflowSpec) -> None:
    names = [step.name for step in spec.steps]
    if len(set(names)) != len(names):
        raise BadRequest("step names must be unique")
    for step in spec.steps:
        missing = sorted(set(step.after) - set(names))
        if missing:
            raise BadRequest(f"step {step.name} comes after unknown step {', '.join(missing)}")
    ancestors = {step.name: _ancestors(spec, step.name) for step in spec.steps}
    for step in spec.steps:
        if step.name in ancestors[step.name]:
            raise BadRequest(f"step {step.name} comes after itself (a cycle)")
        foreign = sorted(step.job.references() - ancestors[step.name])
        if foreign:
            raise BadRequest(
                f"step {step.name} refers to the result of {', '.join(foreign)}, which it does not come after"
            )


def _ancestors(spec: WorkflowSpec, name: str) -> set[str]:
    seen: set[str] = set()
    pending = list(spec.step(name).after)
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(spec.step(current).after)
    return seen


def job_spec_json(spec: JobSpec) -> dict[str, Any]:
    """The spec as posted (what is stored)."""
    return {**spec.parameters, "config": spec.config if isinstance(spec.config, str) else dict(spec.config)}


def substitute(
    config: Mapping[str, Any] | str, results: Mapping[str, bytes | None]
) -> Mapping[str, Any] | str:
    """``${steps.<name>.result}`` replaced by the named step's result (JSON bytes; None: null)."""

    def text(name: str) -> str:
        result = results.get(name)
        return "null" if result is None else result.decode()

    if isinstance(config, str):
        return REFERENCE.sub(lambda match: text(match.group(1)), config)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            whole = REFERENCE.fullmatch(value)
            if whole is not None:
                return json.loads(text(whole.group(1)))
            return REFERENCE.sub(lambda match: text(match.group(1)), value)
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(config)  # type: ignore[no-any-return]


async def job_request(
    spec: JobSpec,
    *,
    results: Mapping[str, bytes | None] | None = None,
    caller: Caller | None = None,
    run_as: str | None = None,
) -> JobRequest:
    """The job to submit (async): references substituted, HOCON text parsed."""
    config = substitute(spec.config, results or {})
    if isinstance(config, str):
        try:
            config = await parse_body(config)
        except BodyParseError as error:
            raise BadRequest(f"Cannot parse config: {error}") from error
    return request_from_parameters(spec.parameters, config, caller=caller, run_as=run_as)


async def check_job(spec: JobSpec) -> JobRequest:
    """A job's request with every referenced result null: it must parse (400 when it does not).

    HOCON text that refers to a result may read into it with substitutions of its own
    (``r = ${steps.a.result}`` then ``input = ${r.rows}``), which cannot resolve before the
    result exists: there every substitution is null for the check, which then checks the
    syntax, and they resolve when the step starts."""
    if isinstance(spec.config, str) and spec.references():
        spec = JobSpec(spec.parameters, SUBSTITUTION.sub("null", spec.config))
    return await job_request(spec, results={name: None for name in spec.references()})
