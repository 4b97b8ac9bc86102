"""``jobserver-cli schedules …`` and ``jobserver-cli workflows …`` (docs/workflows.md).

    jobserver-cli schedules create nightly --cron '0 2 * * *' --time-zone Europe/Paris \\
        --app etl --class-path etl.jobs:ingest --context etl --config-file ingest.conf
    jobserver-cli schedules create nightly-etl --cron '0 2 * * *' --workflow daily.json
    jobserver-cli schedules list | show | pause | resume | runs | delete <name>
    jobserver-cli workflows start daily.json --wait
    jobserver-cli workflows list | show <id> | wait <id> | kill <id>
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from jobserver_client import calls
from jobserver_client.cli_output import EXIT_JOB_FAILED, EXIT_OK, UsageError, action, show, table
from jobserver_client.client import JobServerClient
from jobserver_client.documents import read_document, read_text

WAIT_INTERVAL_S = 0.25

# Schedules


def schedule_target(schedule: dict[str, Any]) -> str:
    """What a schedule runs, in a few words: ``workflow <name>`` or the job's class (or SQL)."""
    if "workflow" in schedule:
        return f"workflow {schedule['workflow'].get('name', '')}".rstrip()
    job = schedule.get("job", {})
    return str(job.get("classPath") or job.get("mainClass") or ("SQL" if job.get("sql") else "?"))


