"""What a POST /jobs asks for, and how its answer is decided (sjs-contract §2.3).

Pure functions and records, no I/O: the JobManager (jobserver.jobs.manager) uses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driver.protocol import (
    FAILURE_INVALID_TYPE,
    FAILURE_LOADING,
    FAILURE_MALFORMED_URL,
    FAILURE_NOT_FOUND,
    FAILURE_VALIDATION,
    SQL_MAIN_CLASS,
)
from jobserver.common.config import merge
from jobserver.common.errors import (
    BadRequest,
    ErrorMap,
    JobLoadingFailed,
    JobLoadingMalformedUrl,
    JobServerError,
    NotFound,
    ValidationFailed,
    error_map,
)
from jobserver.common.records import Caller, JobRecord
from jobserver.common.values import string_list
from jobserver.storage.results import Result

KILLED_ERROR_CLASS = "spark.jobserver.JobManagerActor$JobKilledException"

# Contexts whose jobs get a StreamingContext: a failing job stops them unless the settings say not.
STREAMING_FACTORIES = frozenset(
    {"spark.jobserver.context.StreamingContextFactory", "spark.jobserver.context.JavaStreamingContextFactory"}
)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """POST /jobs, parsed: query parameters as given, body as a plain dict."""

    posted_config: Mapping[str, Any]
    app_name: str | None = None
    class_path: str | None = None
    cp: Sequence[str] | None = None
    main_class: str | None = None
    context: str | None = None
    sync: bool = False
    timeout_s: float | None = None
    callback_url: str | None = None
    proxy_user: str | None = None  # a client's spark.proxy.user, a client setting like any other
    sql: str | None = None  # an SQL job's statement, when given as a query parameter
    caller: Caller | None = None  # the authenticated client (None: authentication off)
    run_as: str | None = None  # the ad-hoc context's proxy user, decided by the authentication
    pool: str | None = None  # the warm driver pool an ad-hoc job asks for by name


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    job: JobRecord
    result: Result | None = None  # bytes, or a large result's stream
    completed: bool = False  # a sync job that reached a final state within its timeout


def what_to_run(request: JobRequest, job_config: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Main class and cp entries, by the contract's precedence (§2.3 steps 5 and 7).

    The job config's ``dependent-jar-uris`` (binary names or URIs) come first in the cp, with
    ``appName`` as the contract says and with ``cp`` too, as spark-jobserver's documentation
    promises a job's dependent jars whichever way it names its main binary."""
    main_class = request.main_class or str(job_config.get("mainClass") or "")
    cp = list(request.cp) if request.cp else string_list(job_config.get("cp"))
    dependencies = string_list(job_config.get("dependent-jar-uris"))
    if request.app_name:
        if not request.class_path:
            raise BadRequest("Cannot parse config: classPath parameter is missing!")
        return request.class_path, list(dict.fromkeys([*dependencies, request.app_name]))
    if cp:
        if not main_class:
            raise BadRequest("Cannot parse config: mainClass parameter is missing!")
        return main_class, list(dict.fromkeys([*dependencies, *cp]))
    statement = job_config.get("sql")
    if isinstance(statement, str) and statement.strip():
        return SQL_MAIN_CLASS, []
    raise BadRequest("Cannot parse config: To start the job appName or cp parameters should be configured!")


# A scheme and a slash: file:/p, file:///p, local:///p, http://…, hdfs://nn/… (a binary's name has
# no colon, and a one-letter "scheme" would be a Windows drive).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_uri(cp_entry: str) -> bool:
    """Whether an entry of a job's cp is a URI the driver fetches, rather than a binary's name."""
    return _URI.match(cp_entry) is not None


def stops_on_job_error(context_config: Mapping[str, Any]) -> bool:
    """``stop-context-on-job-error``: as set, else true for streaming contexts only (§4.1)."""
    value = context_config.get("stop-context-on-job-error")
    if value is None or value == "":
        return context_config.get("context-factory") in STREAMING_FACTORIES
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "on", "yes")


def killed_error(job_id: str) -> ErrorMap:
    return error_map(f"Job {job_id} killed", KILLED_ERROR_CLASS)


def rejection(kind: str, error: ErrorMap) -> JobServerError:
    message = error.get("message", "")
    if kind == FAILURE_NOT_FOUND:
        return NotFound(message)
    if kind == FAILURE_INVALID_TYPE:
        return BadRequest("Invalid job type for this context")
    if kind == FAILURE_VALIDATION:
        return ValidationFailed(message, details=dict(error))
    if kind == FAILURE_MALFORMED_URL:
        return JobLoadingMalformedUrl(message, details=dict(error))
    if kind == FAILURE_LOADING:
        return JobLoadingFailed(message, details=dict(error))
    return JobServerError(message, details=dict(error))


# POST /jobs's query parameters that say what a job is (not how its request waits for it): what
# a schedule or a workflow step may name for the jobs it submits.
JOB_PARAMETERS = frozenset(
    {"appName", "classPath", "cp", "mainClass", "context", "cluster", "callbackUrl", "sql", "pool"}
)


def request_from_parameters(
    parameters: Mapping[str, str],
    config: Mapping[str, Any],
    *,
    sync: bool = False,
    timeout_s: float | None = None,
    caller: Caller | None = None,
    proxy_user: str | None = None,
    run_as: str | None = None,
) -> JobRequest:
    """A JobRequest from POST /jobs's parameters (``JOB_PARAMETERS``) and parsed body."""
    if parameters.get("cluster"):  # the cluster of the job's own (ad-hoc) context
        if parameters.get("context"):
            raise BadRequest("cluster is for ad-hoc jobs: a context runs on the cluster it started on")
        config = merge(config, {"spark": {"context-settings": {"cluster": parameters["cluster"]}}})
    cp = parameters.get("cp")
    return JobRequest(
        posted_config=config,
        app_name=parameters.get("appName"),
        class_path=parameters.get("classPath"),
        cp=[entry.strip() for entry in cp.split(",") if entry.strip()] if cp else None,
        main_class=parameters.get("mainClass"),
        context=parameters.get("context"),
        sync=sync,
        timeout_s=timeout_s,
        callback_url=parameters.get("callbackUrl") or None,
        proxy_user=proxy_user,
        sql=parameters.get("sql"),
        caller=caller,
        run_as=run_as,
        pool=parameters.get("pool") or None,
    )
