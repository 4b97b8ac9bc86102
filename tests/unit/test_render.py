"""The contract's JSON for jobs, contexts and binaries (§1.4, §1.5, §2), and its two date formats."""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from collections.abc import Callable, Iterator

import pytest

from jobserver.common.records import BinaryRecord, BinaryType, ContextRecord, JobRecord
from jobserver.common.states import ContextState, JobState
from jobserver.common.timeformat import instant, job_time
from jobserver.web.render import (
    ADHOC_CONTEXT_NAME,
    binary_info,
    context_info,
    job_report,
    json_response,
    success,
    with_result,
)

UTC = datetime.UTC
START = datetime.datetime(2015, 10, 16, 3, 17, 3, 127_000, tzinfo=UTC)
JOB_TIME_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
INSTANT_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KILLED_ERROR = {
    "message": "Job job-1 killed",
    "errorClass": "spark.jobserver.JobManagerActor$JobKilledException",
    "stack": "",
}

# POSIX zone strings need no tz database; their sign is the opposite of the ISO offset.
UTC_ZONE = "UTC0"
INDIA_ZONE = "IST-5:30"
NEWFOUNDLAND_ZONE = "NST+3:30"


@pytest.fixture
def server_zone() -> Iterator[Callable[[str], None]]:
    """Switch the process's local time zone for one test; restores the previous one afterwards."""
    original = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    try:
        yield use
    finally:
        if original is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = original
        time.tzset()


@pytest.fixture
def utc_server(server_zone: Callable[[str], None]) -> None:
    server_zone(UTC_ZONE)


def job(
    *,
    state: JobState = JobState.RUNNING,
    end_time: datetime.datetime | None = None,
    context_name: str = "reporting",
    error: dict[str, str] | None = None,
) -> JobRecord:
    return JobRecord(
        id="job-1",
        context_id="ctx-1",
        context_name=context_name,
        class_path="example_jobs.word_count.WordCountSparkSessionJob",
        state=state,
        start_time=START,
        end_time=end_time,
        error=error,
    )


def context(**changes: object) -> ContextRecord:
    fields: dict[str, object] = {
        "id": "ctx-1",
        "name": "reporting",
        "config": {},
        "state": ContextState.RUNNING,
        "start_time": START,
    }
    fields.update(changes)
    return ContextRecord(**fields)  # type: ignore[arg-type]


# --- job time ------------------------------------------------------------------------------------


def test_job_time_at_utc_ends_in_z(server_zone: Callable[[str], None]) -> None:
    server_zone(UTC_ZONE)
    assert job_time(START) == "2015-10-16T03:17:03.127Z"


def test_job_time_is_shown_in_the_server_zone_with_its_offset(server_zone: Callable[[str], None]) -> None:
    server_zone(INDIA_ZONE)
    assert job_time(START) == "2015-10-16T08:47:03.127+05:30"


def test_job_time_west_of_utc_has_a_negative_offset(server_zone: Callable[[str], None]) -> None:
    server_zone(NEWFOUNDLAND_ZONE)
    assert job_time(START) == "2015-10-15T23:47:03.127-03:30"


def test_job_time_of_the_contract_example(server_zone: Callable[[str], None]) -> None:
    server_zone(INDIA_ZONE)
    moment = datetime.datetime(2016, 6, 19, 10, 57, 12, 196_000, tzinfo=UTC)
    assert job_time(moment) == "2016-06-19T16:27:12.196+05:30"


@pytest.mark.parametrize("zone", [UTC_ZONE, INDIA_ZONE, NEWFOUNDLAND_ZONE])
def test_job_time_matches_the_contract_pattern(server_zone: Callable[[str], None], zone: str) -> None:
    server_zone(zone)
    assert JOB_TIME_PATTERN.match(job_time(START))


def test_job_time_keeps_milliseconds_and_drops_microseconds(server_zone: Callable[[str], None]) -> None:
    server_zone(UTC_ZONE)
    assert job_time(START.replace(microsecond=5_999)) == "2015-10-16T03:17:03.005Z"
    assert job_time(START.replace(microsecond=0)) == "2015-10-16T03:17:03.000Z"


def test_job_time_of_the_same_instant_in_another_zone_is_the_same(server_zone: Callable[[str], None]) -> None:
    server_zone(UTC_ZONE)
    in_india = START.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    assert job_time(in_india) == "2015-10-16T03:17:03.127Z"


# --- instant -------------------------------------------------------------------------------------


