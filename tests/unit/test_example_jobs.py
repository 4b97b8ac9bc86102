"""The example jobs and the job API, exercised without Spark: no JVM is started here.

Jobs get ``None`` as their context where they do not touch Spark; the Spark-backed ``run_job`` methods
are covered by the integration tests.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from pyhocon import ConfigFactory, ConfigTree

from driver.results import encode_result
from sparkjobserver.api import (
    JobEnvironment,
    NamedObject,
    NamedObjects,
    SparkJob,
    ValidationProblem,
    build_problems,
    is_validation_failure,
)

EXAMPLES_SOURCE = Path(__file__).resolve().parents[2] / "examples" / "python"
MAIN_CLASSES = [
    "example_jobs.word_count.WordCountSparkJob",
    "example_jobs.word_count.WordCountSparkSessionJob",
    "example_jobs.word_count.FailingSparkJob",
    "example_jobs.failing_job.FailingRunJob",
    "example_jobs.failing_job.FailingValidateJob",
    "example_jobs.session_window.SessionWindowJob",
    "example_jobs.sql_average.SQLAverageJob",
    "example_jobs.echo.EchoJob",
    "example_jobs.sleep_job.SleepJob",
    "example_jobs.sleep_job.PythonSleepJob",
    "example_jobs.udf_job.UdfJob",
    "example_jobs.contexts.SparkContextJob",
]
PEOPLE = 'input.data = [["bob", 20, 1200], ["jon", 21, 1400.5]]'

JobFactory = Callable[[str], SparkJob]


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> JobFactory:
    """Instantiate an example job from its mainClass, as the driver does (example_jobs goes on the path)."""
    monkeypatch.syspath_prepend(str(EXAMPLES_SOURCE))

    def instantiate(main_class: str) -> SparkJob:
        module_name, class_name = main_class.rsplit(".", 1)
        module: ModuleType = importlib.import_module(module_name)
        instance: SparkJob = getattr(module, class_name)()
        return instance

    return instantiate


def hocon(text: str = "") -> ConfigTree:
    return ConfigFactory.parse_string(text)


def problems_of(value: object) -> list[str]:
    assert is_validation_failure(value), value
    assert isinstance(value, list)
    return [problem.problem for problem in value]


# --- every example job ----------------------------------------------------------------------------


@pytest.mark.parametrize("main_class", MAIN_CLASSES)
def test_every_example_job_loads_from_its_main_class(job: JobFactory, main_class: str) -> None:
    assert isinstance(job(main_class), SparkJob)


# --- echo -----------------------------------------------------------------------------------------


def test_echo_job_returns_its_input_config(job: JobFactory) -> None:
    echo = job("example_jobs.echo.EchoJob")
    data = echo.validate(None, None, hocon('input { a = 1, "b.c" = [1, null], d { e = x } }'))
    result = echo.run_job(None, JobEnvironment("job-1", None, hocon()), data)
    assert encode_result(result) == b'{"a":1,"b.c":[1,null],"d":{"e":"x"}}'


def test_echo_job_without_input_returns_an_empty_object(job: JobFactory) -> None:
    echo = job("example_jobs.echo.EchoJob")
    assert encode_result(echo.run_job(None, None, echo.validate(None, None, hocon()))) == b"{}"


def test_echo_job_returns_a_scalar_input_as_it_is(job: JobFactory) -> None:
    echo = job("example_jobs.echo.EchoJob")
    assert echo.run_job(None, None, echo.validate(None, None, hocon("input = 42"))) == 42


# --- word count -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "main_class",
    [
        "example_jobs.word_count.WordCountSparkJob",
        "example_jobs.word_count.WordCountSparkSessionJob",
        "example_jobs.word_count.FailingSparkJob",
    ],
)
def test_word_count_jobs_without_input_strings_are_rejected(job: JobFactory, main_class: str) -> None:
    problems = job(main_class).validate(None, None, hocon())
    assert isinstance(problems, list)
    assert all(isinstance(problem, ValidationProblem) for problem in problems)
    assert problems_of(problems) == ["config input.strings not found"]


def test_word_count_passes_the_strings_on_as_job_data(job: JobFactory) -> None:
    data = job("example_jobs.word_count.WordCountSparkSessionJob").validate(
        None, None, hocon('input.strings = ["a", "b", "a"]')
    )
    assert data == ["a", "b", "a"]


def test_word_count_with_an_empty_list_is_not_rejected(job: JobFactory) -> None:
    data = job("example_jobs.word_count.WordCountSparkSessionJob").validate(
        None, None, hocon("input.strings = []")
    )
    assert data == []
    assert not is_validation_failure(data)


def test_failing_spark_job_fails_in_run_job(job: JobFactory) -> None:
    with pytest.raises(ValueError, match="Deliberate failure"):
        job("example_jobs.word_count.FailingSparkJob").run_job(None, None, ["a"])


# --- failing jobs ---------------------------------------------------------------------------------


def test_failing_run_job_validates_then_raises(job: JobFactory) -> None:
    failing = job("example_jobs.failing_job.FailingRunJob")
    assert failing.validate(None, None, hocon()) == "fine"
    with pytest.raises(Exception, match="Deliberate failure"):
        failing.run_job(None, None, "fine")


def test_failing_validate_job_raises_in_validate(job: JobFactory) -> None:
    with pytest.raises(Exception, match="Deliberate failure"):
        job("example_jobs.failing_job.FailingValidateJob").validate(None, None, hocon())


# --- SQL examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "main_class", ["example_jobs.session_window.SessionWindowJob", "example_jobs.sql_average.SQLAverageJob"]
)
def test_sql_jobs_report_missing_session_and_data(job: JobFactory, main_class: str) -> None:
    problems = job(main_class).validate(None, None, hocon())
    assert problems_of(problems) == ["Expected a SparkSession context", "config input.data not found"]


@pytest.mark.parametrize(
    "main_class", ["example_jobs.session_window.SessionWindowJob", "example_jobs.sql_average.SQLAverageJob"]
)
def test_sql_jobs_reject_malformed_people(job: JobFactory, main_class: str) -> None:
    problems = job(main_class).validate(None, None, hocon('input.data = [["bob", "twenty", 1200]]'))
    assert problems_of(problems)[-1] == "config input.data must be a list of [name, age, salary] entries"


def test_people_are_typed_for_the_schema(job: JobFactory) -> None:
    people_module = importlib.import_module("example_jobs.people")
    assert people_module.read_people(hocon(PEOPLE)) == ([("bob", 20, 1200.0), ("jon", 21, 1400.5)], [])


# --- sleeping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "main_class", ["example_jobs.sleep_job.SleepJob", "example_jobs.sleep_job.PythonSleepJob"]
)
@pytest.mark.parametrize(
    ("config", "expected"), [("", 10.0), ("sleep.seconds = 2", 2.0), ("sleep.seconds = 0.5", 0.5)]
)
def test_sleep_jobs_read_their_duration(
    job: JobFactory, main_class: str, config: str, expected: float
) -> None:
    assert job(main_class).validate(None, None, hocon(config)) == expected


@pytest.mark.parametrize("config", ["sleep.seconds = -1", 'sleep.seconds = "long"', "sleep.seconds = true"])
def test_sleep_jobs_reject_a_bad_duration(job: JobFactory, config: str) -> None:
    problems = job("example_jobs.sleep_job.SleepJob").validate(None, None, hocon(config))
    assert problems_of(problems) == ["config sleep.seconds must be a non-negative number"]


def test_python_sleep_job_sleeps_for_the_given_time(job: JobFactory) -> None:
    started = time.monotonic()
    assert job("example_jobs.sleep_job.PythonSleepJob").run_job(None, None, 0.2) == 0.2
    assert 0.2 <= time.monotonic() - started < 2


# --- UDF and SparkContext jobs --------------------------------------------------------------------


def test_udf_job_defaults_its_words(job: JobFactory) -> None:
    assert job("example_jobs.udf_job.UdfJob").validate(None, None, hocon()) == ["hello", "world"]


def test_udf_shouts(job: JobFactory) -> None:
    udfs = importlib.import_module("example_jobs.udfs")
    assert [udfs.shout("hi"), udfs.shout(None)] == ["HI!", None]


def test_spark_context_job_rejects_other_contexts(job: JobFactory) -> None:
    problems = job("example_jobs.contexts.SparkContextJob").validate(object(), None, hocon())
    assert problems_of(problems) == ["Expected a SparkContext context"]


# --- is_validation_failure ------------------------------------------------------------------------


class ValidationProblemFromAnotherCopy:
    """Stands for the class of a job package that bundles its own sparkjobserver.api."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


