"""Schedules, their runs and workflows in the store (checked on every backend): a due time is
claimed once whoever claims it, and states change by compare-and-set."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

from jobserver.common.records import ServerRecord, utc_now
from jobserver.common.scheduling import (
    CatchUp,
    Overlap,
    RunState,
    ScheduleRecord,
    ScheduleRun,
    StepRecord,
    StepState,
    WorkflowRecord,
    WorkflowState,
)
from jobserver.common.states import JobState
from jobserver.storage import Store
from tests.storage.factories import at, make_context, make_job


def schedule(name: str = "nightly", **changes: object) -> ScheduleRecord:
    record = ScheduleRecord(
        name=name,
        cron="0 2 * * *",
        time_zone="Europe/Berlin",
        target={"job": {"classPath": "a.B", "appName": "etl", "config": {"x": 1}}},
        catch_up=CatchUp.LAST,
        overlap=Overlap.SKIP,
        paused=False,
        next_due_at=at(60_000),
        created_at=at(0),
        user="ana",
        acts_as=("ana",),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


async def test_a_schedule_is_stored_once_by_name_replaced_and_deleted_with_its_runs(store: Store) -> None:
    assert await store.insert_schedule(schedule())
    assert not await store.insert_schedule(schedule(cron="* * * * *"))
    assert await store.get_schedule("nightly") == schedule()
    changed = schedule(cron="*/5 * * * *", paused=True, overlap=Overlap.QUEUE, next_due_at=at(5))
    assert await store.replace_schedule(changed)
    assert not await store.replace_schedule(schedule("missing"))
    assert await store.insert_schedule(schedule("early"))
    assert [entry.name for entry in await store.list_schedules()] == ["early", "nightly"]
    assert await store.get_schedule("nightly") == changed
    assert await store.claim_run(ScheduleRun("nightly", at(5), RunState.CLAIMED, "s1"))

    assert await store.delete_schedule("nightly")
    assert not await store.delete_schedule("nightly")
    assert await store.get_schedule("nightly") is None
    assert await store.list_runs("nightly", 10) == []


async def test_each_due_time_is_claimed_by_exactly_one_of_many_claimants(store: Store) -> None:
    await store.insert_schedule(schedule())
    claims = await asyncio.gather(
        *(store.claim_run(ScheduleRun("nightly", at(60_000), RunState.CLAIMED, f"s{n}")) for n in range(6))
    )
    assert claims.count(True) == 1
    # The schedule's next due time moves on once: the others' compare-and-set finds it moved.
    moves = await asyncio.gather(
        *(store.advance_schedule("nightly", from_due=at(60_000), to_due=at(120_000)) for _ in range(3))
    )
    assert moves.count(True) == 1
    assert (await store.get_schedule("nightly")).next_due_at == at(120_000)  # type: ignore[union-attr]
    assert not await store.claim_run(ScheduleRun("gone", at(1), RunState.CLAIMED, "s1"))


async def test_runs_change_state_once_and_list_with_their_jobs_state(store: Store) -> None:
    await store.insert_schedule(schedule())
    await store.insert_context(make_context("ctx-1"))
    await store.insert_job(make_job("job-1"), {})
    for offset in (1, 2, 3):
        await store.claim_run(ScheduleRun("nightly", at(offset), RunState.CLAIMED, "s1"))
    assert await store.update_run("nightly", at(1), RunState.STARTED, job_id="job-1")
    assert not await store.update_run("nightly", at(1), RunState.SKIPPED)
    assert await store.update_run("nightly", at(2), RunState.QUEUED)
    assert await store.update_run("nightly", at(3), RunState.FAILED, error="no such binary")
    await store.update_job("job-1", JobState.FINISHED)

    runs = await store.list_runs("nightly", 10)
    assert [(run.due_at, run.state, run.job_id, run.outcome, run.error) for run in runs] == [
        (at(3), RunState.FAILED, None, None, "no such binary"),
        (at(2), RunState.QUEUED, None, None, None),
        (at(1), RunState.STARTED, "job-1", "FINISHED", None),
    ]
    assert [run.due_at for run in await store.list_runs("nightly", 1)] == [at(3)]
    queued = await store.list_runs("nightly", 10, states=[RunState.QUEUED])
    assert [run.due_at for run in queued] == [at(2)]


async def test_a_workflow_is_stored_with_its_steps_and_changes_by_compare_and_set(store: Store) -> None:
    steps = (
        StepRecord("wf-1", "ingest", StepState.PENDING),
        StepRecord("wf-1", "report", StepState.PENDING),
    )
    workflow = WorkflowRecord(
        id="wf-1",
        name="daily",
        state=WorkflowState.RUNNING,
        spec={"steps": [{"name": "ingest"}, {"name": "report", "after": ["ingest"]}]},
        owner="s1",
        start_time=at(0),
        schedule_name="nightly",
        user="ana",
        acts_as=("ana",),
        steps=steps,
    )
    await store.insert_workflow(workflow)
    assert await store.get_workflow("wf-1") == workflow
    assert await store.get_workflow("nope") is None

    assert await store.update_step("wf-1", "ingest", StepState.STARTING)
    assert not await store.update_step("wf-1", "ingest", StepState.STARTING)  # claimed once
    assert await store.update_step("wf-1", "ingest", StepState.STARTED, job_id="job-9")
    error = {"message": "step ingest (job job-9) failed", "errorClass": "WorkflowStepFailed"}
    assert await store.update_step("wf-1", "report", StepState.ERROR, error=error)
    assert not await store.update_step("wf-1", "report", StepState.STARTING)

    ended = await store.update_workflow("wf-1", WorkflowState.ERROR, error=error)
    assert ended is not None and ended.end_time is not None and ended.error == error
    assert [(s.name, s.state, s.job_id) for s in ended.steps] == [
        ("ingest", StepState.STARTED, "job-9"),
        ("report", StepState.ERROR, None),
    ]
    assert await store.update_workflow("wf-1", WorkflowState.KILLED) is None
    await store.insert_workflow(
        dataclasses.replace(workflow, id="wf-2", owner="s2", steps=(), start_time=at(5))
    )
    assert [w.id for w in await store.list_workflows(10)] == ["wf-2", "wf-1"]
    assert [w.id for w in await store.list_workflows(10, state=WorkflowState.RUNNING)] == ["wf-2"]
    assert [w.id for w in await store.list_workflows(10, owner="s1")] == ["wf-1"]


def workflow(
    workflow_id: str, owner: str, state: WorkflowState = WorkflowState.RUNNING, **more: object
) -> WorkflowRecord:
    record = WorkflowRecord(
        id=workflow_id,
        name="daily",
        state=state,
        spec={"steps": [{"name": "only"}]},
        owner=owner,
        start_time=at(0),
        steps=(StepRecord(workflow_id, "only", StepState.PENDING),),
    )
    return dataclasses.replace(record, **more)  # type: ignore[arg-type]


def server(server_id: str, heartbeat_ms: int) -> ServerRecord:
    return ServerRecord(server_id, f"http://{server_id}", f"tcp://{server_id}:1", "same", at(heartbeat_ms))


async def test_the_running_workflows_of_an_adopted_server_move_to_its_one_adopter(store: Store) -> None:
    await store.beat(server("dead", 0))
    for adopter in ("p", "q"):
        await store.beat(server(adopter, 60_000))
    await store.insert_workflow(workflow("wf-running", "dead"))
    await store.insert_workflow(workflow("wf-ended", "dead", WorkflowState.FINISHED, end_time=at(1)))
    await store.insert_workflow(workflow("wf-other", "q"))
    silent_since = at(30_000)
    assert await store.adopt_workflows("p", silent_since=silent_since) == [], "not adopted yet"

    await store.adopt_contexts("dead", "p", silent_since=silent_since)  # p wins the server
    taken = await asyncio.gather(
        *(store.adopt_workflows(adopter, silent_since=silent_since) for adopter in ("q", "p", "q"))
    )
    assert taken == [[], ["wf-running"], []]
    assert await store.adopt_workflows("p", silent_since=silent_since) == []
    owners = {w.id: w.owner for w in await store.list_workflows(10)}
    assert owners == {"wf-running": "p", "wf-ended": "dead", "wf-other": "q"}

    # A server that beats again is no longer adopted: what it still owns stays its own.
    await store.insert_workflow(workflow("wf-later", "dead"))
    await store.beat(server("dead", 60_000))
    assert await store.adopt_workflows("p", silent_since=silent_since) == []


async def test_ended_workflows_and_runs_that_are_over_expire_the_rest_stays(store: Store) -> None:
    await store.insert_schedule(schedule())
    await store.insert_context(make_context("ctx-1"))
    await store.insert_job(make_job("job-ended"), {})
    await store.update_job("job-ended", JobState.FINISHED)
    await store.insert_job(make_job("job-running"), {})
    await store.insert_workflow(workflow("wf-old", "s1", WorkflowState.FINISHED, end_time=at(1_000)))
    await store.insert_workflow(workflow("wf-new", "s1", WorkflowState.ERROR, end_time=at(9_000)))
    await store.insert_workflow(workflow("wf-running", "s1"))
    runs = {
        1: (RunState.SKIPPED, {}),
        2: (RunState.FAILED, {"error": "no such binary"}),
        3: (RunState.STARTED, {"job_id": "job-ended"}),
        4: (RunState.STARTED, {"job_id": "job-gone"}),
        5: (RunState.STARTED, {"job_id": "job-running"}),
        6: (RunState.STARTED, {"workflow_id": "wf-running"}),
        7: (RunState.STARTED, {"workflow_id": "wf-old"}),
        8: (RunState.QUEUED, {}),
        9: (RunState.CLAIMED, {}),
    }
    claimed_after = utc_now() - datetime.timedelta(seconds=1)
    for offset, (state, fields) in runs.items():
        assert await store.claim_run(ScheduleRun("nightly", at(offset), RunState.CLAIMED, "s1"))
        if state is not RunState.CLAIMED:
            assert await store.update_run("nightly", at(offset), state, **fields)  # type: ignore[arg-type]

    # Runs expire by the time they were claimed (the wall clock), whatever their due time.
    counts = await store.delete_expired_scheduling(runs_before=claimed_after, workflows_before=at(5_000))
    assert counts == {"workflows": 1, "schedule_runs": 0}
    later = utc_now() + datetime.timedelta(seconds=1)
    counts = await store.delete_expired_scheduling(runs_before=later, workflows_before=at(5_000))
    assert counts == {"workflows": 0, "schedule_runs": 5}
    assert sorted(w.id for w in await store.list_workflows(10)) == ["wf-new", "wf-running"]
    kept = sorted(run.due_at for run in await store.list_runs("nightly", 100))
    assert kept == [at(offset) for offset in (5, 6, 8, 9)]
    assert await store.get_workflow("wf-old") is None
    assert await store.delete_expired_scheduling(runs_before=later, workflows_before=at(5_000)) == {
        "workflows": 0,
        "schedule_runs": 0,
    }
