"""Which browser origins get CORS headers: the listed ones, any with "*" (without credentials),
none by default."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from jobserver.web.middleware import conventions


async def answer(allowed: list[str], origin: str) -> web.StreamResponse:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    request = make_mocked_request("GET", "/binaries", headers={"Origin": origin})
    return await conventions(allowed)(request, handler)


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        ([], "https://ui.example", None),
        (["https://ui.example"], "https://ui.example", ("https://ui.example", "true")),
        (["https://ui.example"], "https://other.example", None),
        (["*"], "https://other.example", ("*", None)),
        (["*", "https://ui.example"], "https://ui.example", ("https://ui.example", "true")),
    ],
)
async def test_only_allowed_origins_get_cors_headers(
    allowed: list[str], origin: str, expected: tuple[str, str | None] | None
) -> None:
    response = await answer(allowed, origin)
    headers = response.headers
    if expected is None:
        assert "Access-Control-Allow-Origin" not in headers
    else:
        assert (
            headers["Access-Control-Allow-Origin"],
            headers.get("Access-Control-Allow-Credentials"),
        ) == expected
