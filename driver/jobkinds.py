"""The kinds of job a driver runs, found by ``mainClass``.

* spark-jobserver's Python API (``sparkjobserver.api``): ``module.Class`` with ``validate`` and
  ``run_job``; validation problems make the job ERROR, as they did in spark-jobserver.
* the native API (``sparkjobserver.native``): ``module:function`` or ``module.Class`` with ``run``;
  a ``ValidationError`` rejects the request (400) before the job starts.
* SQL (``mainClass`` = ``SQL_MAIN_CLASS``): the config's ``sql`` statement, rows out, at most
  ``spark.jobserver.sql.max-rows`` of them.
* JVM (a class in a jar of the job's cp): ``public static Object run(<context>, String)``.

A job that says what it needs does not run in a context that hands it something else: the
contract's 400 "Invalid job type for this context". A Python job says so by annotating the first
parameter of its function (or of its class's ``run``/``validate``/``run_job``) as ``SparkSession``,
``SparkContext`` or ``StreamingContext``; a JVM job by the first parameter type of its ``run``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from driver import melin
from driver.jobbase import INVALID_TYPE, EntryPoint, Job, JobProblems, JobRejected
from driver.jvmjobs import JvmJob
from driver.protocol import (
    FAILURE_INVALID_TYPE,
    FAILURE_LOADING,
    FAILURE_NOT_FOUND,
    FAILURE_VALIDATION,
    SQL_MAIN_CLASS,
    describe_exception,
    error_map,
)
from driver.spark import SESSION, SPARK_CONTEXT, STREAMING, SparkHandle

# The driver's own job APIs, imported once at start: a job package may bundle another copy of
# sparkjobserver, which then shadows the name (driver.job_imports); these stay the driver's.
from sparkjobserver import api as compat_api
from sparkjobserver import native as native_api

_OWN_PACKAGE = sys.modules["sparkjobserver"]

if TYPE_CHECKING:
    from pyhocon import ConfigTree

    from sparkjobserver.native import JobEnvironment

DEFAULT_SQL_MAX_ROWS = 1000

Result = TypeVar("Result")

# What each context kind hands a job, by the class names a job may annotate its context with.
_CONTEXT_TYPE_NAMES = {SESSION: "SparkSession", SPARK_CONTEXT: "SparkContext", STREAMING: "StreamingContext"}


class CompatJob(Job):
    """A job of spark-jobserver's Python API: an object with ``validate`` and ``run_job``."""

    def __init__(self, validate: EntryPoint, run_job: EntryPoint) -> None:
        self._validate = validate
        self._run_job = run_job

    def entry_points(self) -> list[EntryPoint]:
        return [self._validate, self._run_job]

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        checked = self._validate(spark.job_context, None, data)
        if _is_validation_failure(checked):
            problems = cast("list[Any]", checked)
            raise JobProblems("Validation failed: " + "; ".join(str(problem.problem) for problem in problems))
        # spark-jobserver's API names a NamedObjects skeleton of its own; its jobs get the driver's.
        runtime = compat_api.JobEnvironment(env.job_id, env.named_objects, env.context_config)  # type: ignore[arg-type]
        return self._run_job(spark.job_context, runtime, checked)


def _is_validation_failure(value: object) -> bool:
    """A non-empty list of validation problems, from our ``sparkjobserver.api`` or from the copy a
    job package bundles (any released version: a class named ValidationProblem with a ``problem``)."""
    if not isinstance(value, list) or not value:
        return False
    return all(
        isinstance(item, compat_api.ValidationProblem)
        or (type(item).__name__ == "ValidationProblem" and hasattr(item, "problem"))
        for item in value
    )


class NativeClassJob(Job):
    """A job class of the native API: ``run``, and optionally ``validate``."""

    def __init__(self, run: EntryPoint, validate: EntryPoint | None) -> None:
        self._run = run
        self._validate = validate

    def entry_points(self) -> list[EntryPoint]:
        return [self._run] if self._validate is None else [self._run, self._validate]

    def prepare(self, spark: SparkHandle, config: ConfigTree) -> object:
        validate = self._validate
        if validate is None:
            return config
        return _validated(lambda: validate(spark.job_context, config))

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        return self._run(spark.job_context, data, env)


class FunctionJob(Job):
    """A function job: ``main(spark)`` (melin/spark-jobserver's entry point), ``run(spark, config)``
    or ``run(spark, config, env)``, told apart by how many positional arguments it takes."""

    def __init__(self, function: EntryPoint) -> None:
        self._function = function
        self._arity = _positional_arity(function)

    @property
    def takes_session_alone(self) -> bool:
        return self._arity == 1

    def entry_points(self) -> list[EntryPoint]:
        return [self._function]

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        arguments = (spark.job_context, data, env)[: self._arity]
        return _validated(lambda: self._function(*arguments), rejected=False)


