from __future__ import annotations

import contextlib
from urllib.parse import unquote

from aiohttp import web

from jobserver.common.states import JobState
from jobserver.jobs.following import JobEvent
from jobserver.jobs.submission import JOB_PARAMETERS, request_from_parameters
from jobserver.web.access import caller
from jobserver.web.keys import ACCESS, SERVER
from jobserver.web.params import config_body, flag, number
from jobserver.web.render import (
    job_report,
    json_response,
    log_page,
    progress_info,
    result_response,
)
from jobserver.web.streams import open_event_stream, send_event

routes = web.RouteTableDef()

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 100_000
MAX_SYNC_TIMEOUT_S = 86_400  # a day: a sync request waiting longer is better off async
MAX_LOG_LINE = 2**31 - 1


@routes.get("/jobs")
@routes.get("/jobs/")
async def list_jobs(request: web.Request) -> web.Response:
    limit = number(request.query, "limit", maximum=MAX_LIST_LIMIT) or DEFAULT_LIST_LIMIT
    jobs = await request.app[SERVER].jobs.list(max(limit, 0), request.query.get("status"))
    return json_response([job_report(job) for job in jobs])


@routes.post("/jobs")
async def submit_job(request: web.Request) -> web.Response:
    query = request.query
    sync = flag(query, "sync", False)
    timeout_s = number(query, "timeout", maximum=MAX_SYNC_TIMEOUT_S)
    body = await config_body(request)
    callback = query.get("callbackUrl")
    proxy_user, run_as = query.get("spark.proxy.user"), None
    access = request.app.get(ACCESS)
    if access is not None and not query.get("context"):  # whom the ad-hoc context runs as
        proxy_user, run_as = None, access.run_as(request, proxy_user)
    parameters = {name: query[name] for name in JOB_PARAMETERS if name in query}
    if callback:
        parameters["callbackUrl"] = unquote(callback)
    job_request = request_from_parameters(
        parameters,
        body,
        sync=sync,
        timeout_s=float(timeout_s) if timeout_s is not None else None,
        caller=caller(request),
        proxy_user=proxy_user,
        run_as=run_as,
    )
    outcome = await request.app[SERVER].jobs.submit(job_request)
    if not outcome.completed:
        # Async, or a sync job still running at its timeout: the job report, 202 Accepted.
        return json_response(job_report(outcome.job, status=JobState.STARTED.value), 202)
    job = outcome.job
    if job.state is JobState.FINISHED:
        return result_response({"jobId": job.id}, outcome.result or b"[]")
    return json_response({"jobId": job.id, "status": job.state.value, "result": dict(job.error or {})})


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    jobs = request.app[SERVER].jobs
    job, result = await jobs.get(request.match_info["job_id"])
    report = job_report(job)
    progress = jobs.following.progress(job)
    if progress is not None:
        report["progress"] = progress_info(*progress)
    return result_response(report, result)


@routes.get("/jobs/{job_id}/logs")
async def get_job_logs(request: web.Request) -> web.StreamResponse:
    """Livy's shape (``from``, ``total``, ``log``); ``follow=true``: the lines as events until the
    job has ended (each line's number as its event id; ``Last-Event-ID`` resumes after it)."""
    following = request.app[SERVER].jobs.following
    job_id = request.match_info["job_id"]
    start = number(request.query, "from", maximum=MAX_LOG_LINE)
    if not flag(request.query, "follow", False):
        page = await following.log_page(job_id, start, number(request.query, "size", maximum=MAX_LOG_LINE))
        return json_response(log_page(page))
    resume = request.headers.get("Last-Event-ID", "")
    if resume.isdigit():
        start = int(resume) + 1
    await following.log_page(job_id, 0, 0)  # an unknown job is a 404 before the stream opens
    response = await open_event_stream(request)
    line_number = start or 0
    with contextlib.suppress(ConnectionResetError):  # the client went away
        async for line in following.follow_log(job_id, line_number):
            await send_event(response, "log", line, event_id=line_number)
            line_number += 1
        job, _ = await request.app[SERVER].jobs.get(job_id)
        await send_event(response, "end", {"jobId": job_id, "status": job.state.value})
    return response


@routes.get("/jobs/{job_id}/events")
async def get_job_events(request: web.Request) -> web.StreamResponse:
    """``state`` events (the job report) at once and at each change, ``progress`` events as it
    changes; the stream ends after the job's final state."""
    events = request.app[SERVER].jobs.following.events(request.match_info["job_id"])
    first = await anext(events)  # an unknown job is a 404 before the stream opens
    response = await open_event_stream(request)
    event: JobEvent | None = first
    with contextlib.suppress(ConnectionResetError):  # the client went away
        while event is not None:
            if event.progress is None:
                await send_event(response, "state", job_report(event.job))
            elif event.updated is not None:
                progress = {"jobId": event.job.id, "progress": progress_info(event.progress, event.updated)}
                await send_event(response, "progress", progress)
            event = await anext(events, None)
    return response


@routes.get("/jobs/{job_id}/config")
async def get_job_config(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVER].jobs.config(request.match_info["job_id"]))


@routes.delete("/jobs/{job_id}")
async def kill_job(request: web.Request) -> web.Response:
    job = await request.app[SERVER].jobs.kill(request.match_info["job_id"])
    if job.state is JobState.ERROR:
        return json_response({"status": "ERROR", "ERROR": dict(job.error or {})})
    return json_response({"status": "KILLED"})