def test_instant_is_utc_with_z_and_three_fraction_digits() -> None:
    assert instant(datetime.datetime(2013, 5, 29, tzinfo=UTC)) == "2013-05-29T00:00:00.000Z"
    assert instant(START) == "2015-10-16T03:17:03.127Z"


def test_instant_stays_utc_whatever_the_server_zone(server_zone: Callable[[str], None]) -> None:
    server_zone(INDIA_ZONE)
    assert instant(START) == "2015-10-16T03:17:03.127Z"
    in_india = START.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    assert instant(in_india) == "2015-10-16T03:17:03.127Z"
    assert INSTANT_PATTERN.match(instant(in_india))


def test_instant_drops_microseconds() -> None:
    assert instant(START.replace(microsecond=999_999)) == "2015-10-16T03:17:03.999Z"


# --- job report ----------------------------------------------------------------------------------


def test_running_job_report_has_the_contract_keys_and_values(utc_server: None) -> None:
    assert job_report(job()) == {
        "jobId": "job-1",
        "startTime": "2015-10-16T03:17:03.127Z",
        "classPath": "example_jobs.word_count.WordCountSparkSessionJob",
        "context": "reporting",
        "contextId": "ctx-1",
        "duration": "Job not done yet",
        "status": "RUNNING",
    }


def test_job_report_start_time_is_in_the_server_zone(server_zone: Callable[[str], None]) -> None:
    server_zone(INDIA_ZONE)
    assert job_report(job())["startTime"] == "2015-10-16T08:47:03.127+05:30"


@pytest.mark.parametrize(
    ("elapsed", "duration"),
    [
        (datetime.timedelta(seconds=300), "300.0 secs"),
        (datetime.timedelta(seconds=6, milliseconds=341), "6.341 secs"),
        (datetime.timedelta(milliseconds=1), "0.001 secs"),
        (datetime.timedelta(0), "0.0 secs"),
        (datetime.timedelta(microseconds=400), "0.0 secs"),
        (datetime.timedelta(hours=1, milliseconds=500), "3600.5 secs"),
    ],
)
def test_finished_job_duration_is_seconds_like_a_jvm_double(
    elapsed: datetime.timedelta, duration: str
) -> None:
    finished = job(state=JobState.FINISHED, end_time=START + elapsed)
    assert job_report(finished)["duration"] == duration


def test_duration_of_ten_million_seconds_is_in_jvm_e_notation() -> None:
    finished = job(state=JobState.FINISHED, end_time=START + datetime.timedelta(seconds=10_000_000))
    assert job_report(finished)["duration"] == "1.0E7 secs"


def test_job_without_a_context_name_reports_the_ad_hoc_marker() -> None:
    assert job_report(job(context_name=""))["context"] == "<<ad-hoc>>" == ADHOC_CONTEXT_NAME


def test_status_can_be_forced_for_the_async_start_reply() -> None:
    assert job_report(job(), status="STARTED")["status"] == "STARTED"


@pytest.mark.parametrize("state", [JobState.ERROR, JobState.KILLED])
def test_failed_job_report_carries_its_error_map_as_result(state: JobState) -> None:
    report = job_report(job(state=state, end_time=START, error=KILLED_ERROR))
    assert report["result"] == KILLED_ERROR
    assert report["status"] == state.value


@pytest.mark.parametrize(
    "state", [JobState.STARTED, JobState.RUNNING, JobState.RESTARTING, JobState.FINISHED]
)
def test_job_report_in_other_states_has_no_result_even_with_an_error(state: JobState) -> None:
    assert "result" not in job_report(job(state=state, error=KILLED_ERROR))


def test_failed_job_without_an_error_map_has_no_result() -> None:
    assert "result" not in job_report(job(state=JobState.ERROR, end_time=START))


def test_job_report_error_is_a_copy_of_the_record_error() -> None:
    record = job(state=JobState.ERROR, end_time=START, error=dict(KILLED_ERROR))
    report = job_report(record)
    report["result"]["message"] = "changed"
    assert record.error is not None
    assert record.error["message"] == KILLED_ERROR["message"]


# --- result splicing -----------------------------------------------------------------------------


def test_result_is_spliced_into_the_document() -> None:
    body = with_result({"jobId": "job-1"}, b'{"a":2,"b":2,"c":1,"see":1}')
    assert json.loads(body) == {"jobId": "job-1", "result": {"a": 2, "b": 2, "c": 1, "see": 1}}


def test_result_bytes_are_copied_exactly_not_re_encoded() -> None:
    result = '[1, 2.50, "\u00e9", {"k" : null}]'.encode()
    body = with_result({"jobId": "job-1", "status": "FINISHED"}, result)
    assert body == b'{"jobId":"job-1","status":"FINISHED","result":' + result + b"}"
    assert json.loads(body)["result"] == [1, 2.5, "\u00e9", {"k": None}]