def schedules_list(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    schedules = client.schedules()
    if arguments.json:
        show(schedules, out)
        return EXIT_OK
    rows = [
        (
            s["name"],
            s["cron"],
            s["timeZone"],
            s["nextDueAt"],
            "yes" if s["paused"] else "no",
            schedule_target(s),
        )
        for s in schedules
    ]
    table(rows, ("NAME", "CRON", "TIME ZONE", "NEXT DUE", "PAUSED", "RUNS"), out)
    return EXIT_OK


def schedules_show(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    show(client.schedule(arguments.name), out)
    return EXIT_OK


def schedule_options(arguments: argparse.Namespace) -> dict[str, Any]:
    """The schedule's settings and its job (from the job flags) or workflow (from a file)."""
    job_flags = (arguments.class_path, arguments.app, arguments.cp, arguments.sql, arguments.conf)
    options: dict[str, Any] = {
        "time_zone": arguments.time_zone,
        "catch_up": arguments.catch_up,
        "overlap": arguments.overlap,
        "paused": True if arguments.paused else None,
    }
    if arguments.workflow is not None:
        if any(job_flags) or arguments.config_file or arguments.context:
            raise UsageError("give either --workflow or a job (--class-path, --sql, …), not both")
        options["workflow"] = read_document(arguments.workflow)
        return options
    config: str | None = arguments.conf
    if arguments.config_file is not None:
        config = read_text(arguments.config_file)
    options["job"] = calls.job_spec(
        arguments.class_path,
        app_name=arguments.app,
        cp=[entry for entry in (arguments.cp or "").split(",") if entry] or None,
        context=arguments.context,
        config=config,
        sql=arguments.sql,
    )
    return options


def schedules_create(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    schedule = client.create_schedule(arguments.name, arguments.cron, **schedule_options(arguments))
    out.write(f"schedule {schedule['name']} created, next due at {schedule['nextDueAt']}\n")
    return EXIT_OK


def schedules_replace(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    schedule = client.replace_schedule(arguments.name, arguments.cron, **schedule_options(arguments))
    out.write(f"schedule {schedule['name']} replaced, next due at {schedule['nextDueAt']}\n")
    return EXIT_OK


def schedules_pause(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.pause_schedule(arguments.name)
    out.write(f"schedule {arguments.name} paused\n")
    return EXIT_OK


def schedules_resume(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    schedule = client.resume_schedule(arguments.name)
    out.write(f"schedule {arguments.name} resumed, next due at {schedule['nextDueAt']}\n")
    return EXIT_OK


def schedules_delete(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.delete_schedule(arguments.name)
    out.write(f"schedule {arguments.name} deleted\n")
    return EXIT_OK


def schedules_runs(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    runs = client.schedule_runs(arguments.name, limit=arguments.limit)
    if arguments.json:
        show(runs, out)
        return EXIT_OK
    rows = [
        (
            run["dueAt"],
            run["state"],
            run.get("status", ""),
            run.get("jobId") or run.get("workflowId") or "",
            run.get("error", ""),
        )
        for run in runs
    ]
    table(rows, ("DUE", "STATE", "STATUS", "JOB OR WORKFLOW", "ERROR"), out)
    return EXIT_OK


# Workflows


def print_workflow(workflow: dict[str, Any], arguments: argparse.Namespace, out: TextIO) -> None:
    """A line for the workflow, a table of its steps (``--json``: the workflow as JSON)."""
    if arguments.json:
        show(workflow, out)
        return
    out.write(f"{workflow['workflowId']} {workflow['name']} {workflow['state']}\n")
    rows = [
        (step["name"], step["state"], ",".join(step["after"]), step.get("jobId", ""))
        for step in workflow["steps"]
    ]
    table(rows, ("STEP", "STATE", "AFTER", "JOB"), out)


def finish_workflow(workflow: dict[str, Any], arguments: argparse.Namespace, out: TextIO) -> int:
    """Print the ended workflow; the exit status says how it ended."""
    print_workflow(workflow, arguments, out)
    if workflow["state"] in ("ERROR", "KILLED"):
        error = workflow.get("error") or {}
        message = f": {error['message']}" if error.get("message") else ""
        sys.stderr.write(f"workflow {workflow['workflowId']} ended {workflow['state']}{message}\n")
        return EXIT_JOB_FAILED
    return EXIT_OK


def watch_workflow(client: JobServerClient, workflow_id: str, timeout_s: float | None) -> dict[str, Any]:
    """Wait for the workflow's end, with a live line (state, time, steps ended) on a terminal's
    stderr, as ``jobs wait`` has for a job."""
    started = time.monotonic()
    live = sys.stderr.isatty()
    while True:
        workflow = client.workflow(workflow_id)
        if workflow["state"] in calls.FINAL_STATES:
            if live:
                sys.stderr.write("\r\033[K")
            return workflow
        elapsed = time.monotonic() - started
        if timeout_s is not None and elapsed >= timeout_s:
            raise TimeoutError(f"workflow {workflow_id} still {workflow['state']} after {timeout_s} s")
        if live:
            ended = sum(step["state"] in calls.FINAL_STATES for step in workflow["steps"])
            total = len(workflow["steps"])
            sys.stderr.write(
                f"\r\033[K{workflow_id} {workflow['state']} {elapsed:6.1f} s, {ended}/{total} steps ended"
            )
            sys.stderr.flush()
        time.sleep(WAIT_INTERVAL_S)


def workflows_start(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    workflow = client.start_workflow(read_document(arguments.file))
    if not arguments.wait:
        out.write(f"{workflow['workflowId']} {workflow['state']}\n")
        return EXIT_OK
    return finish_workflow(watch_workflow(client, workflow["workflowId"], arguments.timeout), arguments, out)


def workflows_wait(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    return finish_workflow(watch_workflow(client, arguments.workflow_id, arguments.timeout), arguments, out)


def workflows_list(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    workflows = client.workflows(limit=arguments.limit, status=arguments.status)
    if arguments.json:
        show(workflows, out)
        return EXIT_OK
    rows = [
        (w["workflowId"], w["name"], w["state"], w["startTime"], w.get("endTime", ""), w.get("schedule", ""))
        for w in workflows
    ]
    table(rows, ("WORKFLOW", "NAME", "STATE", "STARTED", "ENDED", "SCHEDULE"), out)
    return EXIT_OK


def workflows_show(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    print_workflow(client.workflow(arguments.workflow_id), arguments, out)
    return EXIT_OK


def workflows_kill(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    print_workflow(client.kill_workflow(arguments.workflow_id), arguments, out)
    return EXIT_OK


def add_schedule_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("name")
    command.add_argument("--cron", required=True, help="five fields: minute hour day month weekday")
    command.add_argument("--time-zone", help="an IANA time zone the cron is read in (default UTC)")
    command.add_argument("--catch-up", choices=("skip", "last"), help="missed due times (default last)")
    command.add_argument("--overlap", choices=("skip", "queue"), help="a due time while a run goes (skip)")
    command.add_argument("--paused", action="store_true", help="no runs until resumed")
    command.add_argument("--workflow", metavar="FILE", help="run this workflow (JSON or HOCON; - for stdin)")
    command.add_argument("--class-path", help="or run this job: module.Class or module:function")
    command.add_argument("--app", "--app-name", dest="app", help="the binary holding the job")
    command.add_argument("--cp", help="binaries or URIs, comma-separated")
    command.add_argument("--context", help="a running context (none: ad hoc)")
    command.add_argument("--conf", help="the job's config as HOCON text")
    command.add_argument("--config-file", "--config", dest="config_file", help="the job's config from a file")
    command.add_argument("--sql", help="an SQL statement instead of a class")


def add_scheduling_commands(groups: Any) -> None:
    """``schedules`` and ``workflows`` under ``groups`` (the root's ``add_subparsers``)."""
    schedules = groups.add_parser("schedules", help="jobs and workflows on a cron").add_subparsers(
        dest="action", required=True
    )
    action(schedules, "list", schedules_list, "schedules, by name")
    add_schedule_flags(action(schedules, "create", schedules_create, "create a schedule"))
    replace_help = "replace a schedule (what is left out takes its default)"
    add_schedule_flags(action(schedules, "replace", schedules_replace, replace_help, aliases=["update"]))
    for name, command, help_text in (
        ("show", schedules_show, "one schedule"),
        ("pause", schedules_pause, "no runs until resumed"),
        ("resume", schedules_resume, "runs again from the next due time"),
        ("delete", schedules_delete, "delete a schedule and its runs' records"),
    ):
        action(schedules, name, command, help_text).add_argument("name")
    runs = action(schedules, "runs", schedules_runs, "a schedule's runs, newest first")
    runs.add_argument("name")
    runs.add_argument("--limit", type=int, help="at most this many (50)")

    workflows = groups.add_parser("workflows", help="steps, each a job, in order").add_subparsers(
        dest="action", required=True
    )
    start = action(workflows, "start", workflows_start, "start a workflow")
    start.add_argument("file", help="the workflow as JSON or HOCON (- for stdin)")
    start.add_argument("--wait", action="store_true", help="wait for its end; exit 1 if it failed")
    start.add_argument("--timeout", type=float, help="seconds to wait at most")
    listing = action(workflows, "list", workflows_list, "workflows, newest first")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--status", help="RUNNING, FINISHED, ERROR or KILLED")
    for name, command, help_text in (
        ("show", workflows_show, "a workflow and its steps"),
        ("kill", workflows_kill, "kill its running steps' jobs; start no more"),
    ):
        action(workflows, name, command, help_text).add_argument("workflow_id")
    wait = action(workflows, "wait", workflows_wait, "wait for a workflow's end; exit 1 if it failed")
    wait.add_argument("workflow_id")
    wait.add_argument("--timeout", type=float)
