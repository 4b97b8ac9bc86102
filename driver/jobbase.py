"""What every kind of job is: a ``Job`` that prepares and runs, and the two ways it can fail early."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from driver.protocol import error_map

if TYPE_CHECKING:
    from pyhocon import ConfigTree

    from driver.spark import SparkHandle
    from sparkjobserver.native import JobEnvironment

INVALID_TYPE = "Invalid job type for this context"

# A job's own callable: a function, or a method of the job's class, called with the context first.
EntryPoint = Callable[..., object]


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

    def prepare(self, spark: SparkHandle, config: ConfigTree) -> object:
        """What ``run`` receives as its data; raises JobRejected to refuse the job."""
        return config

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        raise NotImplementedError

    def entry_points(self) -> list[EntryPoint]:
        """The job's own callables whose first parameter receives the context."""
        return []
