"""Request bodies cannot reach the server's files, environment or network, nor hold it up:
HOCON includes are refused, ${?VAR} does not read the environment, a substitution bomb or a body
nested thousands deep is a 400, and JSON is strict (no NaN or infinities)."""

from __future__ import annotations

import os
import time

import pytest

from jobserver.common.bodies import MAX_DEPTH, PARSE_TIMEOUT_S, BodyParseError, parse_body


@pytest.mark.parametrize(
    "body",
    [
        'include file("/etc/os-release")',
        'a = 1\ninclude url("http://169.254.169.254/latest/meta-data")',
        'include required(file("/etc/passwd"))',
        'include "other.conf"',
        'settings { include classpath("application.conf") }',
    ],
)
async def test_includes_are_refused(body: str) -> None:
    with pytest.raises(BodyParseError, match="include is not allowed"):
        await parse_body(body)


async def test_the_word_include_in_a_value_is_just_a_word() -> None:
    assert await parse_body('note = "please include this", include-ids = [1]') == {
        "note": "please include this",
        "include-ids": [1],
    }


async def test_substitutions_read_the_document_never_the_environment() -> None:
    assert "HOME" in os.environ
    assert await parse_body("home = ${?HOME}\nsize = 2\ncopy = ${size}") == {"size": 2, "copy": 2}
    with pytest.raises(BodyParseError, match="HOME"):
        await parse_body("home = ${HOME}")


async def test_a_substitution_bomb_is_refused_within_the_parse_limit() -> None:
    levels = ["a0 = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
    levels += [f"a{n} = " + f"${{a{n - 1}}}" * 12 for n in range(1, 12)]
    started = time.monotonic()
    with pytest.raises(BodyParseError):
        await parse_body("\n".join(levels))
    assert time.monotonic() - started < PARSE_TIMEOUT_S + 5


@pytest.mark.parametrize("body", ['{"a": ' * 5000 + "1" + "}" * 5000, "a " + "{ b " * 200 + "}" * 200])
async def test_bodies_nested_too_deep_are_refused(body: str) -> None:
    with pytest.raises(BodyParseError, match=f"nested more than {MAX_DEPTH} deep"):
        await parse_body(body)


@pytest.mark.parametrize("body", ['{"n": NaN}', '{"n": Infinity}', '{"n": -Infinity}', '{"n": 1e999999}'])
async def test_numbers_json_cannot_carry_are_refused(body: str) -> None:
    with pytest.raises(BodyParseError):
        await parse_body(body)


@pytest.mark.parametrize("body", ['{"a": "x\\u0000y"}', '{"a\\u0000": 1}', '{"a": ["\\u0000"]}'])
async def test_nul_characters_are_refused(body: str) -> None:
    with pytest.raises(BodyParseError, match="NUL"):
        await parse_body(body)
