from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from jobserver.common.states import JobState
from jobserver.jobs.submission import JobRequest
from jobserver.web.access import caller
from jobserver.web.keys import ACCESS, SERVER
from jobserver.web.params import config_body, flag, number
from jobserver.web.render import job_report, json_response, raw_json_response, with_result

routes = web.RouteTableDef()

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 100_000
MAX_SYNC_TIMEOUT_S = 86_400  # a day: a sync request waiting longer is better off async


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
    cp = query.get("cp")
    callback = query.get("callbackUrl")
    proxy_user, run_as = query.get("spark.proxy.user"), None
    access = request.app.get(ACCESS)
    if access is not None and not query.get("context"):  # whom the ad-hoc context runs as
        proxy_user, run_as = None, access.run_as(request, proxy_user)
    job_request = JobRequest(
        posted_config=body,
        app_name=query.get("appName"),
        class_path=query.get("classPath"),
        cp=[entry.strip() for entry in cp.split(",") if entry.strip()] if cp else None,
        main_class=query.get("mainClass"),
        context=query.get("context"),
        sync=sync,
        timeout_s=float(timeout_s) if timeout_s is not None else None,
        callback_url=unquote(callback) if callback else None,
        proxy_user=proxy_user,
        sql=query.get("sql"),
        caller=caller(request),
        run_as=run_as,
        pool=query.get("pool") or None,
    )
    outcome = await request.app[SERVER].jobs.submit(job_request)
    if not outcome.completed:
        # Async, or a sync job still running at its timeout: the job report, 202 Accepted.
        return json_response(job_report(outcome.job, status=JobState.STARTED.value), 202)
    job = outcome.job
    if job.state is JobState.FINISHED:
        return raw_json_response(with_result({"jobId": job.id}, outcome.result or b"[]"))
    return json_response({"jobId": job.id, "status": job.state.value, "result": dict(job.error or {})})


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    job, result = await request.app[SERVER].jobs.get(request.match_info["job_id"])
    return raw_json_response(with_result(job_report(job), result))


@routes.get("/jobs/{job_id}/config")
async def get_job_config(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVER].jobs.config(request.match_info["job_id"]))


@routes.delete("/jobs/{job_id}")
async def kill_job(request: web.Request) -> web.Response:
    job = await request.app[SERVER].jobs.kill(request.match_info["job_id"])
    if job.state is JobState.ERROR:
        return json_response({"status": "ERROR", "ERROR": dict(job.error or {})})
    return json_response({"status": "KILLED"})
