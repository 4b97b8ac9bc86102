"""The REST contract where no Spark is needed: binaries (single Python modules too), data files,
envelopes, CORS, _method, a context's jars refused before any launch."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support import EXAMPLES_EGG, EXAMPLES_WHEEL, Api, running_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ZIP = b"PK\x03\x04" + b"\0" * 60


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("http-contract")
    overrides = {
        "spark.jobserver.max-upload-size": "1m",
        "spark.jobserver.cors.allowed-origins": ["https://ui.example"],
    }
    async with running_server(work_dir, overrides) as api:
        yield api


async def test_uploaded_binaries_are_listed_with_type_and_upload_time(api: Api) -> None:
    await api.upload("wheel-app", EXAMPLES_WHEEL, "application/python-wheel")
    await api.upload("egg-app", EXAMPLES_EGG, "application/python-egg")
    await api.upload("legacy-egg", EXAMPLES_EGG, "application/python-archive")
    await api.upload("jar-app", EXAMPLES_WHEEL, "application/java-archive")
    status, binaries, _ = await api.call("GET", "/binaries")
    assert status == 200
    assert {name: info["binary-type"] for name, info in binaries.items()}.items() >= {
        "wheel-app": "Wheel",
        "egg-app": "Egg",
        "legacy-egg": "Egg",
        "jar-app": "Jar",
    }.items()
    assert all(INSTANT.match(info["upload-time"]) for info in binaries.values())
    status, one, _ = await api.call("GET", "/binaries/wheel-app")
    assert status == 200
    assert set(one) == {"app-name", "binary-type", "upload-time"}
    assert (one["app-name"], one["binary-type"]) == ("wheel-app", "Wheel")


async def test_reuploading_a_binary_makes_a_strictly_later_version(api: Api) -> None:
    await api.upload("versioned")
    first = (await api.call("GET", "/binaries/versioned"))[1]["upload-time"]
    await api.upload("versioned")
    second = (await api.call("GET", "/binaries/versioned"))[1]["upload-time"]
    assert second > first


async def test_binary_uploads_are_checked(api: Api) -> None:
    status, body, _ = await api.call("POST", "/binaries/x", data=ZIP)
    assert status == 415
    assert body["status"] == "ERROR" and body["result"].startswith("Unsupported binary type")
    status, body, _ = await api.call(
        "POST", "/binaries/x", data=ZIP, headers={"Content-Type": "application/json"}
    )
    assert (status, body) == (415, {"status": "ERROR", "result": "Unsupported binary type application/json"})
    headers = {"Content-Type": "application/java-archive"}
    status, body, _ = await api.call("POST", "/binaries/x", data=b"not a zip at all", headers=headers)
    assert (status, body) == (400, {"status": "ERROR", "result": "Binary is not of the right format"})
    status, body, _ = await api.call("POST", "/binaries/x", data=ZIP + b"\0" * (1024 * 1024), headers=headers)
    assert status == 413
    assert (await api.call("GET", "/binaries/x"))[0] == 404


async def test_a_single_python_module_uploads_as_a_python_binary(api: Api) -> None:
    source = b"def main(spark, config):\n    return 'hello'\n"
    for name, media_type in (("lonely", "text/x-python"), ("lonely.py", "text/x-python; charset=utf-8")):
        status, body, _ = await api.call(
            "POST", f"/binaries/{name}", data=source, headers={"Content-Type": media_type}
        )
        assert (status, body) == (201, {"status": "SUCCESS"})
    status, binaries, _ = await api.call("GET", "/binaries")
    assert binaries["lonely"]["binary-type"] == binaries["lonely.py"]["binary-type"] == "Python"


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("broken", b"def main(spark, config)\n    return 1\n", "Binary is not of the right format: line 1: "),
        ("latin", "x = 'caf\u00e9'\n".encode("latin-1"), "Binary is not of the right format: not UTF-8 text"),
        ("nul", b"x = 1\0\n", "Binary is not of the right format: "),
        ("my-job", b"x = 1\n", "a text/x-python binary is imported by its name: 'my-job' is not a Python"),
        ("class", b"x = 1\n", "a text/x-python binary is imported by its name: 'class' is not a Python"),
        ("random", b"x = 1\n", "a text/x-python binary is imported by its name: 'random' is not a Python"),
        ("pyspark.py", b"x = 1\n", "a text/x-python binary is imported by its name: 'pyspark.py' is not"),
    ],
)
async def test_a_python_module_must_compile_and_be_named_as_a_module(
    api: Api, name: str, source: bytes, message: str
) -> None:
    headers = {"Content-Type": "text/x-python"}
    status, body, _ = await api.call("POST", f"/binaries/{name}", data=source, headers=headers)
    assert status == 400 and body["status"] == "ERROR", body
    assert body["result"].startswith(message), body
    assert (await api.call("GET", f"/binaries/{name}"))[0] == 404


async def test_the_server_answers_others_while_a_big_module_compiles(api: Api) -> None:
    # A list literal of 900 kB takes the compiler seconds, holding the interpreter's lock: it is
    # compiled in a child process, and the server answers other requests meanwhile. Compared
    # with the upload's own time, so the machine's speed does not matter.
    source = b"x = [" + b"1," * 450_000 + b"]\n"
    headers = {"Content-Type": "text/x-python"}
    started = time.monotonic()
    upload = asyncio.ensure_future(api.call("POST", "/binaries/big_module", data=source, headers=headers))
    slowest_health_s = 0.0
    while not upload.done():
        asked = time.monotonic()
        assert (await api.call("GET", "/healthz"))[0] == 200
        slowest_health_s = max(slowest_health_s, time.monotonic() - asked)
    upload_s = time.monotonic() - started
    assert (await upload)[0] == 201
    assert slowest_health_s < upload_s / 3, (slowest_health_s, upload_s)


async def test_a_context_naming_a_binary_that_is_no_uploaded_jar_is_refused_before_it_starts(
    api: Api,
) -> None:
    await api.upload("a-wheel")
    status, body, _ = await api.call("POST", "/contexts/jarless?dependent-jar-uris=nobody-uploaded-this")
    assert (status, body) == (404, {"status": "ERROR", "result": "appName nobody-uploaded-this not found"})
    status, body, _ = await api.call("POST", "/contexts/jarless?cp=a-wheel")
    assert (status, body) == (
        400,
        {"status": "ERROR", "result": "binary a-wheel is a Wheel, not a jar: a context's jars are jars"},
    )
    assert (await api.call("GET", "/contexts/jarless"))[0] == 404  # nothing was launched or stored


async def test_unknown_binaries_are_404_and_deleted_ones_disappear(api: Api) -> None:
    status, body, _ = await api.call("GET", "/binaries/nonexisting")
    assert (status, body) == (404, {"status": "ERROR", "result": "Can't find binary with name nonexisting"})
    status, body, _ = await api.call("DELETE", "/binaries/nonexisting")
    assert (status, body) == (404, {"status": "ERROR", "result": "can't find binary with name nonexisting"})
    await api.upload("doomed")
    status, body, _ = await api.call("DELETE", "/binaries/doomed")
    assert (status, body) == (200, {"status": "SUCCESS"})
    assert "doomed" not in (await api.call("GET", "/binaries"))[1]
    assert (await api.call("GET", "/binaries/doomed"))[0] == 404


async def test_data_files_are_stored_listed_and_deleted_inside_the_data_folder(api: Api) -> None:
    status, body, _ = await api.call("POST", "/data/input.txt", data=b"a b c a b see")
    assert status == 200
    assert set(body) == {"result"}
    stored = body["result"]["filename"]
    data_dir = api.settings.data_dir
    assert Path(stored).parent == data_dir
    assert re.match(
        r"^input\.txt-\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d\.\d{3}(Z|[+-]\d\d_\d\d)\.dat$", Path(stored).name
    )
    assert Path(stored).read_bytes() == b"a b c a b see"
    assert stored in (await api.call("GET", "/data"))[1]

    encoded = stored.replace("/", "%2F")
    status, body, _ = await api.call("DELETE", f"/data/{encoded}")
    assert (status, body) == (200, {"status": "SUCCESS"})
    assert not Path(stored).exists()
    status, body, _ = await api.call("DELETE", f"/data/{encoded}")
    assert (status, body) == (400, {"status": "ERROR", "result": f"Unable to delete data file '{stored}'."})


async def test_hostile_data_file_names_cannot_escape_the_data_folder(api: Api, tmp_path: Path) -> None:
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    data_dir = api.settings.data_dir
    for prefix in ("%2E%2E", "..%2F..%2Fescape", "%2Ftmp%2FfileToRemove"):
        status, body, _ = await api.call("POST", f"/data/{prefix}", data=b"x")
        if status == 200:
            assert Path(body["result"]["filename"]).parent == data_dir
        else:  # refused by us (400), or normalised away by the router: /data/.. is /, the console's
            assert status in (400, 404, 405), body  # page, which takes only GET
    encoded = str(outside).replace("/", "%2F")
    status, body, _ = await api.call("DELETE", f"/data/{encoded}")
    assert status == 400
    status, body, _ = await api.call("DELETE", "/data/..%2F..%2F" + outside.name)
    assert status == 400
    assert outside.read_text() == "keep me"
    assert all(Path(name).parent == data_dir for name in (await api.call("GET", "/data"))[1])


async def test_data_reset_empties_the_data_folder(api: Api) -> None:
    await api.call("POST", "/data/reset-me", data=b"x")
    status, body, _ = await api.call("PUT", "/data?reset=reboot")
    assert (status, body) == (200, {"status": "SUCCESS", "result": "Data reset"})
    assert (await api.call("GET", "/data"))[1] == []


async def test_health_and_unknown_routes(api: Api) -> None:
    assert (await api.call("GET", "/healthz"))[:2] == (200, {"status": "SUCCESS"})
    assert (await api.call("GET", "/nowhere"))[0] == 404
    assert (await api.call("PATCH", "/binaries"))[0] == 405


async def test_method_override_reroutes_a_post_and_nothing_else(api: Api) -> None:
    await api.upload("overridden")
    # A GET (an <img> tag on any page sends one) is never turned into a DELETE.
    status, body, _ = await api.call("GET", "/binaries/overridden?_method=DELETE")
    assert (status, body["app-name"]) == (200, "overridden")
    status, body, _ = await api.call("POST", "/binaries/overridden?_method=DELETE")
    assert (status, body) == (200, {"status": "SUCCESS"})
    assert (await api.call("GET", "/binaries/overridden"))[0] == 404
    assert (await api.call("POST", "/binaries/overridden?_method=FROB"))[0] == 501


async def test_cors_answers_the_allowed_origins_only(api: Api) -> None:
    status, _, response = await api.call("GET", "/binaries", headers={"Origin": "https://ui.example"})
    assert status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "DELETE"}
    status, _, response = await api.call("OPTIONS", "/jobs/some-id", headers=preflight)
    assert status == 200
    assert "DELETE" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Max-Age"] == "1800"
    status, _, response = await api.call("GET", "/binaries")
    assert "Access-Control-Allow-Origin" not in response.headers
    # errors too, so that a browser client can read the contract's envelope
    cross_origin = {"Origin": "https://ui.example"}
    status, body, response = await api.call("GET", "/jobs/unknown-id", headers=cross_origin)
    assert (status, body["status"]) == (404, "ERROR")
    assert response.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    status, _, response = await api.call("POST", "/binaries/x?_method=FROB", headers=cross_origin)
    assert status == 501 and response.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    # Any other site's page gets no CORS headers: its browser lets it read nothing.
    stranger = {"Origin": "https://evil.example"}
    status, _, response = await api.call("GET", "/binaries", headers=stranger)
    assert status == 200 and "Access-Control-Allow-Origin" not in response.headers
    preflight = {**stranger, "Access-Control-Request-Method": "DELETE"}
    status, _, response = await api.call("OPTIONS", "/jobs/some-id", headers=preflight)
    assert not [header for header in response.headers if header.startswith("Access-Control-")]


async def test_context_errors_without_any_driver(api: Api) -> None:
    assert (await api.call("GET", "/contexts"))[:2] == (200, [])
    status, body, _ = await api.call("DELETE", "/contexts/ghost")
    assert (status, body) == (404, {"status": "ERROR", "result": "context ghost not found"})
    status, body, _ = await api.call("POST", "/contexts/ok", data="{ not hocon")
    assert status == 400 and body["result"].startswith("Cannot parse config")
    status, body, _ = await api.call("PUT", "/contexts")
    assert status == 404


async def test_bad_input_is_a_400_in_the_contracts_envelope(api: Api) -> None:
    cases = [
        ("GET", "/jobs?limit=99999999999999999999", None, {}),
        ("GET", "/jobs?limit=-1", None, {}),
        ("POST", "/jobs?appName=x&classPath=y&timeout=1e9", None, {}),
        ("POST", "/contexts/ok", b"\xff\xfe not utf-8", {}),
        ("POST", "/contexts/ok", b"a = 1", {"Content-Type": "text/plain; charset=no-such-charset"}),
        ("POST", "/contexts/ok", '{"a": ' * 5000 + "1" + "}" * 5000, {}),
        ("POST", "/contexts/ok", '{"n": 1e999999}', {}),
        ("POST", "/contexts/ok", 'include file("/etc/os-release")', {}),
        ("GET", "/binaries/bad%00name", None, {}),
        ("POST", "/contexts/a..%2F..%2Fetc", None, {}),
        ("POST", "/contexts/" + "c" * 200, None, {}),
        ("POST", "/contexts/spaced%20name", None, {}),
    ]
    for method, path, data, headers in cases:
        status, body, _ = await api.call(method, path, data=data, headers=headers)
        assert (status, body["status"]) == (400, "ERROR"), (path, status, body)
    status, body, _ = await api.call("POST", "/contexts/ok", data=b"a = " + b"x" * (5 * 1024 * 1024))
    assert (status, body["status"]) == (413, "ERROR")


async def test_context_settings_a_client_may_not_set_are_a_403_naming_the_key(api: Api) -> None:
    await api.upload("any")
    for path, data in [
        ("/contexts/sneaky?launcher.spark.master=yarn", None),
        ("/contexts/sneaky", '{"spark.context-settings": {"spark.executorEnv.LD_PRELOAD": "/tmp/x.so"}}'),
        ("/jobs?appName=any&classPath=a.B&spark.proxy.user=hdfs", None),
    ]:
        status, body, _ = await api.call("POST", path, data=data)
        assert status == 403, (path, body)
        assert body["status"] == "ERROR" and "may not be set by clients" in body["result"]
    assert (await api.call("GET", "/contexts/sneaky"))[0] == 404  # never started