ValidationProblemFromAnotherCopy.__name__ = "ValidationProblem"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (build_problems(["one"]), True),
        (build_problems(["one", "two"]), True),
        ([ValidationProblemFromAnotherCopy("other copy")], True),
        ([], False),
        (None, False),
        ("config input.strings not found", False),
        (["config input.strings not found"], False),
        ([ValidationProblem("one"), "data"], False),
        (tuple(build_problems(["one"])), False),
        (ValidationProblem("one"), False),
        ({"problem": "one"}, False),
    ],
)
def test_is_validation_failure(value: object, expected: bool) -> None:
    assert is_validation_failure(value) is expected


# --- the rest of the API --------------------------------------------------------------------------


def test_build_problems_wraps_each_text() -> None:
    assert [problem.problem for problem in build_problems(["a", "b"])] == ["a", "b"]


def test_base_job_methods_must_be_overridden() -> None:
    base = SparkJob()
    with pytest.raises(NotImplementedError):
        base.validate(None, None, hocon())
    with pytest.raises(NotImplementedError):
        base.run_job(None, JobEnvironment("job-1", None, hocon()), None)
    assert base.build_context(None, None, None) is None


def test_job_environment_keeps_spark_jobserver_attribute_names() -> None:
    context_config = hocon("num-cpu-cores = 2")
    environment = JobEnvironment("job-1", None, context_config)
    assert (environment.jobId, environment.namedObjects, environment.contextConfig) == (
        "job-1",
        None,
        context_config,
    )


def test_named_objects_are_a_skeleton_only() -> None:
    named = NamedObject("obj", True, None)
    assert (named.obj, named.forceComputation, named.storage_level) == ("obj", True, None)
    objects = NamedObjects()
    calls: list[Callable[[], object]] = [
        lambda: objects.get("x"),
        lambda: objects.get_or_else_create("x", lambda: 1),
        lambda: objects.update("x", lambda: 1),
        lambda: objects.forget("x"),
        lambda: objects.destroy("x"),
        objects.get_names,
    ]
    for call in calls:
        with pytest.raises(NotImplementedError):
            call()
