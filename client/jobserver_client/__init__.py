"""A client for the job server's REST API (spark-jobserver's API): sync, asyncio, and a CLI.

    from jobserver_client import JobServerClient

    client = JobServerClient("http://localhost:8090", user="alice", password="…")
    job = client.submit_job("example_jobs.native:word_count", app_name="examples", context="shared",
                            config={"input": {"strings": ["a", "b", "a"]}})
    report = client.wait(job["jobId"])          # the final report, result included
    client.raise_for_job(report)                # JobFailed when it ended ERROR or KILLED

``AsyncJobServerClient`` (``jobserver_client.aio``) has the same methods as coroutines.
"""

from jobserver_client.calls import FINAL_STATES, JobFailed, JobServerError, job_spec
from jobserver_client.client import JobServerClient

__all__ = ["FINAL_STATES", "JobFailed", "JobServerClient", "JobServerError", "job_spec"]