def test_result_spliced_into_an_empty_document_is_the_only_key() -> None:
    body = with_result({}, b"[]")
    assert body == b'{"result":[]}'
    assert json.loads(body) == {"result": []}


@pytest.mark.parametrize("result", [b'"text"', b"42", b"null", b"true", b"{}", b'{"nested":{"x":[1]}}'])
def test_any_json_value_can_be_spliced(result: bytes) -> None:
    assert json.loads(with_result({"jobId": "j"}, result)) == {"jobId": "j", "result": json.loads(result)}


def test_full_job_report_with_result_parses_as_json(utc_server: None) -> None:
    finished = job(state=JobState.FINISHED, end_time=START + datetime.timedelta(seconds=2))
    parsed = json.loads(with_result(job_report(finished), b'{"a":1}'))
    assert parsed["result"] == {"a": 1}
    assert parsed["duration"] == "2.0 secs"
    assert parsed["status"] == "FINISHED"


def test_without_a_result_the_document_is_just_serialised() -> None:
    assert with_result({"jobId": "j"}, None) == b'{"jobId":"j"}'
    assert with_result({}, None) == b"{}"


# --- contexts and binaries -----------------------------------------------------------------------


def test_running_context_info_has_empty_end_time() -> None:
    assert context_info(context()) == {
        "id": "ctx-1",
        "name": "reporting",
        "startTime": "2015-10-16T03:17:03.127Z",
        "endTime": "Empty",
        "state": "RUNNING",
    }


def test_ended_context_info_has_its_end_time_as_a_utc_instant(server_zone: Callable[[str], None]) -> None:
    server_zone(INDIA_ZONE)
    ended = context(state=ContextState.FINISHED, end_time=START + datetime.timedelta(minutes=5))
    info = context_info(ended)
    assert info["endTime"] == "2015-10-16T03:22:03.127Z"
    assert info["startTime"] == "2015-10-16T03:17:03.127Z"
    assert info["state"] == "FINISHED"


def test_context_info_names_the_spark_application_and_its_ui_when_known() -> None:
    info = context_info(context(application_id="app-20240101-0001", web_ui_url="http://driver:4040"))
    assert info["applicationId"] == "app-20240101-0001"
    assert info["url"] == "http://driver:4040"


def test_context_info_without_a_ui_has_no_url() -> None:
    info = context_info(context(application_id="local-1700000000000"))
    assert info["applicationId"] == "local-1700000000000"
    assert "url" not in info


def test_failed_context_info_carries_its_error() -> None:
    failed = context(state=ContextState.ERROR, end_time=START, error="Context failed to connect back")
    assert context_info(failed)["error"] == "Context failed to connect back"


def test_binary_info_has_type_and_upload_instant(server_zone: Callable[[str], None]) -> None:
    server_zone(INDIA_ZONE)
    binary = BinaryRecord(
        id=1,
        app_name="sjs-examples",
        binary_type=BinaryType.WHEEL,
        upload_time=START,
        sha256="ab",
        size_bytes=9,
    )
    assert binary_info(binary) == {"binary-type": "Wheel", "upload-time": "2015-10-16T03:17:03.127Z"}


@pytest.mark.parametrize("binary_type", list(BinaryType))
def test_binary_info_type_is_the_contract_label(binary_type: BinaryType) -> None:
    binary = BinaryRecord(
        id=1, app_name="a", binary_type=binary_type, upload_time=START, sha256="ab", size_bytes=1
    )
    # the contract's labels, and ours for a single Python module (README, Differences)
    assert binary_info(binary)["binary-type"] in {"Jar", "Egg", "Wheel", "Uri", "Python"}
    assert INSTANT_PATTERN.match(binary_info(binary)["upload-time"])


# --- envelopes -----------------------------------------------------------------------------------


def test_success_envelope_with_and_without_a_message() -> None:
    assert success("Context stopped").body == b'{"status":"SUCCESS","result":"Context stopped"}'
    assert success().body == b'{"status":"SUCCESS"}'
    assert success(status=201).status == 201


def test_json_response_is_compact_json_with_its_status_and_headers() -> None:
    response = json_response({"a": [1, 2]}, 202, {"Location": "/contexts/x"})
    assert response.body == b'{"a":[1,2]}'
    assert response.status == 202
    assert response.content_type == "application/json"
    assert response.headers["Location"] == "/contexts/x"
