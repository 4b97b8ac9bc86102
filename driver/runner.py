"""Runs jobs on worker threads of the driver, each in its own Spark job group.

A job is found by ``mainClass`` in the packages of its cp (``driver.packages``). The job group is
the job id, so a kill cancels exactly that job's Spark work; the thread itself is interrupted at
its next Python instruction. The job's thread sends its own outcome (one thread wake-up less than
handing it to the main thread); the main loop sends the ``JobStarted`` of long jobs
(``driver.announcements``).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from driver.announcements import StartAnnouncements
from driver.job_config import JobConfigs, JsonValue, config_tree
from driver.job_output import JobOutput
from driver.jobbase import Job, JobProblems, JobRejected
from driver.jobgroups import JobGroups
from driver.jobkinds import load_job
from driver.named_objects import NamedObjects
from driver.packages import JobPackages
from driver.protocol import (
    FAILURE_ERROR,
    BlobData,
    JobFailed,
    JobFinished,
    JobKilled,
    JobResultSize,
    Message,
    NamedObjectsChanged,
    StartJob,
    describe_exception,
    error_map,
    result_too_large,
)
from driver.result_parts import ResultParts
from driver.results import encode_result
from driver.server_files import ServerFiles
from driver.spark import SparkHandle
from sparkjobserver.native import JobEnvironment  # the driver's own, imported before any job package

log = logging.getLogger("driver.runner")

# Jobs that end within this time of their StartJob are reported by their outcome only; longer ones
# get a JobStarted first (once loaded and validated).
ANNOUNCE_AFTER_S = 0.005


class JobKilledError(BaseException):
    """Raised inside a job's thread when the job is killed (BaseException: jobs rarely catch it)."""