def _positional_arity(function: EntryPoint) -> int:
    """How many of (spark, config, env) a function job takes: its positional parameters, at most
    three; all three when it takes ``*args``; rejected when it takes none."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin or C function with no signature: the usual two
        return 2
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        return 3
    positional = [
        parameter
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if not positional:
        raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE)
    return min(len(positional), 3)


class SqlJob(Job):
    def prepare(self, spark: SparkHandle, config: ConfigTree) -> tuple[str, int]:
        statement = config.get("sql", None)
        if not isinstance(statement, str) or not statement.strip():
            raise JobRejected(FAILURE_VALIDATION, "an SQL job needs a statement in sql")
        max_rows = int(config.get("spark.jobserver.sql.max-rows", DEFAULT_SQL_MAX_ROWS))
        return statement, max_rows

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        statement, max_rows = cast("tuple[str, int]", data)  # what prepare made
        frame = spark.session.sql(statement)
        rows = frame.limit(max_rows + 1).collect()
        return {
            "columns": [
                {"name": field.name, "type": field.dataType.simpleString()} for field in frame.schema
            ],
            "rows": [list(row) for row in rows[:max_rows]],
            "truncated": len(rows) > max_rows,
        }


def _validated(call: Callable[[], Result], *, rejected: bool = True) -> Result:
    try:
        return call()
    except Exception as error:
        if not _is_validation_error(error):
            raise
        if not rejected:  # a function job has already started: its problems make it ERROR
            raise JobProblems(f"Validation failed: {error}") from error
        details = error_map(f"Validation failed: {error}", "sparkjobserver.native.ValidationError")
        raise JobRejected(FAILURE_VALIDATION, details["message"], details) from error


def _is_validation_error(error: Exception) -> bool:
    """Our ``sparkjobserver.native.ValidationError``, or the one of a copy a job package bundles."""
    kind = type(error)
    return isinstance(error, native_api.ValidationError) or (
        kind.__name__ == "ValidationError" and kind.__module__.endswith("sparkjobserver.native")
    )


def load_job(main_class: str, jars: Sequence[Path] = (), *, context_kind: str = SESSION) -> Job:
    if main_class == SQL_MAIN_CLASS:
        return SqlJob()
    if jars and ":" not in main_class and not _python_module_exists(main_class.rpartition(".")[0]):
        return JvmJob(main_class, jars)
    job = _load_python_job(main_class)
    for entry_point in job.entry_points():
        _check_fits(entry_point, context_kind)
    return job


def _check_fits(entry_point: EntryPoint, context_kind: str) -> None:
    """Reject a job whose first parameter is annotated with another context type than this
    context's; unannotated (or otherwise annotated) jobs are taken as they come."""
    function = getattr(entry_point, "__func__", entry_point)  # a bound method's function
    bound = inspect.ismethod(entry_point)
    try:
        name = _context_annotation(function, bound)  # the same job class is run again and again
    except TypeError:  # an unhashable callable object
        name = _context_annotation.__wrapped__(function, bound)
    if name in _CONTEXT_TYPE_NAMES.values() and name != _CONTEXT_TYPE_NAMES[context_kind]:
        raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE)


@functools.lru_cache(maxsize=256)
def _context_annotation(function: EntryPoint, bound: bool) -> str:
    """The bare type name the context parameter is annotated with ("" when it is not)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return ""
    if bound:  # the function of a bound method: its first parameter is self (or cls)
        parameters = parameters[1:]
    if not parameters or parameters[0].annotation is inspect.Parameter.empty:
        return ""
    annotation = parameters[0].annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return str(name).strip().strip("'\"").rpartition(".")[2]


def _load_python_job(main_class: str) -> Job:
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
            raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE)
        job = FunctionJob(target)
        if job.takes_session_alone:
            melin.provide_template_globals(sys.modules[module_name])
        return job
    if not inspect.isclass(target):
        raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE)
    try:
        instance = target()
    except Exception as error:
        raise JobRejected(FAILURE_LOADING, str(error), describe_exception(error)) from error
    validate = getattr(instance, "validate", None)
    validate = validate if callable(validate) else None
    run_job = getattr(instance, "run_job", None)
    if validate is not None and callable(run_job):
        return CompatJob(validate, run_job)
    run = getattr(instance, "run", None)
    if callable(run):
        return NativeClassJob(run, validate)
    raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE)


def _python_module_exists(module_name: str) -> bool:
    if not module_name:
        return False
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def _import(module_name: str, main_class: str) -> ModuleType:
    try:
        try:
            module = importlib.import_module(module_name)
        except NameError:  # perhaps a module for melin's template, which defines names around it
            module = melin.import_with_template_globals(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise JobRejected(FAILURE_NOT_FOUND, f"classPath {main_class} not found") from error
        raise JobRejected(FAILURE_LOADING, str(error), describe_exception(error)) from error
    except Exception as error:  # a package that fails to import (syntax error, bad import)
        raise JobRejected(FAILURE_LOADING, str(error), describe_exception(error)) from error
    _keep_own_submodules()
    return module


def _keep_own_submodules() -> None:
    """When a job package's own ``sparkjobserver`` (spark-jobserver's, which has no ``native``)
    took the name, ``import sparkjobserver.native`` still finds the driver's module: it stays in
    sys.modules, and here it becomes an attribute of the package that took the name."""
    package = sys.modules.get("sparkjobserver")
    if package is None or package is _OWN_PACKAGE:
        return
    for name, own in (("native", native_api), ("api", compat_api)):
        if sys.modules.get(f"sparkjobserver.{name}") is own and not hasattr(package, name):
            setattr(package, name, own)
