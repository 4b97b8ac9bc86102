"""The wire protocol between server and drivers: round trips, and every way a frame can be wrong."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from driver.protocol import (
    FAILURE_ERROR,
    FAILURE_KINDS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    BlobData,
    CheckSession,
    ContextInitFailed,
    ContextReady,
    DriverHeartbeat,
    DriverStopping,
    FetchBlob,
    FetchDataFile,
    Hello,
    JobFailed,
    JobFinished,
    JobKilled,
    JobLog,
    JobPackage,
    JobProgress,
    JobReportAck,
    JobResultChunk,
    JobResultChunkAck,
    JobResultSize,
    JobStarted,
    KillJob,
    Message,
    NamedObjectsChanged,
    ProtocolError,
    Reintroduce,
    Rejected,
    Rejoin,
    ResultLimit,
    ServerEndpoints,
    ServerHeartbeat,
    SessionChecked,
    StartJob,
    StopContext,
    Welcome,
    decode,
    describe_exception,
    encode,
    error_map,
    package_fields,
)

WHEEL_PACKAGE = JobPackage(name="app", sha256="ab" * 32, binary_type="Wheel", location="/w/app.whl")
URI_PACKAGE = JobPackage(name="file:///x.egg", sha256="", binary_type="Uri", location="file:///x.egg")
SAMPLE_ERROR = {"message": "boom", "errorClass": "ValueError", "stack": "Traceback …\nValueError: boom\n"}

# One message of every type, with values that exercise the encoding: non-ASCII text, bytes that
# are not UTF-8, None, floats, empty and nested collections.
SAMPLES: dict[str, Message] = {
    "hello": Hello(context_id="9f1c-ctx", token="t0k3n/+=", pid=4242, pgid=4240, host="gateway-1"),
    "rejoin": Rejoin(
        context_id="9f1c-ctx",
        token="t0k3n/+=",
        pid=4242,
        pgid=4240,
        host="gateway-1",
        running_job_ids=["job-1"],
        held_job_ids=[],
        application_id="local-1700000000000",
        web_ui_url=None,
    ),
    "reintroduce": Reintroduce(),
    "server_endpoints": ServerEndpoints(endpoints=["tcp://a:1", "tcp://b:2"]),
    "job_report_ack": JobReportAck(job_id="job-1"),
    "result_limit": ResultLimit(max_result_bytes=1 << 30),
    "context_ready": ContextReady(
        application_id="local-1700000000000", web_ui_url=None, spark_version="4.0.1"
    ),
    "context_init_failed": ContextInitFailed(error=SAMPLE_ERROR),
    "job_started": JobStarted(job_id="job-1"),
    "job_result_chunk": JobResultChunk(job_id="job-1", data=b"\x00\xff[1,2,"),
    "job_result_chunk_ack": JobResultChunkAck(job_id="job-1", received_bytes=2 << 20),
    "job_result_size": JobResultSize(job_id="job-1", result_bytes=3 << 20),
    "job_finished": JobFinished(job_id="job-1", result='{"wörd":1}'.encode()),
    "job_failed": JobFailed(job_id="job-1", kind=FAILURE_ERROR, error=SAMPLE_ERROR),
    "job_killed": JobKilled(job_id="job-1"),
    "job_log": JobLog(job_id="job-1", first_line=3, lines=["printed", "logged: ünïcode"]),
    "job_progress": JobProgress(
        job_id="job-1",
        progress={
            "jobs": {"total": 1, "active": 1, "completed": 0, "failed": 0},
            "stages": {"total": 2, "active": 1, "completed": 1, "failed": 0},
            "tasks": {"total": 8, "active": 2, "completed": 5, "failed": 0},
        },
    ),
    "driver_heartbeat": DriverHeartbeat(running_job_ids=["job-1", "job-2"]),
    "driver_stopping": DriverStopping(reason="server silent for 120.0 s"),
    "fetch_blob": FetchBlob(request_id="r-1", sha256="ab" * 32),
    "fetch_data_file": FetchDataFile(request_id="r-2", name="/data/wörds.txt-2026.dat"),
    "named_objects_changed": NamedObjectsChanged(
        objects=[{"name": "people", "type": "DataFrame", "storageLevel": "MEMORY_AND_DISK"}]
    ),
    "blob_data": BlobData(request_id="r-1", data=b"PK\x03\x04\xff", last=True, error=""),
    "welcome": Welcome(
        heartbeat_interval_s=0.5,
        server_silence_grace_s=120.0,
        max_jobs=8,
        result_chunk_bytes=1 << 20,
        context_config_json=b'{"context-factory":"x"}',
        server_config_json=b'{"spark":{"master":"local[2]"}}',
    ),
    "rejected": Rejected(reason="unknown token"),
    "start_job": StartJob(
        job_id="job-1",
        main_class="example_jobs.word_count.WordCountSparkSessionJob",
        packages=[package_fields(WHEEL_PACKAGE), package_fields(URI_PACKAGE)],
        config_json=b'{"input":{"strings":["a","b"]}}',
        validate_before_start=True,
    ),
    "kill_job": KillJob(job_id="job-1"),
    "stop_context": StopContext(),
    "server_heartbeat": ServerHeartbeat(),
    "check_session": CheckSession(),
    "session_checked": SessionChecked(changed=True, changes=["temporary views"]),
}


def frame(version: object, type_name: object, fields: object) -> bytes:
    return msgpack.packb([version, type_name, fields], use_bin_type=True)


def hello_fields() -> dict[str, object]:
    return {"context_id": "c", "token": "t", "pid": 1}


class CustomJobError(RuntimeError):
    pass


def test_samples_cover_every_message_type() -> None:
    assert set(SAMPLES) == set(MESSAGE_TYPES)
    for type_name, message in SAMPLES.items():
        assert type(message) is MESSAGE_TYPES[type_name]


def test_every_message_type_name_is_its_registry_key() -> None:
    for type_name, cls in MESSAGE_TYPES.items():
        assert type_name == cls.TYPE


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_message_round_trips_unchanged(type_name: str) -> None:
    message = SAMPLES[type_name]
    decoded = decode(encode(message))
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("type_name", sorted(set(SAMPLES) - {"job_result_chunk"}))
def test_field_types_survive_the_round_trip(type_name: str) -> None:
    message = SAMPLES[type_name]
    decoded = decode(encode(message))
    for field in dataclasses.fields(message):
        assert type(getattr(decoded, field.name)) is type(getattr(message, field.name)), field.name


def test_bytes_fields_stay_bytes_even_when_they_are_not_utf8() -> None:
    decoded = decode(encode(BlobData(request_id="r", data=b"\xff\xfe\x00", last=True, error="")))
    assert isinstance(decoded, BlobData)
    assert decoded.data == b"\xff\xfe\x00"
    assert isinstance(decoded.data, bytes)


def test_a_result_chunk_decodes_as_a_view_of_its_frame_not_a_copy() -> None:
    part = bytes(range(256)) * 4096  # 1 MiB, not UTF-8
    frame = bytearray(encode(JobResultChunk(job_id="j", data=memoryview(part)[:-1])))
    decoded = decode(memoryview(frame))
    assert isinstance(decoded, JobResultChunk)
    assert decoded.job_id == "j" and decoded.data == part[:-1]
    frame[-1] ^= 0xFF  # the frame changes: so does the chunk, which is the frame's own bytes
    assert isinstance(decoded.data, memoryview) and decoded.data[-1] == part[-2] ^ 0xFF


@pytest.mark.parametrize("cut", [1, 3, 6])
def test_a_result_chunk_frame_cut_short_is_a_protocol_error(cut: int) -> None:
    data = b"[1,2,3]"
    whole = encode(JobResultChunk(job_id="job-1", data=data))
    header_end = len(whole) - len(data)
    with pytest.raises(ProtocolError):
        decode(whole[: header_end - cut])


def test_only_a_message_with_a_bulk_field_may_come_in_a_bulk_frame() -> None:
    header = frame(PROTOCOL_VERSION, "job_started", {"job_id": "j"})
    with pytest.raises(ProtocolError, match="no bulk field"):
        decode(b"\xc1" + len(header).to_bytes(4, "big") + header + b"data")


def test_heartbeat_without_running_jobs_round_trips_with_an_empty_list() -> None:
    assert decode(encode(DriverHeartbeat())) == DriverHeartbeat(running_job_ids=[])


def test_job_packages_rebuild_from_their_fields_in_cp_order() -> None:
    decoded = decode(encode(SAMPLES["start_job"]))
    assert isinstance(decoded, StartJob)
    assert [JobPackage(**fields) for fields in decoded.packages] == [WHEEL_PACKAGE, URI_PACKAGE]


def test_frame_is_a_msgpack_array_of_version_type_and_field_map() -> None:
    raw = msgpack.unpackb(encode(Hello(context_id="c", token="t", pid=7, pgid=6, host="h")), raw=False)
    assert raw == [
        PROTOCOL_VERSION,
        "hello",
        {"context_id": "c", "token": "t", "pid": 7, "pgid": 6, "host": "h"},
    ]


def test_unknown_message_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 'launch_missiles'"):
        decode(frame(PROTOCOL_VERSION, "launch_missiles", {}))


def test_message_type_that_is_not_a_string_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode(frame(PROTOCOL_VERSION, ["hello"], hello_fields()))


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, "1", None])
def test_other_protocol_version_is_a_protocol_error(version: object) -> None:
    with pytest.raises(ProtocolError, match="unsupported protocol version"):
        decode(frame(version, "hello", hello_fields()))


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"\x05",  # a bare integer
        b"GET / HTTP/1.1\r\n\r\n",
        msgpack.packb([PROTOCOL_VERSION, "hello"]),  # two elements
        msgpack.packb([PROTOCOL_VERSION, "hello", {}, "extra"]),  # four elements
        msgpack.packb([PROTOCOL_VERSION, "hello", hello_fields()]) + b"\x00",  # trailing bytes
        msgpack.packb([PROTOCOL_VERSION, "hello", {1: "x"}]),  # non-string field name
        msgpack.packb([PROTOCOL_VERSION, "hello", hello_fields()])[:-3],  # truncated
    ],
    ids=["empty", "reserved-byte", "integer", "http", "short", "long", "trailing", "int-key", "truncated"],
)
def test_garbage_bytes_are_a_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(garbage)


@pytest.mark.parametrize("fields", [["c", "t", 1], "c", None, 3], ids=["list", "string", "nil", "integer"])
def test_fields_that_are_not_a_map_are_a_protocol_error(fields: object) -> None:
    with pytest.raises(ProtocolError, match="has no field map"):
        decode(frame(PROTOCOL_VERSION, "hello", fields))


def test_missing_field_is_a_protocol_error() -> None:
    fields = hello_fields()
    del fields["token"]
    with pytest.raises(ProtocolError, match="wrong fields"):
        decode(frame(PROTOCOL_VERSION, "hello", fields))


def test_extra_field_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="wrong fields"):
        decode(frame(PROTOCOL_VERSION, "hello", {**hello_fields(), "admin": True}))


def test_class_constant_passed_as_a_field_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode(frame(PROTOCOL_VERSION, "hello", {**hello_fields(), "TYPE": "welcome"}))


def test_field_map_of_a_message_without_fields_must_be_empty() -> None:
    assert decode(frame(PROTOCOL_VERSION, "stop_context", {})) == StopContext()
    with pytest.raises(ProtocolError):
        decode(frame(PROTOCOL_VERSION, "stop_context", {"now": True}))


def test_decoded_messages_are_frozen() -> None:
    decoded = decode(encode(JobKilled(job_id="j")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.job_id = "other"  # type: ignore[attr-defined]


def test_failure_kinds_are_distinct_strings() -> None:
    assert FAILURE_ERROR in FAILURE_KINDS
    assert all(isinstance(kind, str) and kind for kind in FAILURE_KINDS)
    assert len(FAILURE_KINDS) == 6


def test_error_map_has_the_contract_keys() -> None:
    assert error_map("m") == {"message": "m", "errorClass": "", "stack": ""}
    assert error_map("m", "C", "s") == {"message": "m", "errorClass": "C", "stack": "s"}


def test_builtin_exception_is_described_by_its_short_name() -> None:
    try:
        raise ValueError("Deliberate failure")
    except ValueError as error:
        described = describe_exception(error)
    assert set(described) == {"message", "errorClass", "stack"}
    assert described["message"] == "Deliberate failure"
    assert described["errorClass"] == "ValueError"


def test_other_exception_is_described_by_its_module_qualified_name() -> None:
    try:
        raise CustomJobError("custom")
    except CustomJobError as error:
        described = describe_exception(error)
    assert described["message"] == "custom"
    assert described["errorClass"] == f"{__name__}.CustomJobError"


def test_library_exception_is_described_by_its_module_qualified_name() -> None:
    try:
        decode(b"")
    except ProtocolError as error:
        described = describe_exception(error)
    assert described["errorClass"] == "driver.protocol.ProtocolError"


def test_exception_stack_contains_the_traceback() -> None:
    def fail_deep_inside() -> None:
        raise KeyError("missing")

    try:
        fail_deep_inside()
    except KeyError as error:
        described = describe_exception(error)
    stack = described["stack"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "fail_deep_inside" in stack
    assert stack.rstrip().endswith("KeyError: 'missing'")


def test_chained_exception_stack_shows_the_cause() -> None:
    try:
        try:
            raise OSError("disk gone")
        except OSError as cause:
            raise RuntimeError("job failed") from cause
    except RuntimeError as error:
        described = describe_exception(error)
    assert "OSError: disk gone" in described["stack"]
    assert "RuntimeError: job failed" in described["stack"]


def test_exception_description_travels_in_a_job_failed_message() -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        message = JobFailed(job_id="j", kind=FAILURE_ERROR, error=describe_exception(error))
    decoded = decode(encode(message))
    assert isinstance(decoded, JobFailed)
    assert decoded.error["errorClass"] == "ZeroDivisionError"
    assert "Traceback" in decoded.error["stack"]
