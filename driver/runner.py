"""Runs jobs on worker threads of the driver, each in its own Spark job group.

A job is found by ``mainClass`` in the packages of its cp (eggs or wheels, added to ``sys.path``
here and to the executors through ``addPyFile``). The job group is the job id, so a kill cancels
exactly that job's Spark work; the thread itself is interrupted at its next Python instruction.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import logging
import queue
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from driver.announcements import StartAnnouncements
from driver.job_config import JsonValue, config_tree, job_config
from driver.jobgroups import JobGroups
from driver.jobkinds import JobProblems, JobRejected, load_job
from driver.named_objects import NamedObjects
from driver.protocol import (
    FAILURE_ERROR,
    FAILURE_LOADING,
    FAILURE_MALFORMED_URL,
    BlobData,
    FetchBlob,
    FetchDataFile,
    JobFailed,
    JobFinished,
    JobKilled,
    JobPackage,
    JobResultChunk,
    Message,
    NamedObjectsChanged,
    StartJob,
    describe_exception,
    error_map,
)
from driver.results import encode_result
from driver.spark import SparkHandle

log = logging.getLogger("driver.runner")


# How long a job waits for the next part of a package it fetches from the server.
DOWNLOAD_TIMEOUT_S = 60.0

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
    ) -> None:
        self._spark = spark
        self._job_groups = JobGroups(spark.spark_context)
        self._post = post
        self._announcements = StartAnnouncements(post, wake, after_s=announce_after_s)
        self._package_dir = package_dir
        self._result_chunk_bytes = max(result_chunk_bytes, 1024)
        # The server admits at most max_jobs at once, but frees a killed job's slot before its
        # thread has unwound: the spare threads keep the next job from waiting behind it.
        self._job_threads = ThreadPoolExecutor(max_workers=max(max_jobs, 1) * 2, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified whenever a job thread ends
        self._import_lock = threading.Lock()
        self._downloads: dict[str, queue.SimpleQueue[BlobData]] = {}  # request id -> its parts
        self.named_objects = NamedObjects(
            on_change=lambda objects: post(NamedObjectsChanged(objects=objects))
        )
        self._threads: dict[str, int] = {}  # job id -> thread ident while it runs
        self._killed: set[str] = set()
        # Jobs whose code has returned and whose thread is sending their outcome: a kill no longer
        # interrupts them (an exception raised in the middle of that would lose the outcome).
        self._reporting: set[str] = set()
        self._loaded_packages: dict[str, Path] = {}  # sha256 -> local file on sys.path
        self._server_config_json = server_config_json  # as the server last said (it may restart)
        self._context_config_tree = config_tree(context_config)
        self._context_name = str(_object_at(context_config, "context").get("name", ""))

    def running_job_ids(self) -> list[str]:
        with self._lock:
            return list(self._threads)

    def start(self, request: StartJob) -> None:
        """Called by the main loop."""
        self._announcements.handed_over(request.job_id)
        self._job_threads.submit(self._run, request).add_done_callback(_log_if_failed)

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
            return list(self._threads)

    # --- one job ---------------------------------------------------------------------------------

    def _run(self, request: StartJob) -> None:
        job_id = request.job_id
        with self._lock:
            self._threads[job_id] = threading.get_ident()
        try:
            outcome = self._execute(request)
        except JobKilledError:
            outcome = JobKilled(job_id=job_id)
        except BaseException as error:  # the job's own code may raise anything
            if self._was_killed(job_id):
                outcome = JobKilled(job_id=job_id)
            else:
                outcome = JobFailed(job_id=job_id, kind=FAILURE_ERROR, error=describe_exception(error))
        finally:
            self._job_groups.leave()
            self._announcements.ended(job_id)  # it ends before it was announced: say only that
            with self._lock:
                self._reporting.add(job_id)
        try:
            self._post(outcome)
            log.info("job %s ended: %s", job_id, outcome.TYPE)
        finally:
            self._release(job_id)

    def announce_started(self, now: float) -> float | None:
        """Called by the main loop on every tick: see ``StartAnnouncements.announce_due``."""
        return self._announcements.announce_due(now)

    def _release(self, job_id: str) -> None:
        while True:
            try:
                killed = self._was_killed(job_id)
                if self._spark.queries is not None:
                    self._spark.queries.job_ended(job_id, killed=killed)
                if self._spark.streaming is not None:
                    self._spark.streaming.job_ended(job_id)
                with self._lock:
                    if self._threads.pop(job_id, None) is not None and job_id in self._killed:
                        # A kill that arrived as the job ended must not outlive it.
                        _set_async_exception(threading.get_ident(), None)
                    self._killed.discard(job_id)
                    self._reporting.discard(job_id)
                    self._idle.notify_all()
                return
            except JobKilledError:  # delivered inside this block: the cleanup is still owed
                continue

    def _was_killed(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._killed

    def _execute(self, request: StartJob) -> Message:
        """Load, prepare and run the job; returns its outcome."""
        job_id = request.job_id
        spark = self._spark.for_job(job_id)
        try:
            # One job at a time switches sys.path and imports: a purge of another version's
            # modules must not run while a second thread imports.
            with self._import_lock:
                jars = self._load_packages(request.packages)
                job = load_job(request.main_class, jars, context_kind=spark.kind)
            description = f"jobserver job {job_id} ({request.main_class})"
            self._job_groups.enter(job_id, description)  # set at the job's first call into Spark
            if spark.queries is not None:
                spark.queries.job_started(job_id)
            config = job_config(self._server_config_json(), request.config_json)
            data = job.prepare(spark, config)
        except JobRejected as rejected:
            return JobFailed(job_id=job_id, kind=rejected.kind, error=rejected.details)
        self._announcements.running(job_id)
        from sparkjobserver.native import JobEnvironment

        environment = JobEnvironment(
            job_id,
            self._context_name,
            self._context_config_tree,
            fetch_data_file=self.data_file,
            named_objects=self.named_objects,
        )
        try:
            result = job.run(spark, data, environment)
        except JobProblems as problems:
            error = error_map(str(problems), "sparkjobserver.api.ValidationProblem")
            return JobFailed(job_id=job_id, kind=FAILURE_ERROR, error=error)
        return self._finish(job_id, encode_result(result))

    def _finish(self, job_id: str, payload: bytes) -> Message:
        size = self._result_chunk_bytes
        if len(payload) <= size:  # most results: one message, and no copy
            return JobFinished(job_id=job_id, result=payload)
        view = memoryview(payload)
        offset = 0
        while len(payload) - offset > size:
            self._post(JobResultChunk(job_id=job_id, data=bytes(view[offset : offset + size])))
            offset += size
        return JobFinished(job_id=job_id, result=bytes(view[offset:]))

    # --- packages --------------------------------------------------------------------------------

    def _load_packages(self, packages: list[dict[str, str]]) -> list[Path]:
        """Make the job's packages importable; returns its jars (for a JVM job), in cp order."""
        jars = []
        for fields in packages:
            package = JobPackage(**fields)
            is_jar = package.binary_type == "Jar" or package.location.endswith(".jar")
            with self._lock:
                local = self._loaded_packages.get(package.sha256)
            if local is None:
                local = self._fetch(package)
                if is_jar:  # for the executors; the driver loads its classes through its own loader
                    self._spark.spark_context._jsc.addJar(str(local))
                else:
                    self._spark.spark_context.addPyFile(str(local))
                with self._lock:
                    self._loaded_packages[package.sha256] = local
            if is_jar:
                jars.append(local)
            else:
                _prefer_on_path(local)
        return jars

    def _fetch(self, package: JobPackage) -> Path:
        """A local copy of the package, named by content, checked against its sha256."""
        self._package_dir.mkdir(parents=True, exist_ok=True)
        # addPyFile puts only .zip/.egg/.jar on the executors' path, and a wheel is a zip.
        suffix = ".jar" if package.binary_type == "Jar" or package.location.endswith(".jar") else ".zip"
        target = self._package_dir / f"{package.sha256 or Path(package.name).stem}{suffix}"
        if target.exists():
            return target
        if package.binary_type == "Uri":
            source = _local_path_of_uri(package.location)
            if not source.is_file():
                raise JobRejected(FAILURE_LOADING, f"package {package.name} is not readable at {source}")
            shutil.copyfile(source, target)
            return target
        source = Path(package.location) if package.location else None
        if source is not None and source.is_file():
            shutil.copyfile(source, target)
            if _sha256_of(target) == package.sha256:
                return target
            target.unlink()  # a same-named file on another host: fetch the real bytes
        self._download(FetchBlob(request_id=uuid.uuid4().hex, sha256=package.sha256), target, package.name)
        if _sha256_of(target) != package.sha256:
            target.unlink()
            raise JobRejected(FAILURE_LOADING, f"package {package.name} arrived damaged (sha256 mismatch)")
        return target

    def data_file(self, name: str) -> str:
        """A local path of a data file (``JobEnvironment.data_file``): the server's own file when
        this driver shares its host, else a copy fetched over the bus once."""
        given = Path(name)
        if given.is_absolute() and given.is_file():
            return str(given)
        folder = self._package_dir / "data"
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / given.name
        if not local.exists():
            self._download(FetchDataFile(request_id=uuid.uuid4().hex, name=name), local, given.name)
        return str(local)

    def _download(self, request: FetchBlob | FetchDataFile, target: Path, what: str) -> None:
        """Ask the server for a file's bytes over the bus (this driver runs on another host)."""
        request_id = request.request_id
        arrivals: queue.SimpleQueue[BlobData] = queue.SimpleQueue()
        with self._lock:
            self._downloads[request_id] = arrivals
        partial = target.with_suffix(".part")
        try:
            self._post(request)
            with open(partial, "wb") as output:
                while True:
                    try:
                        part = arrivals.get(timeout=DOWNLOAD_TIMEOUT_S)
                    except queue.Empty:
                        message = f"{what} did not arrive within {DOWNLOAD_TIMEOUT_S:.0f} s"
                        raise JobRejected(FAILURE_LOADING, message) from None
                    if part.error:
                        raise JobRejected(FAILURE_LOADING, part.error)
                    output.write(part.data)
                    if part.last:
                        break
            partial.replace(target)
        finally:
            with self._lock:
                self._downloads.pop(request_id, None)
            partial.unlink(missing_ok=True)

    def on_blob_data(self, part: BlobData) -> None:
        """Called by the main loop: hand a part of a download to the job thread waiting for it."""
        with self._lock:
            arrivals = self._downloads.get(part.request_id)
        if arrivals is not None:
            arrivals.put(part)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _local_path_of_uri(location: str) -> Path:
    for prefix in ("file://", "local://"):
        if location.startswith(prefix):
            return Path(location.removeprefix(prefix))
    raise JobRejected(
        FAILURE_MALFORMED_URL, f"cannot load {location}: only file:// and local:// URIs are readable"
    )


def _prefer_on_path(package: Path) -> None:
    """Put ``package`` first on sys.path and forget modules another version of it provided."""
    entry = str(package)
    if sys.path and sys.path[0] == entry:
        return
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
    import zipfile

    with zipfile.ZipFile(package) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist() if "/" in name}
    for name, module in list(sys.modules.items()):
        top = name.split(".", 1)[0]
        origin = getattr(module, "__file__", None) or ""
        if top in tops and origin and not origin.startswith(entry):
            sys.modules.pop(name, None)
    importlib.invalidate_caches()


def _object_at(values: Mapping[str, JsonValue], key: str) -> Mapping[str, JsonValue]:
    value = values.get(key)
    return value if isinstance(value, dict) else {}
