"""Schedules and workflows in SQLite: the ``SchedulingStore`` part of ``SqliteStore``.

Writes go to the worker thread (they are few: a schedule's due time, a step's change), lookups
to the event loop's reader. A run's claim is one INSERT, so SQLite's write lock lets exactly one
of several processes sharing the file win it.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Sequence

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
from jobserver.storage.scheduling import SchedulingStore
from jobserver.storage.sqlite.connection import transaction
from jobserver.storage.sqlite.database import Database


class SqliteScheduling(SchedulingStore):
    _database: Database

    # --- schedules ---------------------------------------------------------------------------------

    async def insert_schedule(self, schedule: ScheduleRecord) -> bool:
        values = sql.schedule_values(schedule)
        return await self._database.in_worker(
            lambda connection: connection.execute(sql.INSERT_SCHEDULE, values).rowcount > 0
        )

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        row = await self._database.read(
            lambda connection: connection.execute(sql.GET_SCHEDULE, (name,)).fetchone()
        )
        return None if row is None else sql.schedule_from_row(row)

    async def list_schedules(self) -> list[ScheduleRecord]:
        rows = await self._database.read(lambda connection: connection.execute(sql.LIST_SCHEDULES).fetchall())
        return [sql.schedule_from_row(row) for row in rows]

    async def replace_schedule(self, schedule: ScheduleRecord) -> bool:
        values = sql.replace_values(schedule)
        return await self._database.in_worker(
            lambda connection: connection.execute(sql.REPLACE_SCHEDULE, values).rowcount > 0
        )

    async def delete_schedule(self, name: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            with transaction(connection):
                connection.execute(sql.DELETE_RUNS, (name,))
                return connection.execute(sql.DELETE_SCHEDULE, (name,)).rowcount > 0

        return await self._database.in_worker(delete)

    async def advance_schedule(
        self, name: str, *, from_due: datetime.datetime, to_due: datetime.datetime
    ) -> bool:
        values = (to_epoch_ms(to_due), name, to_epoch_ms(from_due))
        return await self._database.in_worker(
            lambda connection: connection.execute(sql.ADVANCE_SCHEDULE, values).rowcount > 0
        )

    async def claim_run(self, run: ScheduleRun) -> bool:
        values = sql.run_values(run, utc_now())
        return await self._database.in_worker(
            lambda connection: connection.execute(sql.CLAIM_RUN, values).rowcount > 0
        )

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
        values = (*values, schedule_name, to_epoch_ms(due_at))
        return await self._database.in_worker(
            lambda connection: connection.execute(statement, values).rowcount > 0
        )

    async def list_runs(
        self, schedule_name: str, limit: int, *, states: Sequence[RunState] | None = None
    ) -> list[ScheduleRun]:
        statement, values = sql.list_runs_sql(states)
        params = (schedule_name, *values, limit)
        rows = await self._database.read(lambda connection: connection.execute(statement, params).fetchall())
        return [sql.run_from_row(row) for row in rows]

    # --- workflows ---------------------------------------------------------------------------------

    async def insert_workflow(self, workflow: WorkflowRecord) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute(sql.INSERT_WORKFLOW, sql.workflow_values(workflow))
                connection.executemany(
                    sql.INSERT_STEP,
                    [
                        sql.step_values(workflow.id, position, step)
                        for position, step in enumerate(workflow.steps)
                    ],
                )

        await self._database.in_worker(insert)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        def get(connection: sqlite3.Connection) -> WorkflowRecord | None:
            row = connection.execute(sql.GET_WORKFLOW, (workflow_id,)).fetchone()
            if row is None:
                return None
            return sql.workflow_from_row(row, connection.execute(sql.STEPS_OF, (workflow_id,)).fetchall())

        return await self._database.read(get)

    async def list_workflows(
        self, limit: int, *, state: WorkflowState | None = None, owner: str | None = None
    ) -> list[WorkflowRecord]:
        statement, values = sql.list_workflows_sql(state, owner)

        def listed(connection: sqlite3.Connection) -> list[WorkflowRecord]:
            rows = connection.execute(statement, (*values, limit)).fetchall()
            return [
                sql.workflow_from_row(row, connection.execute(sql.STEPS_OF, (row[0],)).fetchall())
                for row in rows
            ]

        return await self._database.read(listed)

    async def update_workflow(
        self, workflow_id: str, target: WorkflowState, *, error: ErrorMap | None = None
    ) -> WorkflowRecord | None:
        statement, values = sql.update_workflow_sql(target, error)

        def update(connection: sqlite3.Connection) -> WorkflowRecord | None:
            with transaction(connection):
                row = connection.execute(statement, (*values, workflow_id)).fetchone()
                if row is None:
                    return None
                return sql.workflow_from_row(row, connection.execute(sql.STEPS_OF, (workflow_id,)).fetchall())

        return await self._database.in_worker(update)

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
        params = (*values, workflow_id, name)
        return await self._database.in_worker(
            lambda connection: connection.execute(statement, params).rowcount > 0
        )

    async def adopt_workflows(self, adopter_id: str, *, silent_since: datetime.datetime) -> list[str]:
        params = (adopter_id, adopter_id, to_epoch_ms(silent_since))
        # Asked every peer heartbeat, and nearly always for nothing: a read first, so that the
        # write lock is taken only when this server adopted another.
        adopted = await self._database.read(
            lambda connection: connection.execute(
                "SELECT 1 FROM servers WHERE adopted_by = ? LIMIT 1", (adopter_id,)
            ).fetchone()
        )
        if adopted is None:
            return []

        def adopt(connection: sqlite3.Connection) -> list[str]:
            with transaction(connection):
                return [row[0] for row in connection.execute(sql.ADOPT_WORKFLOWS, params).fetchall()]

        return await self._database.in_worker(adopt)

    async def delete_expired_scheduling(
        self, *, runs_before: datetime.datetime, workflows_before: datetime.datetime
    ) -> dict[str, int]:
        def delete(connection: sqlite3.Connection) -> dict[str, int]:
            with transaction(connection):
                workflows = connection.execute(
                    sql.DELETE_EXPIRED_WORKFLOWS, (to_epoch_ms(workflows_before),)
                ).rowcount
            with transaction(connection):
                runs = connection.execute(sql.DELETE_EXPIRED_RUNS, (to_epoch_ms(runs_before),)).rowcount
            return {"workflows": workflows, "schedule_runs": runs}

        return await self._database.in_worker(delete)
