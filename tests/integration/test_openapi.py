"""The API's description: every route the application registers is in /openapi.json, the page
at /docs shows each, both are open with authentication on, and answers that break a schema fail
(every test's answers go through tests/openapi_answers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from jobserver.common.config import load_settings
from jobserver.web.app import create_app
from jobserver.web.openapi import SCHEMAS, document
from tests.openapi_answers import check_answer
from tests.support import FAKE_SPARK_HOMES, running_server

LIGHT = {"spark.home": str(FAKE_SPARK_HOMES / "light")}


def registered_routes(work_dir: Path) -> set[tuple[str, str]]:
    app = create_app(load_settings(None, {"spark.jobserver.work-dir": str(work_dir)}))
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


async def test_every_registered_route_is_described(tmp_path: Path) -> None:
    async with running_server(tmp_path, LIGHT) as api:
        status, description, _ = await api.call("GET", "/openapi.json")
    assert status == 200
    assert description["openapi"].startswith("3.1")
    described = {(method.upper(), path) for path, item in description["paths"].items() for method in item}
    twins = {"/binaries/", "/contexts/", "/jobs/", "/data/"}
    missing = {
        (method, path) for method, path in registered_routes(tmp_path) if path not in twins
    } - described
    assert not missing, f"routes without a description: {sorted(missing)}"
    for method, path in registered_routes(tmp_path):
        if path in twins:
            assert (method, path.rstrip("/")) in described


def test_the_schemas_are_json_schemas() -> None:
    for schema in SCHEMAS.values():
        Draft202012Validator.check_schema(schema)


def test_an_answer_that_breaks_its_schema_fails_the_test_that_gets_it() -> None:
    check_answer("GET", "/contexts/a", 200, "application/json", {
        "id": "1", "name": "a", "startTime": "t", "endTime": "Empty", "state": "RUNNING"
    })  # fmt: skip
    with pytest.raises(AssertionError, match="does not match its OpenAPI schema"):
        check_answer("GET", "/contexts/a", 200, "application/json", {"name": "a", "state": "DANCING"})
    with pytest.raises(AssertionError, match="does not match its OpenAPI schema"):
        check_answer("GET", "/jobs", 400, "application/json", {"status": "ERROR"})
    with pytest.raises(AssertionError, match="its description omits"):
        check_answer("GET", "/jobs", 418, "application/json", {"status": "ERROR", "result": "teapot"})


async def test_the_description_and_its_page_are_open_with_authentication_on(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("")
    overrides = {
        **LIGHT,
        "spark.jobserver.auth.mechanisms": ["basic"],
        "spark.jobserver.auth.basic.users-file": str(users),
    }
    async with running_server(tmp_path, overrides) as api:
        assert (await api.call("GET", "/jobs"))[0] == 401
        status, _, _ = await api.call("GET", "/openapi.json")
        assert status == 200
        status, page, response = await api.call("GET", "/docs")
    assert (status, response.content_type) == (200, "text/html")
    assert "<code>/jobs/{job_id}/config</code>" in page
    operations = sum(len(item) for item in document()["paths"].values())
    assert page.count("<section>") == operations
