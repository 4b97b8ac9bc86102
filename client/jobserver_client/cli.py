"""``jobserver-cli``: the job server from a shell or a scheduler's task.

    jobserver-cli binaries upload examples dist/examples.whl
    jobserver-cli contexts create shared --set num-cpu-cores=2
    jobserver-cli jobs submit example_jobs.native:word_count --app examples --context shared \\
        --conf 'input.strings = ["a", "b", "a"]' --wait
    jobserver-cli jobs list --status ERROR
    jobserver-cli jobs logs <job id> --follow
    jobserver-cli schedules create nightly --cron '0 2 * * *' --time-zone Europe/Paris \
        --app examples --class-path example_jobs.echo.EchoJob --context shared
    jobserver-cli workflows start daily.json --wait

The server and the login come from flags or the environment: ``--url``/``JOBSERVER_URL``
(default http://localhost:8090), ``--user``/``JOBSERVER_USER`` with ``--password``/
``JOBSERVER_PASSWORD``, or ``--token``/``JOBSERVER_TOKEN``. Lists print as tables (``--json`` for
JSON); a job's result prints as JSON. Exit status: 0 done, 1 the job (or workflow) ended ERROR or
KILLED, 2 a usage error, 3 the server refused the request or could not be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from jobserver_client.calls import FINAL_STATES, JobServerError, progress_line
from jobserver_client.cli_output import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    Command,
    UsageError,
    action,
    show,
    table,
)
from jobserver_client.cli_scheduling import add_scheduling_commands
from jobserver_client.client import JobServerClient
from jobserver_client.documents import DocumentError

DEFAULT_URL = "http://localhost:8090"


def settings_of(pairs: Sequence[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"--set takes key=value, not {pair!r}")
        settings[key] = value
    return settings


# Binaries


def binaries_list(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    binaries = client.binaries()
    if arguments.json:
        show(binaries, out)
    else:
        rows = [(name, info["binary-type"], info["upload-time"]) for name, info in sorted(binaries.items())]
        table(rows, ("NAME", "TYPE", "UPLOADED"), out)
    return EXIT_OK


def binaries_upload(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.upload_binary(arguments.name, arguments.file, arguments.type)
    out.write(f"uploaded {arguments.name}\n")
    return EXIT_OK


def binaries_delete(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.delete_binary(arguments.name)
    out.write(f"deleted {arguments.name}\n")
    return EXIT_OK


# Contexts


def contexts_list(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    contexts = [client.context(name) for name in client.contexts()]
    if arguments.json:
        show(contexts, out)
    else:
        rows = [(c["name"], c["state"], c["startTime"], c.get("applicationId", "")) for c in contexts]
        table(rows, ("NAME", "STATE", "STARTED", "APPLICATION"), out)
    return EXIT_OK


def contexts_get(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    show(client.context(arguments.name), out)
    return EXIT_OK


def contexts_create(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.create_context(arguments.name, settings_of(arguments.set))
    out.write(f"context {arguments.name} started\n")
    return EXIT_OK


def contexts_delete(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.delete_context(arguments.name, force=arguments.force)
    out.write(f"context {arguments.name} stopped\n")
    return EXIT_OK


# Jobs


def job_rows(jobs: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (job["jobId"], job["status"], job["context"], job["classPath"], job["startTime"], job["duration"])
        for job in jobs
    ]


def jobs_list(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    jobs = client.jobs(limit=arguments.limit, status=arguments.status)
    if arguments.json:
        show(jobs, out)
    else:
        table(job_rows(jobs), ("JOB", "STATUS", "CONTEXT", "CLASS", "STARTED", "DURATION"), out)
    return EXIT_OK


def jobs_submit(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    config: str | None = arguments.conf
    if arguments.config_file is not None:
        config = sys.stdin.read() if arguments.config_file == "-" else Path(arguments.config_file).read_text()
    report = client.submit_job(
        arguments.class_path,
        app_name=arguments.app,
        cp=[entry for entry in (arguments.cp or "").split(",") if entry] or None,
        context=arguments.context,
        config=config,
        sync=arguments.sync,
        timeout_s=arguments.timeout,
        sql=arguments.sql,
    )
    if report["status"] not in FINAL_STATES and arguments.wait:
        report = watch(client, report["jobId"], arguments.timeout)
    return finish(report, out)


def watch(client: JobServerClient, job_id: str, timeout_s: float | None) -> dict[str, Any]:
    """Wait for the job's end, with a live status line (and progress bar) on a terminal's stderr:
    from its events where the server streams them and the wait is not bounded, else polling."""
    started = time.monotonic()
    live = sys.stderr.isatty()
    if timeout_s is None:
        try:
            return watch_events(client, job_id, started, live=live)
        except JobServerError as error:
            if error.status != 404 or not isinstance(error.body, str):  # 404 text: an older server
                raise
    while True:
        report = client.job(job_id)
        if report["status"] in FINAL_STATES:
            if live:
                sys.stderr.write("\r\033[K")
            return report
        elapsed = time.monotonic() - started
        if timeout_s is not None and elapsed >= timeout_s:
            raise TimeoutError(f"job {job_id} still {report['status']} after {timeout_s} s")
        if live:
            sys.stderr.write(f"\r\033[K{job_id} {report['status']} {elapsed:6.1f} s")
            sys.stderr.flush()
        time.sleep(0.5)


def watch_events(client: JobServerClient, job_id: str, started: float, *, live: bool) -> dict[str, Any]:
    status, bar = "", ""
    for event, data in client.events(job_id):
        if event == "state":
            status = str(data.get("status", ""))
        elif event == "progress":
            bar = progress_line(data.get("progress", {}))
        if live:
            sys.stderr.write(f"\r\033[K{job_id} {status} {time.monotonic() - started:6.1f} s {bar}")
            sys.stderr.flush()
    if live:
        sys.stderr.write("\r\033[K")
    return client.job(job_id)


def jobs_logs(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    if arguments.follow:
        for line in client.follow_logs(arguments.job_id, start=arguments.start or 0):
            out.write(line + "\n")
            out.flush()
        return EXIT_OK
    page = client.logs(arguments.job_id, start=arguments.start, size=arguments.size)
    out.writelines(line + "\n" for line in page["log"])
    return EXIT_OK


def finish(report: dict[str, Any], out: TextIO) -> int:
    """Print what the user waits for; the exit status says how the job ended."""
    status = report["status"]
    if status in ("ERROR", "KILLED"):
        error = report.get("result")
        message = error.get("message", "") if isinstance(error, dict) else ""
        sys.stderr.write(f"job {report['jobId']} ended {status}: {message}\n")
        return EXIT_JOB_FAILED
    if status == "FINISHED":
        show(report.get("result"), out)
    else:
        out.write(f"{report['jobId']} {status}\n")
    return EXIT_OK


def jobs_status(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    report = client.job(arguments.job_id)
    report.pop("result", None) if report["status"] == "FINISHED" else None
    show(report, out)
    return EXIT_OK


def jobs_result(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    return finish(client.job(arguments.job_id), out)


def jobs_wait(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    return finish(watch(client, arguments.job_id, arguments.timeout), out)


def jobs_kill(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    show(client.kill_job(arguments.job_id), out)
    return EXIT_OK


def jobs_config(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    show(client.job_config(arguments.job_id), out)
    return EXIT_OK


# Data files


def data_list(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    files = client.data_files()
    if arguments.json:
        show(files, out)
    else:
        table([(name,) for name in files], ("FILE",), out)
    return EXIT_OK


def data_upload(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    out.write(client.upload_data(arguments.prefix, arguments.file) + "\n")
    return EXIT_OK


def data_delete(client: JobServerClient, arguments: argparse.Namespace, out: TextIO) -> int:
    client.delete_data(arguments.filename)
    out.write(f"deleted {arguments.filename}\n")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="jobserver-cli", description=__doc__.splitlines()[0])
    environment = os.environ.get
    root.add_argument("--url", default=environment("JOBSERVER_URL", DEFAULT_URL))
    root.add_argument("--user", default=environment("JOBSERVER_USER"))
    root.add_argument("--password", default=environment("JOBSERVER_PASSWORD"))
    root.add_argument("--token", default=environment("JOBSERVER_TOKEN"))
    root.add_argument("--json", action="store_true", help="lists as JSON, not tables")
    groups = root.add_subparsers(dest="group", required=True)

    binaries = groups.add_parser("binaries", help="job packages").add_subparsers(dest="action", required=True)
    action(binaries, "list", binaries_list, "list binaries")
    upload = action(binaries, "upload", binaries_upload, "upload a wheel, egg, zip, jar or .py")
    upload.add_argument("name")
    upload.add_argument("file")
    upload.add_argument("--type", help="content type (default: from the file's suffix)")
    action(binaries, "delete", binaries_delete, "delete a binary").add_argument("name")

    contexts = groups.add_parser("contexts", help="Spark contexts").add_subparsers(
        dest="action", required=True
    )
    action(contexts, "list", contexts_list, "running contexts")
    action(contexts, "get", contexts_get, "one context").add_argument("name")
    create = action(contexts, "create", contexts_create, "start a context")
    create.add_argument("name")
    create.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a context setting")
    delete = action(contexts, "delete", contexts_delete, "stop a context")
    delete.add_argument("name")
    delete.add_argument("--force", action="store_true")

    jobs = groups.add_parser("jobs", help="jobs").add_subparsers(dest="action", required=True)
    listing = action(jobs, "list", jobs_list, "jobs, newest first")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--status")
    submit = action(jobs, "submit", jobs_submit, "run a job")
    submit.add_argument("class_path", nargs="?", help="module.Class or module:function")
    submit.add_argument("--app", help="the binary holding the job")
    submit.add_argument("--cp", help="binaries or URIs, comma-separated")
    submit.add_argument("--context", help="a running context (none: ad hoc)")
    submit.add_argument("--conf", help="the job's config as HOCON text")
    submit.add_argument("--config-file", help="the job's config from a file (- for stdin)")
    submit.add_argument("--sql", help="an SQL statement instead of a class")
    submit.add_argument("--sync", action="store_true", help="the server answers when the job ends")
    submit.add_argument("--wait", action="store_true", help="wait for the job's end and print its result")
    submit.add_argument("--timeout", type=int, help="seconds to wait at most")
    for name, command, help_text in (
        ("status", jobs_status, "a job's report"),
        ("result", jobs_result, "a finished job's result"),
        ("kill", jobs_kill, "kill a job"),
        ("config", jobs_config, "the config a job ran with"),
    ):
        action(jobs, name, command, help_text).add_argument("job_id")
    logs = action(jobs, "logs", jobs_logs, "what a job printed or logged")
    logs.add_argument("job_id")
    logs.add_argument("--follow", action="store_true", help="print new lines until the job ends")
    logs.add_argument("--from", dest="start", type=int, help="the first line (from 0)")
    logs.add_argument("--size", type=int, help="at most this many lines (100; the last ones)")
    wait = action(jobs, "wait", jobs_wait, "wait for a job's end and print its result")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=int)

    data = groups.add_parser("data", help="data files").add_subparsers(dest="action", required=True)
    action(data, "list", data_list, "data files")
    data_upload_parser = action(data, "upload", data_upload, "upload a data file")
    data_upload_parser.add_argument("prefix")
    data_upload_parser.add_argument("file")
    action(data, "delete", data_delete, "delete a data file").add_argument("filename")
    add_scheduling_commands(groups)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    client = JobServerClient(
        arguments.url, user=arguments.user, password=arguments.password, token=arguments.token
    )
    command: Command = arguments.command
    try:
        return command(client, arguments, sys.stdout)
    except JobServerError as error:
        sys.stderr.write(f"jobserver-cli: {error}\n")
        return EXIT_SERVER
    except (DocumentError, UsageError) as error:
        sys.stderr.write(f"jobserver-cli: {error}\n")
        return EXIT_USAGE
    except (OSError, TimeoutError) as error:
        sys.stderr.write(f"jobserver-cli: {arguments.url}: {error}\n")
        return EXIT_SERVER


if __name__ == "__main__":
    sys.exit(main())
