"""Schedules and workflows in PostgreSQL: the ``SchedulingStore`` part of ``PostgresStore``.

A run's claim is one INSERT: under concurrent claims of one due time, the unique index makes
the second INSERT wait for the first and then do nothing, so exactly one server wins it.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from jobserver.common.records import ErrorMap, to_epoch_ms, utc_now
from jobserver.common.scheduling import (
    RunState,
    ScheduleRecord,
    ScheduleRun,
    StepState,
    WorkflowRecord,
    WorkflowState,
)
from jobserver.storage import scheduling_rows as sql
from jobserver.storage.postgres.connection import Connection, Row
from jobserver.storage.scheduling import SchedulingStore


@functools.cache
def _pg(statement: str) -> str:
    """A statement of scheduling_rows with PostgreSQL's marks."""
    return statement.replace("?", "%s")


class PostgresScheduling(SchedulingStore):
    def _connection(self) -> AbstractAsyncContextManager[Connection]:
        raise NotImplementedError  # PostgresStore's

    async def _rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[Row]:
        async with self._connection() as connection:
            return await (await connection.execute(_pg(statement), params)).fetchall()

    async def _changed(self, statement: str, params: tuple[Any, ...]) -> bool:
        async with self._connection() as connection:
            return (await connection.execute(_pg(statement), params)).rowcount > 0

    # --- schedules ---------------------------------------------------------------------------------

    async def insert_schedule(self, schedule: ScheduleRecord) -> bool:
        return await self._changed(sql.INSERT_SCHEDULE, sql.schedule_values(schedule))

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        rows = await self._rows(sql.GET_SCHEDULE, (name,))
        return sql.schedule_from_row(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [sql.schedule_from_row(row) for row in await self._rows(sql.LIST_SCHEDULES)]

    async def replace_schedule(self, schedule: ScheduleRecord) -> bool:
        return await self._changed(sql.REPLACE_SCHEDULE, sql.replace_values(schedule))

    async def delete_schedule(self, name: str) -> bool:
        async with self._connection() as connection, connection.transaction():
            await connection.execute(_pg(sql.DELETE_RUNS), (name,))
            return (await connection.execute(_pg(sql.DELETE_SCHEDULE), (name,))).rowcount > 0

    async def advance_schedule(
        self, name: str, *, from_due: datetime.datetime, to_due: datetime.datetime
    ) -> bool:
        return await self._changed(sql.ADVANCE_SCHEDULE, (to_epoch_ms(to_due), name, to_epoch_ms(from_due)))

    async def claim_run(self, run: ScheduleRun) -> bool:
        return await self._changed(sql.CLAIM_RUN, sql.run_values(run, utc_now()))

    async def update_run(
        self,
        schedule_name: str,
        due_at: datetime.datetime,
        target: RunState,
        *,
        job_id: str | None = None,
        workflow_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        statement, values = sql.update_run_sql(target, job_id, workflow_id, error)
        return await self._changed(statement, (*values, schedule_name, to_epoch_ms(due_at)))

    async def list_runs(
        self, schedule_name: str, limit: int, *, states: Sequence[RunState] | None = None
    ) -> list[ScheduleRun]:
        statement, values = sql.list_runs_sql(states)
        return [sql.run_from_row(row) for row in await self._rows(statement, (schedule_name, *values, limit))]

    # --- workflows ---------------------------------------------------------------------------------

    async def insert_workflow(self, workflow: WorkflowRecord) -> None:
        async with self._connection() as connection, connection.transaction():
            await connection.execute(_pg(sql.INSERT_WORKFLOW), sql.workflow_values(workflow))
            async with connection.cursor() as cursor:
                await cursor.executemany(
                    _pg(sql.INSERT_STEP),
                    [
                        sql.step_values(workflow.id, position, step)
                        for position, step in enumerate(workflow.steps)
                    ],
                )

    async def _with_steps(self, connection: Connection, row: Row) -> WorkflowRecord:
        steps = await (await connection.execute(_pg(sql.STEPS_OF), (row[0],))).fetchall()
        return sql.workflow_from_row(row, steps)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        async with self._connection() as connection:
            row = await (await connection.execute(_pg(sql.GET_WORKFLOW), (workflow_id,))).fetchone()
            return None if row is None else await self._with_steps(connection, row)

    async def list_workflows(
        self, limit: int, *, state: WorkflowState | None = None, owner: str | None = None
    ) -> list[WorkflowRecord]:
        statement, values = sql.list_workflows_sql(state, owner)
        async with self._connection() as connection:
            rows = await (await connection.execute(_pg(statement), (*values, limit))).fetchall()
            return [await self._with_steps(connection, row) for row in rows]

    async def update_workflow(
        self, workflow_id: str, target: WorkflowState, *, error: ErrorMap | None = None
    ) -> WorkflowRecord | None:
        statement, values = sql.update_workflow_sql(target, error)
        async with self._connection() as connection:
            row = await (await connection.execute(_pg(statement), (*values, workflow_id))).fetchone()
            return None if row is None else await self._with_steps(connection, row)

    async def update_step(
        self,
        workflow_id: str,
        name: str,
        target: StepState,
        *,
        job_id: str | None = None,
        error: ErrorMap | None = None,
    ) -> bool:
        statement, values = sql.update_step_sql(target, job_id, error)
        return await self._changed(statement, (*values, workflow_id, name))

    async def adopt_workflows(self, adopter_id: str, *, silent_since: datetime.datetime) -> list[str]:
        rows = await self._rows(sql.ADOPT_WORKFLOWS, (adopter_id, adopter_id, to_epoch_ms(silent_since)))
        return [row[0] for row in rows]

    async def delete_expired_scheduling(
        self, *, runs_before: datetime.datetime, workflows_before: datetime.datetime
    ) -> dict[str, int]:
        async with self._connection() as connection:  # autocommit: each statement on its own
            workflows = await connection.execute(
                _pg(sql.DELETE_EXPIRED_WORKFLOWS), (to_epoch_ms(workflows_before),)
            )
            runs = await connection.execute(_pg(sql.DELETE_EXPIRED_RUNS), (to_epoch_ms(runs_before),))
        return {"workflows": max(workflows.rowcount, 0), "schedule_runs": max(runs.rowcount, 0)}
