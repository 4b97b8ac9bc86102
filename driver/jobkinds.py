"""The kinds of job a driver runs, found by ``mainClass``.

* spark-jobserver's Python API (``sparkjobserver.api``): ``module.Class`` with ``validate`` and
  ``run_job``; validation problems make the job ERROR, as they did in spark-jobserver.
* the native API (``sparkjobserver.native``): ``module:function`` or ``module.Class`` with ``run``;
  a ``ValidationError`` rejects the request (400) before the job starts.
* SQL (``mainClass`` = ``SQL_MAIN_CLASS``): the config's ``sql`` statement, rows out, at most
  ``spark.jobserver.sql.max-rows`` of them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from driver.protocol import (
    FAILURE_INVALID_TYPE,
    FAILURE_LOADING,
    FAILURE_NOT_FOUND,
    FAILURE_VALIDATION,
    SQL_MAIN_CLASS,
    describe_exception,
    error_map,
)
from driver.spark import SparkHandle

DEFAULT_SQL_MAX_ROWS = 1000


class JobRejected(Exception):
    """The job cannot run: the request gets a 4xx (kind says which)."""

    def __init__(self, kind: str, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = dict(details) if details else error_map(message, "JobLoadingError")


class JobProblems(Exception):
    """A started job's validation failed: it ends as a job ERROR with these problems."""


class Job:
    """One loaded job: ``prepare`` runs before the job is reported started, ``run`` after."""

    def prepare(self, spark: SparkHandle, config: Any) -> Any:
        return config

    def run(self, spark: SparkHandle, data: Any, env: Any) -> Any:
        raise NotImplementedError


class CompatJob(Job):
    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def run(self, spark: SparkHandle, data: Any, env: Any) -> Any:
        from sparkjobserver.api import JobEnvironment, is_validation_failure

        checked = self._instance.validate(spark.job_context, None, data)
        if is_validation_failure(checked):
            raise JobProblems("Validation failed: " + "; ".join(str(problem.problem) for problem in checked))
        legacy_env = JobEnvironment(env.job_id, env.named_objects, env.context_config)
        return self._instance.run_job(spark.job_context, legacy_env, checked)


class NativeClassJob(Job):
    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def prepare(self, spark: SparkHandle, config: Any) -> Any:
        validate = getattr(self._instance, "validate", None)
        return _validated(lambda: validate(spark.job_context, config)) if validate else config

    def run(self, spark: SparkHandle, data: Any, env: Any) -> Any:
        return self._instance.run(spark.job_context, data, env)


class FunctionJob(Job):
    def __init__(self, function: Any) -> None:
        self._function = function
        try:
            self._wants_env = len(inspect.signature(function).parameters) >= 3
        except (TypeError, ValueError):
            self._wants_env = False

    def run(self, spark: SparkHandle, data: Any, env: Any) -> Any:
        arguments = (spark.job_context, data, env) if self._wants_env else (spark.job_context, data)
        return _validated(lambda: self._function(*arguments), rejected=False)


class SqlJob(Job):
    def prepare(self, spark: SparkHandle, config: Any) -> Any:
        statement = config.get("sql", None)
        if not isinstance(statement, str) or not statement.strip():
            raise JobRejected(FAILURE_VALIDATION, "an SQL job needs a statement in sql")
        max_rows = int(config.get("spark.jobserver.sql.max-rows", DEFAULT_SQL_MAX_ROWS))
        return statement, max_rows

    def run(self, spark: SparkHandle, data: Any, env: Any) -> Any:
        statement, max_rows = data
        frame = spark.session.sql(statement)
        rows = frame.limit(max_rows + 1).collect()
        return {
            "columns": [
                {"name": field.name, "type": field.dataType.simpleString()} for field in frame.schema
            ],
            "rows": [list(row) for row in rows[:max_rows]],
            "truncated": len(rows) > max_rows,
        }


def _validated(call: Any, *, rejected: bool = True) -> Any:
    from sparkjobserver.native import ValidationError

    try:
        return call()
    except ValidationError as error:
        if not rejected:  # a function job has already started: its problems make it ERROR
            raise JobProblems(f"Validation failed: {error}") from error
        details = error_map(f"Validation failed: {error}", "sparkjobserver.native.ValidationError")
        raise JobRejected(FAILURE_VALIDATION, details["message"], details) from error


def load_job(main_class: str) -> Job:
    if main_class == SQL_MAIN_CLASS:
        return SqlJob()
    if ":" in main_class:
        module_name, _, attribute = main_class.partition(":")
    else:
        module_name, _, attribute = main_class.rpartition(".")
    if not module_name or not attribute:
        raise JobRejected(FAILURE_NOT_FOUND, f"classPath {main_class} not found")
    target = getattr(_import(module_name, main_class), attribute, None)
    if target is None:
        raise JobRejected(FAILURE_NOT_FOUND, f"classPath {main_class} not found")
    if ":" in main_class:
        if inspect.isclass(target) or not callable(target):
            raise JobRejected(FAILURE_INVALID_TYPE, "Invalid job type for this context")
        return FunctionJob(target)
    if not inspect.isclass(target):
        raise JobRejected(FAILURE_INVALID_TYPE, "Invalid job type for this context")
    try:
        instance = target()
    except Exception as error:
        raise JobRejected(FAILURE_LOADING, str(error), describe_exception(error)) from error
    if callable(getattr(instance, "validate", None)) and callable(getattr(instance, "run_job", None)):
        return CompatJob(instance)
    if callable(getattr(instance, "run", None)):
        return NativeClassJob(instance)
    raise JobRejected(FAILURE_INVALID_TYPE, "Invalid job type for this context")


def _import(module_name: str, main_class: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise JobRejected(FAILURE_NOT_FOUND, f"classPath {main_class} not found") from error
        raise JobRejected(FAILURE_LOADING, str(error), describe_exception(error)) from error
    except Exception as error:  # a package that fails to import (syntax error, bad import)
        raise JobRejected(FAILURE_LOADING, str(error), describe_exception(error)) from error
