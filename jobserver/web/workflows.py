"""Workflows: steps, each a job, run in the order their ``after`` lists say (docs/workflows.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobserver.common.scheduling import WorkflowRecord
from jobserver.common.timeformat import instant
from jobserver.web.access import caller
from jobserver.web.keys import ACCESS, SERVER
from jobserver.web.params import json_document, number
from jobserver.web.render import json_response
from jobserver.workflows.specs import parse_workflow

routes = web.RouteTableDef()

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 10_000


def workflow_info(workflow: WorkflowRecord) -> dict[str, Any]:
    after = {step["name"]: step.get("after", []) for step in workflow.spec.get("steps", [])}
    steps = []
    for step in workflow.steps:
        entry: dict[str, Any] = {
            "name": step.name,
            "state": step.state.value,
            "after": after.get(step.name, []),
        }
        if step.job_id is not None:
            entry["jobId"] = step.job_id
        if step.error is not None:
            entry["error"] = dict(step.error)
        steps.append(entry)
    info: dict[str, Any] = {
        "workflowId": workflow.id,
        "name": workflow.name,
        "state": workflow.state.value,
        "startTime": instant(workflow.start_time),
        "steps": steps,
    }
    if workflow.end_time is not None:
        info["endTime"] = instant(workflow.end_time)
    if workflow.error is not None:
        info["error"] = dict(workflow.error)
    if workflow.schedule_name is not None:
        info["schedule"] = workflow.schedule_name
    if workflow.user is not None:
        info["user"] = workflow.user
    return info


@routes.get("/workflows")
async def list_workflows(request: web.Request) -> web.Response:
    limit = number(request.query, "limit", maximum=MAX_LIST_LIMIT) or DEFAULT_LIST_LIMIT
    workflows = await request.app[SERVER].workflows.list(limit, request.query.get("status"))
    return json_response([workflow_info(workflow) for workflow in workflows])


@routes.post("/workflows")
async def start_workflow(request: web.Request) -> web.Response:
    spec = parse_workflow(await json_document(request))
    access = request.app.get(ACCESS)
    run_as = None if access is None else access.run_as(request, None)
    workflow = await request.app[SERVER].workflows.start(spec, caller=caller(request), run_as=run_as)
    return json_response(workflow_info(workflow), 202)


@routes.get("/workflows/{workflow_id}")
async def get_workflow(request: web.Request) -> web.Response:
    return json_response(
        workflow_info(await request.app[SERVER].workflows.get(request.match_info["workflow_id"]))
    )


@routes.delete("/workflows/{workflow_id}")
async def kill_workflow(request: web.Request) -> web.Response:
    return json_response(
        workflow_info(await request.app[SERVER].workflows.kill(request.match_info["workflow_id"]))
    )
