"""A running job's progress: its Spark jobs, stages and tasks, from Spark's status tracker.

A thread of its own looks every ``interval_s`` at the jobs running then, and reports (``JobProgress``)
each job that was already running at its previous look, when its figures changed. So a job that
ends within its first interval costs nothing (no py4j call, no message), and the main thread, which
heartbeats, never waits for the JVM.

The figures, per job group (the job id, ``driver.jobgroups``): Spark jobs by status; stages of
those jobs (``total`` counts every stage a job planned, skipped ones included; a stage is active
while Spark lists it as active, completed once all its tasks completed, failed when it is neither
and had failed tasks); tasks summed over the stages Spark still knows of. Spark forgets old jobs
and stages (``spark.ui.retainedJobs``/``retainedStages``), so long jobs may undercount the past.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from driver.protocol import JobProgress, Message

log = logging.getLogger("driver.progress")

Counts = dict[str, int]


def empty_counts() -> Counts:
    return {"total": 0, "active": 0, "completed": 0, "failed": 0}


def measure(tracker: Any, group_id: str) -> dict[str, Counts]:
    """The job group's figures from a pyspark ``StatusTracker`` (or anything shaped like it)."""
    jobs, stages, tasks = empty_counts(), empty_counts(), empty_counts()
    active_stages = set(tracker.getActiveStageIds())
    for spark_job_id in tracker.getJobIdsForGroup(group_id):
        info = tracker.getJobInfo(spark_job_id)
        if info is None:
            continue
        jobs["total"] += 1
        status = str(info.status).upper()
        if status == "RUNNING":
            jobs["active"] += 1
        elif status == "SUCCEEDED":
            jobs["completed"] += 1
        elif status == "FAILED":
            jobs["failed"] += 1
        for stage_id in info.stageIds:
            stages["total"] += 1
            stage = tracker.getStageInfo(stage_id)
            if stage is None:
                continue
            tasks["total"] += stage.numTasks
            tasks["active"] += stage.numActiveTasks
            tasks["completed"] += stage.numCompletedTasks
            tasks["failed"] += stage.numFailedTasks
            if stage_id in active_stages:
                stages["active"] += 1
            elif stage.numTasks and stage.numCompletedTasks >= stage.numTasks:
                stages["completed"] += 1
            elif stage.numFailedTasks:
                stages["failed"] += 1
    return {"jobs": jobs, "stages": stages, "tasks": tasks}


class ProgressReporter:
    def __init__(
        self,
        spark_context: Any,
        post: Callable[[Message], None],
        running_job_ids: Callable[[], list[str]],
        *,
        interval_s: float,
    ) -> None:
        self._spark_context = spark_context
        self._post = post
        self._running_job_ids = running_job_ids
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._last: dict[str, dict[str, Counts] | None] = {}  # job id -> figures last sent

    def start(self) -> None:
        if self._interval_s <= 0 or not callable(getattr(self._spark_context, "statusTracker", None)):
            return
        threading.Thread(target=self._run, name="job-progress", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        tracker = self._spark_context.statusTracker()
        while not self._stopped.wait(self._interval_s):
            running = self._running_job_ids()
            seen_before = self._last
            self._last = {job_id: seen_before.get(job_id) for job_id in running}
            for job_id in running:
                if job_id not in seen_before:
                    continue  # its first interval: it may well end before the next look
                try:
                    figures = measure(tracker, job_id)
                except Exception:  # the JVM going away, a stage forgotten meanwhile: next time
                    log.debug("progress of job %s not measured", job_id, exc_info=True)
                    continue
                if figures != seen_before[job_id]:
                    self._last[job_id] = figures
                    self._post(JobProgress(job_id=job_id, progress=figures))
