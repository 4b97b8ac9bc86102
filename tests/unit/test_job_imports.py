"""How a job package takes its place on the driver's path, and which arguments a function job gets
(no JVM starts here)."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import sparkjobserver.native
from driver.job_imports import modules_in_archive, modules_of_files, prefer_on_path
from driver.jobbase import INVALID_TYPE, JobRejected
from driver.jobkinds import FunctionJob, load_job
from tests.sjs_packages import build_sjs_packages


def test_the_modules_a_package_provides_come_from_its_files_not_its_metadata() -> None:
    names = [
        "example_jobs/__init__.py",
        "example_jobs/word_count/__init__.py",
        "example_jobs/__pycache__/__init__.cpython-311.pyc",
        "sparkjobserver/api.py",
        "lone.py",
        "sjs_python_examples-0.11.1.dist-info/METADATA",
        "EGG-INFO/zip-safe",
    ]
    assert modules_of_files(names) == {
        "example_jobs",
        "example_jobs.word_count",
        "sparkjobserver",
        "sparkjobserver.api",
        "lone",
    }


@pytest.fixture
def clean_imports() -> Iterator[None]:
    """Give back sys.path and the sparkjobserver and example_jobs modules as they were."""
    path = list(sys.path)
    prefixes = ("sparkjobserver", "example_jobs")
    modules = {name: module for name, module in sys.modules.items() if name.startswith(prefixes)}
    yield
    sys.path[:] = path
    for name in [name for name in sys.modules if name.startswith(prefixes)]:
        del sys.modules[name]
    sys.modules.update(modules)


@pytest.mark.usefixtures("clean_imports")
def test_a_package_bundling_sparkjobserver_takes_the_name_and_the_drivers_native_api_stays(
    tmp_path: Path,
) -> None:
    egg, _ = build_sjs_packages(tmp_path)
    ours = sparkjobserver.native
    prefer_on_path(egg, modules_in_archive(egg))
    job = load_job("example_jobs.word_count.WordCountSparkSessionJob")
    assert type(job).__name__ == "CompatJob"
    assert sys.modules["sparkjobserver.api"].__file__.startswith(str(egg))
    assert not hasattr(sys.modules["sparkjobserver.api"], "is_validation_failure")  # theirs
    import sparkjobserver.native as native_again  # what a native job of another package does

    assert native_again is ours
    assert sys.modules["sparkjobserver"].native is ours


def test_driver_modules_are_never_forgotten(tmp_path: Path) -> None:
    package = tmp_path / "shadow.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("driver/__init__.py", "")
        archive.writestr("driver/jobkinds.py", "raise RuntimeError('not the driver')")
    before = sys.modules["driver.jobkinds"]
    path = list(sys.path)
    try:
        prefer_on_path(package, modules_in_archive(package))
        assert sys.modules["driver.jobkinds"] is before
    finally:
        sys.path[:] = path


def _one(spark):  # type: ignore[no-untyped-def]
    return ("one", spark)


def _two(spark, config):  # type: ignore[no-untyped-def]
    return ("two", spark, config)


def _three(spark, config, env):  # type: ignore[no-untyped-def]
    return ("three", spark, config, env)


def _three_and_a_default(spark, config, env, extra=None):  # type: ignore[no-untyped-def]
    return ("three", spark, config, env)


def _any(*arguments):  # type: ignore[no-untyped-def]
    return ("any", *arguments)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (_one, ("one", "spark")),
        (_two, ("two", "spark", "config")),
        (_three, ("three", "spark", "config", "env")),
        (_three_and_a_default, ("three", "spark", "config", "env")),
        (_any, ("any", "spark", "config", "env")),
    ],
)
def test_a_function_job_gets_as_many_of_spark_config_and_env_as_it_takes(
    function: Callable[..., Any], expected: tuple[str, ...]
) -> None:
    spark = SimpleNamespace(job_context="spark")
    assert FunctionJob(function).run(spark, "config", "env") == expected  # type: ignore[arg-type]


def test_a_function_job_that_takes_nothing_is_the_wrong_type() -> None:
    with pytest.raises(JobRejected) as rejected:
        FunctionJob(lambda: None)
    assert str(rejected.value) == INVALID_TYPE


def test_a_package_providing_a_standard_module_does_not_replace_the_drivers(tmp_path: Path) -> None:
    package = tmp_path / "shadow-stdlib.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("random.py", "raise RuntimeError('not the standard random')")
    import random

    path = list(sys.path)
    try:
        prefer_on_path(package, modules_in_archive(package))
        assert sys.modules["random"] is random
    finally:
        sys.path[:] = path
