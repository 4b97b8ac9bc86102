"""Schedules: a job or a workflow at each due time of a cron expression (docs/workflows.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobserver.common.scheduling import ScheduleRecord, ScheduleRun
from jobserver.common.timeformat import instant
from jobserver.schedules.timing import parse_schedule
from jobserver.web.access import caller
from jobserver.web.keys import ACCESS, SERVER
from jobserver.web.params import json_document, number
from jobserver.web.render import json_response, success

routes = web.RouteTableDef()

DEFAULT_RUNS_LIMIT = 50
MAX_RUNS_LIMIT = 10_000


def schedule_info(schedule: ScheduleRecord) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": schedule.name,
        "cron": schedule.cron,
        "timeZone": schedule.time_zone,
        **schedule.target,
        "catchUp": schedule.catch_up.value,
        "overlap": schedule.overlap.value,
        "paused": schedule.paused,
        "nextDueAt": instant(schedule.next_due_at),
        "createdAt": instant(schedule.created_at),
    }
    if schedule.user is not None:
        info["user"] = schedule.user
    return info


def run_info(run: ScheduleRun) -> dict[str, Any]:
    info: dict[str, Any] = {
        "dueAt": instant(run.due_at),
        "state": run.state.value,
        "claimedBy": run.claimed_by,
    }
    for key, value in (("jobId", run.job_id), ("workflowId", run.workflow_id), ("error", run.error)):
        if value is not None:
            info[key] = value
    if run.outcome is not None:  # the state of its job or workflow
        info["status"] = run.outcome
    return info


def _run_as(request: web.Request) -> str | None:
    access = request.app.get(ACCESS)
    return None if access is None else access.run_as(request, None)


@routes.get("/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    return json_response([schedule_info(schedule) for schedule in await request.app[SERVER].schedules.list()])


@routes.post("/schedules")
async def create_schedule(request: web.Request) -> web.Response:
    spec = parse_schedule(await json_document(request))
    schedule = await request.app[SERVER].schedules.create(
        spec, caller=caller(request), run_as=_run_as(request)
    )
    return json_response(schedule_info(schedule), 201)


@routes.get("/schedules/{name}")
async def get_schedule(request: web.Request) -> web.Response:
    return json_response(schedule_info(await request.app[SERVER].schedules.get(request.match_info["name"])))


@routes.put("/schedules/{name}")
async def replace_schedule(request: web.Request) -> web.Response:
    spec = parse_schedule(await json_document(request), name=request.match_info["name"])
    schedule = await request.app[SERVER].schedules.replace(
        spec, caller=caller(request), run_as=_run_as(request)
    )
    return json_response(schedule_info(schedule))


@routes.delete("/schedules/{name}")
async def delete_schedule(request: web.Request) -> web.Response:
    await request.app[SERVER].schedules.delete(request.match_info["name"])
    return success("Schedule deleted")


@routes.post("/schedules/{name}/pause")
async def pause_schedule(request: web.Request) -> web.Response:
    return json_response(
        schedule_info(await request.app[SERVER].schedules.set_paused(request.match_info["name"], True))
    )


@routes.post("/schedules/{name}/resume")
async def resume_schedule(request: web.Request) -> web.Response:
    schedule = await request.app[SERVER].schedules.set_paused(request.match_info["name"], False)
    return json_response(schedule_info(schedule))


@routes.get("/schedules/{name}/runs")
async def list_runs(request: web.Request) -> web.Response:
    limit = number(request.query, "limit", maximum=MAX_RUNS_LIMIT) or DEFAULT_RUNS_LIMIT
    runs = await request.app[SERVER].schedules.runs(request.match_info["name"], limit)
    return json_response([run_info(run) for run in runs])