class JobRunner:
    def __init__(
        self,
        spark: SparkHandle,
        post: Callable[[Message], None],
        wake: Callable[[], None],
        *,
        max_jobs: int,
        announce_after_s: float,
        context_config: Mapping[str, JsonValue],
        package_dir: Path,
        result_chunk_bytes: int,
        server_config_json: Callable[[], bytes] = lambda: b"{}",
        output: JobOutput | None = None,
    ) -> None:
        """``wake`` makes the main loop tick soon; ``server_config_json`` gives the server's config
        as the server last said it (a restarted server may say otherwise); ``output`` captures
        what each job prints or logs."""
        self._spark = spark
        self._output = output
        self._post = post
        self._job_groups = JobGroups(spark.spark_context)
        self._announcements = StartAnnouncements(post, wake, after_s=announce_after_s)
        self._server_files = ServerFiles(post, folder=package_dir)
        self._packages = JobPackages(spark.spark_context, self._server_files, folder=package_dir)
        self._job_configs = JobConfigs(server_config_json)
        self._job_configs.prepare()
        self._context_name = str(_object_at(context_config, "context").get("name", ""))
        self._context_config_tree = config_tree(context_config)
        self._result_chunk_bytes = max(result_chunk_bytes, 1024)
        self.max_result_bytes = 0  # the server's limit, once it said (ResultLimit); 0: none known
        self.result_parts = ResultParts(post)  # large results; the main loop passes on the server's word
        self.named_objects = NamedObjects(
            on_change=lambda objects: post(NamedObjectsChanged(objects=objects))
        )
        # The server admits at most max_jobs at once, but frees a killed job's slot before its
        # thread has unwound: the spare threads keep the next job from waiting behind it.
        self._job_threads = ThreadPoolExecutor(max_workers=max(max_jobs, 1) * 2, thread_name_prefix="job")
        # One job at a time switches sys.path and imports: a purge of another version's modules
        # must not run while a second thread imports.
        self._import_lock = threading.Lock()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified whenever a job thread ends
        self._threads: dict[str, int] = {}  # job id -> thread ident while it runs
        self._killed: set[str] = set()
        # Jobs whose code has returned and whose thread is sending their outcome: a kill no longer
        # interrupts them (an exception raised in the middle of that would lose the outcome).
        self._reporting: set[str] = set()
        # Ended jobs until their acknowledgement: their reports' types (then logged) and what they
        # made (then freed, by the main loop rather than on the report's way).
        self._ended: dict[str, tuple[str, list[object], float]] = {}  # … and when it was sent

    def on_acknowledged(self, job_id: str) -> None:
        """A job's end is stored by the server (called by the main loop): the job's end is logged
        and the next job's config prepared now, the moment this context has least else to do,
        rather than by the job's thread while its report is on its way."""
        with self._lock:
            ended = self._ended.pop(job_id, None)
        if ended is not None:
            log.info("job %s ended: %s", job_id, ended[0])
            del ended  # what the job made: freeing a config tree of the server's whole config
            # takes tens of microseconds, which the job's report need not wait for
        self._job_configs.prepare()

    def note_unacknowledged(self, sent_before: float) -> None:
        """Log (and free) the ends of jobs whose reports, sent before ``sent_before``, the server
        has not acknowledged: it is gone, or its store is down (called by the main loop)."""
        with self._lock:
            late = [job_id for job_id, ended in self._ended.items() if ended[2] < sent_before]
            outcomes = [(job_id, self._ended.pop(job_id)[0]) for job_id in late]
        for job_id, outcome in outcomes:
            log.info("job %s ended: %s (not acknowledged yet)", job_id, outcome)

    def running_job_ids(self) -> list[str]:
        with self._lock:
            return list(self._threads)

    def start(self, request: StartJob) -> None:
        """Called by the main loop."""
        self._announcements.handed_over(request.job_id)
        self._job_threads.submit(self._run, request).add_done_callback(_log_if_failed)

    def announce_started(self, now: float) -> float | None:
        """Called by the main loop on every tick: see ``StartAnnouncements.announce_due``."""
        return self._announcements.announce_due(now)

    def on_blob_data(self, part: BlobData) -> None:
        """Called by the main loop with a part of a file a job thread fetches."""
        self._server_files.on_blob_data(part)

    def kill(self, job_id: str) -> None:
        with self._lock:
            thread_id = self._threads.get(job_id)
            if thread_id is None:
                return
            self._killed.add(job_id)
        self._spark.cancel_job_group(job_id, f"job {job_id} killed through the job server")
        # Its streams run outside its job group and hold its thread in a JVM call: stop them.
        if self._spark.queries is not None:
            self._spark.queries.stop_queries_of(job_id)
        if self._spark.streaming is not None:
            self._spark.streaming.stop_for_kill(job_id)
        with self._lock:
            # Only while the thread still runs this job's code: an exception set later would hit
            # its report, the next job it runs, or the thread pool's own loop.
            if self._threads.get(job_id) == thread_id and job_id not in self._reporting:
                # Python code that never calls Spark stops at its next bytecode instruction.
                _set_async_exception(thread_id, JobKilledError)

    def shutdown(self, grace_s: float) -> list[str]:
        """Kill every job and wait up to ``grace_s`` for their threads; returns those still running.

        A streaming context's StreamingContext stops first, gracefully if so configured, so that
        jobs waiting for it end on their own rather than by the kill.
        """
        self._spark.stop_streaming()
        for job_id in self.running_job_ids():
            self.kill(job_id)
        self._job_threads.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace_s
        with self._idle:
            while self._threads and time.monotonic() < deadline:
                self._idle.wait(max(deadline - time.monotonic(), 0.0))
            unacknowledged, self._ended = self._ended, {}
            still_running = list(self._threads)
        for job_id, (outcome, _, _) in unacknowledged.items():
            log.info("job %s ended: %s (not acknowledged)", job_id, outcome)
        return still_running

    # --- one job, on its thread --------------------------------------------------------------------

    def _run(self, request: StartJob) -> None:
        job_id = request.job_id
        with self._lock:
            self._threads[job_id] = threading.get_ident()
        output = self._output
        if output is not None:
            output.begin(job_id)
        kept: list[object] = []  # what the job made, freed at its acknowledgement (on_acknowledged)
        outcome: Message | None = None
        failure: BaseException | None = None
        try:
            outcome = self._execute(request, kept)
        except BaseException as error:  # the job's own code may raise anything; so may a kill
            failure = error  # nothing called here, where a late kill's exception would escape
        self._stop_interrupts(job_id)
        killed = self._was_killed(job_id)
        if failure is not None:
            if killed or isinstance(failure, JobKilledError):
                outcome = JobKilled(job_id=job_id)
            else:
                outcome = JobFailed(job_id=job_id, kind=FAILURE_ERROR, error=describe_exception(failure))
            del failure  # its traceback holds the job's frames
        assert outcome is not None
        self._job_groups.leave()
        if killed:
            self._spark.drop_thread_connection()
        if output is not None:
            output.end()  # its last lines before its outcome: the server has them all then
        self._announcements.ended(job_id)  # it ends before it was announced: say only that
        try:
            self._post(outcome)
            with self._lock:
                self._ended[job_id] = (outcome.TYPE, kept, time.monotonic())
        finally:
            self._release(job_id, killed=killed)

    def _stop_interrupts(self, job_id: str) -> None:
        """From here on, a kill of this job raises nothing in its thread, and none is pending.

        A kill that came as the job's code ended may still land here: the outcome stands, and the
        end of the job (its report above all) runs uninterrupted.
        """
        while True:
            try:
                with self._lock:
                    self._reporting.add(job_id)  # kill() no longer interrupts the thread
                _set_async_exception(threading.get_ident(), None)  # one it set before is dropped
                return
            except JobKilledError:
                continue

    def _execute(self, request: StartJob, kept: list[object]) -> Message:
        """Load, prepare and run the job; returns its outcome. What it made goes to ``kept``."""
        job_id = request.job_id
        spark = self._spark.for_job(job_id)
        try:
            job, data = self._prepare(request, spark, kept)
        except JobRejected as rejected:
            return JobFailed(job_id=job_id, kind=rejected.kind, error=rejected.details)
        self._announcements.running(job_id)
        environment = JobEnvironment(
            job_id,
            self._context_name,
            self._context_config_tree,
            fetch_data_file=self._server_files.data_file,
            named_objects=self.named_objects,
        )
        kept.append(environment)
        try:
            result = job.run(spark, data, environment)
            kept.append(result)
        except JobProblems as problems:
            error = error_map(str(problems), "sparkjobserver.api.ValidationProblem")
            return JobFailed(job_id=job_id, kind=FAILURE_ERROR, error=error)
        return self._finish(job_id, encode_result(result))

    def _prepare(self, request: StartJob, spark: SparkHandle, kept: list[object]) -> tuple[Job, object]:
        """The loaded job and what its validation made of its config; raises JobRejected."""
        local = self._packages.fetch(request.packages)  # downloads wait outside the import lock
        with self._import_lock:
            jars = self._packages.load(local)
            job = load_job(request.main_class, jars, context_kind=spark.kind)
        description = f"jobserver job {request.job_id} ({request.main_class})"
        self._job_groups.enter(request.job_id, description)  # set at the job's first call into Spark
        if spark.queries is not None:
            spark.queries.job_started(request.job_id)
        config = self._job_configs.for_job(request.config_json)
        data = job.prepare(spark, config)
        kept += (job, config, data)
        return job, data

    def _finish(self, job_id: str, payload: bytes) -> Message:
        size = self._result_chunk_bytes
        if len(payload) <= size:  # most results: one message, and no copy
            return JobFinished(job_id=job_id, result=payload)
        if 0 < self.max_result_bytes < len(payload):  # the server would refuse it: send nothing
            return JobFailed(
                job_id=job_id, kind=FAILURE_ERROR, error=result_too_large(len(payload), self.max_result_bytes)
            )
        self.result_parts.send(job_id, payload, size)  # every part, the last too: the end is empty
        self._post(JobResultSize(job_id=job_id, result_bytes=len(payload)))
        return JobFinished(job_id=job_id, result=b"")

    def _release(self, job_id: str, *, killed: bool) -> None:
        if self._spark.queries is not None:
            self._spark.queries.job_ended(job_id, killed=killed)
        if self._spark.streaming is not None:
            self._spark.streaming.job_ended(job_id)
        with self._lock:
            self._threads.pop(job_id, None)
            self._killed.discard(job_id)
            self._reporting.discard(job_id)
            self._idle.notify_all()

    def _was_killed(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._killed


def _set_async_exception(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in another thread at its next instruction; None clears a pending one."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception is not None else None
    )


def _log_if_failed(future: Future[None]) -> None:
    """A job thread's own failure (``_run`` reports every job's end itself): the pool would keep it
    in the future, unseen."""
    if not future.cancelled() and future.exception() is not None:
        log.error("job thread failed", exc_info=future.exception())


def _object_at(values: Mapping[str, JsonValue], key: str) -> Mapping[str, JsonValue]:
    value = values.get(key)
    return value if isinstance(value, dict) else {}
