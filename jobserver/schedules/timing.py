"""A schedule's due times (croniter, in the schedule's time zone) and its posted JSON: pure.

A schedule is ``{"name", "cron", "timeZone", "job" | "workflow", "catchUp", "overlap",
"paused"}``; the cron expression has the five standard fields (minute hour day month weekday) and
is read in ``timeZone`` (an IANA name, default UTC), so ``0 2 * * *`` in Europe/Berlin is 02:00
there in winter and in summer. A local time that a daylight-saving change skips or repeats is
croniter's to place: it runs once.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from jobserver.common.errors import BadRequest
from jobserver.common.scheduling import CatchUp, Overlap
from jobserver.workflows.specs import JobSpec, WorkflowSpec, parse_job, parse_workflow

NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
FIELDS = ("name", "cron", "timeZone", "job", "workflow", "catchUp", "overlap", "paused")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    name: str
    cron: str
    time_zone: str
    target: JobSpec | WorkflowSpec
    catch_up: CatchUp = CatchUp.LAST
    overlap: Overlap = Overlap.SKIP
    paused: bool = False


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise BadRequest(f"unknown time zone {name!r}") from error


def check_cron(expression: str) -> str:
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise BadRequest(
            f"invalid cron expression {expression!r} (five fields: minute hour day month weekday)"
        )
    return expression


def next_due(expression: str, time_zone: str, after: datetime.datetime) -> datetime.datetime:
    """The first due time strictly after ``after``, in UTC."""
    local = after.astimezone(zone(time_zone))
    moment: datetime.datetime = croniter(expression, local).get_next(datetime.datetime)
    return moment.astimezone(datetime.UTC)


def last_due(expression: str, time_zone: str, at: datetime.datetime) -> datetime.datetime:
    """The last due time at or before ``at``, in UTC."""
    local = at.astimezone(zone(time_zone))
    moment: datetime.datetime = croniter(expression, local).get_prev(datetime.datetime)
    following = next_due(expression, time_zone, moment)
    return following if following <= at else moment.astimezone(datetime.UTC)


def parse_schedule(body: Any, *, name: str | None = None) -> ScheduleSpec:
    """POST /schedules's body (``name`` from the path for a PUT)."""
    if not isinstance(body, Mapping):
        raise BadRequest("a schedule is a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown schedule field {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    name = name or body.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest("a schedule's name is 1 to 100 letters, digits, - or _")
    cron, time_zone = body.get("cron"), body.get("timeZone", "UTC")
    if not isinstance(cron, str) or not isinstance(time_zone, str):
        raise BadRequest("cron and timeZone are strings")
    zone(time_zone)
    if ("job" in body) == ("workflow" in body):
        raise BadRequest("a schedule runs either a job or a workflow")
    target = parse_job(body["job"]) if "job" in body else parse_workflow(body["workflow"])
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        raise BadRequest("paused must be true or false")
    return ScheduleSpec(
        name,
        check_cron(cron),
        time_zone,
        target,
        _choice(CatchUp, body, "catchUp", CatchUp.LAST),
        _choice(Overlap, body, "overlap", Overlap.SKIP),
        paused,
    )


def _choice(kind: type[CatchUp] | type[Overlap], body: Mapping[str, Any], key: str, default: Any) -> Any:
    value = body.get(key, default.value)
    try:
        return kind(value)
    except ValueError:
        raise BadRequest(f"{key} must be one of {', '.join(item.value for item in kind)}") from None
