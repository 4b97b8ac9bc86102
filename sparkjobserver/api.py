"""The Python job API of spark-jobserver (contract §6.1), kept name-for-name compatible.

A job is any class with a zero-argument constructor and the two methods of :class:`SparkJob`;
subclassing it is optional because the driver only calls the methods. ``validate`` either returns the
job's data or rejects the request by returning a list of :class:`ValidationProblem`.

The camelCase attribute and parameter names (``jobId``, ``jvmContext``, ``forceComputation``) are part
of the API that existing jobs use, so they stay as spark-jobserver spelled them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from py4j.java_gateway import JavaGateway, JavaObject
    from pyhocon import ConfigTree
    from pyspark import SparkConf

__all__ = [
    "JobEnvironment",
    "NamedObject",
    "NamedObjects",
    "SparkJob",
    "ValidationProblem",
    "build_problems",
    "is_validation_failure",
]


class JobEnvironment:
    """Run-time facts about the job and its context, handed to ``run_job`` as ``runtime``.

    ``namedObjects`` is always ``None``: named objects are not supported for Python jobs.
    ``contextConfig`` is the context's configuration as a pyhocon ``ConfigTree``.
    """

    def __init__(self, job_id: str, named_objects: NamedObjects | None, context_config: ConfigTree) -> None:
        self.jobId = job_id
        self.namedObjects = named_objects
        self.contextConfig = context_config

    def __repr__(self) -> str:
        return f"JobEnvironment(jobId={self.jobId!r})"


class ValidationProblem:
    """One reason why ``validate`` rejects a job request; ``problem`` is the human-readable text."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def __repr__(self) -> str:
        return f"ValidationProblem({self.problem!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidationProblem):
            return NotImplemented
        return self.problem == other.problem

    def __hash__(self) -> int:
        return hash(self.problem)


def build_problems(problems: Iterable[str]) -> list[ValidationProblem]:
    """Wrap each problem text in a :class:`ValidationProblem`.

    A plain list of strings would be indistinguishable from job data, so ``validate`` must return the
    wrapped list to reject a request.
    """
    return [ValidationProblem(problem) for problem in problems]


def is_validation_failure(value: object) -> bool:
    """Tell whether a value returned by ``validate`` rejects the job.

    It does when it is a non-empty list whose elements are all validation problems. An empty list is
    job data, not a rejection (spark-jobserver looked at element 0 and crashed on it). A job package
    may bundle its own copy of ``sparkjobserver.api``, whose class is a different object from ours, so
    an element also counts when its class is named ``ValidationProblem`` and it has a ``problem``.
    """
    if not isinstance(value, list) or not value:
        return False
    return all(_is_validation_problem(item) for item in value)


def _is_validation_problem(item: object) -> bool:
    if isinstance(item, ValidationProblem):
        return True
    return type(item).__name__ == "ValidationProblem" and hasattr(item, "problem")


class SparkJob:
    """Base class (and description) of a Python job. Subclasses override ``validate`` and ``run_job``.

    What the methods take and return is typed ``Any``: a job's override annotates them as it needs.
    """

    def __init__(self) -> None:
        pass

    def validate(self, context: Any, runtime: JobEnvironment | None, config: Any) -> Any:
        """Check the request and extract what ``run_job`` needs.

        :param context: the Python context the job runs in (a ``SparkSession`` for session contexts,
            a ``SparkContext``, or whatever ``build_context`` made); it may be shared with other jobs.
        :param runtime: run-time information; spark-jobserver passes ``None`` here, and jobs must
            cope with that.
        :param config: the job's configuration (the posted config merged over the server's), a
            pyhocon ``ConfigTree``.
        :return: the job data for ``run_job``, or a list of :class:`ValidationProblem` to reject.
        """
        raise NotImplementedError("a job must override validate()")

    def run_job(self, context: Any, runtime: JobEnvironment, data: Any) -> Any:
        """Do the work and return the result, which the server renders as JSON.

        :param context: the same context that ``validate`` received.
        :param runtime: a :class:`JobEnvironment` for this job.
        :param data: what ``validate`` returned.
        """
        raise NotImplementedError("a job must override run_job()")

    def build_context(self, gateway: JavaGateway, jvmContext: JavaObject, sparkConf: SparkConf) -> Any:
        """Wrap a custom JVM context in a Python object; only jobs for custom context types need this.

        The standard context types are wrapped by the driver. Returning ``None`` (the default) means the
        job does not support the context it was sent to.

        :param gateway: the Py4J gateway.
        :param jvmContext: the JVM-side context object.
        :param sparkConf: the Python ``SparkConf`` of the context.
        """
        return None


class NamedObject:
    """A named, possibly cached object; part of the API's shape only, not supported for Python jobs."""

    def __init__(self, obj: Any, forceComputation: bool, storage_level: Any) -> None:
        self.obj = obj
        self.forceComputation = forceComputation
        self.storage_level = storage_level


class NamedObjects:
    """Interface of a named-object cache scoped to a context. Unsupported: every method raises."""

    def __init__(self) -> None:
        pass

    def get(self, name: str) -> NamedObject | None:
        """Return the cached object called ``name``, or ``None`` when there is none."""
        raise NotImplementedError("named objects are not supported for Python jobs")

    def get_or_else_create(self, name: str, obj_gen: Callable[[], Any]) -> NamedObject:
        """Return the object called ``name``, creating and caching it with ``obj_gen()`` if absent."""
        raise NotImplementedError("named objects are not supported for Python jobs")

    def update(self, name: str, obj_gen: Callable[[], Any]) -> NamedObject:
        """Replace the object called ``name`` with ``obj_gen()``, destroying the old one."""
        raise NotImplementedError("named objects are not supported for Python jobs")

    def forget(self, name: str) -> None:
        """Drop ``name`` from the cache without unpersisting it."""
        raise NotImplementedError("named objects are not supported for Python jobs")

    def destroy(self, name: str) -> None:
        """Drop ``name`` from the cache and unpersist it."""
        raise NotImplementedError("named objects are not supported for Python jobs")

    def get_names(self) -> list[str]:
        """Return a snapshot of the names currently cached."""
        raise NotImplementedError("named objects are not supported for Python jobs")
