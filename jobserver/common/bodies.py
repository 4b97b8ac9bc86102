"""Request bodies (a job's or a context's config) as plain dicts, read where they can do no harm.

JSON takes the fast path, on the event loop: strict JSON only (no NaN or infinities, which could
not be answered back as JSON), nested at most ``MAX_DEPTH`` deep. Anything else is HOCON, and
pyhocon has powers no client may use: ``include file(…)`` / ``url(…)`` reads the server's files
and fetches URLs, ``${?HOME}`` reads its environment, and a few hundred bytes of substitutions can
grow without bound. So a HOCON body is refused when it includes anything, and parsed in a child
process (forked from multiprocessing's fork server, off the event loop) whose environment is
empty and whose memory, time and answer are limited. In-document substitutions still work.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import re
import resource
from multiprocessing.connection import Connection
from typing import Any

from jobserver.common.config import expand_dotted, to_plain

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # objects and lists in objects and lists …
JSON_ON_THE_LOOP_BYTES = 256 * 1024  # a larger JSON body is parsed on a thread
PARSE_TIMEOUT_S = 3.0
PARSE_MEMORY_BYTES = 512 * 1024 * 1024
MAX_PARSED_BYTES = 4 * 1024 * 1024  # the parsed config, as JSON
COMPILE_TIMEOUT_S = 5.0  # a single-module binary's compile check

# HOCON's include statement: the keyword, then a quoted name or file(…), url(…), classpath(…),
# required(…). A quoted string that merely contains such words does not match (its quote comes
# first); text in a triple-quoted string that looks like one is refused too.
_INCLUDE = re.compile(r'(?<![\w."$-])include\s*(?:"|(?:required|file|url|classpath)\s*\()', re.IGNORECASE)


# Children come from a fork server that has pyhocon loaded (it starts with the first HOCON body),
# never from a fork of the server itself, whose threads (ZeroMQ's, the store's) a fork would copy.
_PROCESSES = multiprocessing.get_context("forkserver")
_PROCESSES.set_forkserver_preload(["jobserver.common.bodies", "pyhocon"])


class BodyParseError(ValueError):
    pass


async def parse_body(text: str) -> dict[str, Any]:
    """A request body as a plain dict: empty is ``{}``, JSON takes the fast path, else HOCON.
    JSON object keys with dots become paths, the way HOCON reads them (``expand_dotted``)."""
    stripped = text.strip()
    if not stripped or stripped == "{}":
        return {}
    if stripped[0] == "{":
        if len(stripped) <= JSON_ON_THE_LOOP_BYTES:
            parsed = _json_object(stripped)
        else:
            parsed = await asyncio.to_thread(_json_object, stripped)
        if parsed is not None:
            return expand_dotted(parsed)
    plain = await _parse_hocon(stripped)
    if not isinstance(plain, dict):
        raise BodyParseError("the body is not a config object")
    _check_depth(plain)
    # pyhocon keeps a quoted key's quotes; read it the way the JSON path above reads it.
    return expand_dotted(plain)


def _json_object(text: str) -> dict[str, Any] | None:
    """The body as strict JSON, or None when it is no JSON object (then it may be HOCON)."""
    try:
        parsed = _strict_json_loads(text, "the config")
    except BodyParseError:
        raise
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    _check_depth(parsed)
    return parsed


def strict_json(raw: str | bytes, what: str = "the body") -> Any:
    """A body that must be JSON (schedules, workflows), read as a config's JSON is: numbers
    finite, nested at most ``MAX_DEPTH`` deep, no NULs. BodyParseError says why not."""
    try:
        parsed = _strict_json_loads(raw, what)
    except BodyParseError:
        raise
    except ValueError as error:
        raise BodyParseError(f"{what} is not JSON: {error}") from None
    _check_depth(parsed, what)
    return parsed


def _strict_json_loads(raw: str | bytes, what: str) -> Any:
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # the C scanner's own limit, far above MAX_DEPTH
        raise BodyParseError(f"{what} is nested more than {MAX_DEPTH} deep") from None


def _refuse_constant(name: str) -> Any:
    raise BodyParseError(f"{name} is not a number JSON can carry")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyParseError(f"{text} is out of range for a number")
    return value


def _check_depth(value: Any, what: str = "the config") -> None:
    """Nesting and NULs (which PostgreSQL refuses in text), checked iteratively: a recursive
    walk is what a deep body would break."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise BodyParseError(f"{what} is nested more than {MAX_DEPTH} deep")
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                raise BodyParseError(f"a NUL character is not allowed in {what}")
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and "\x00" in item:
            raise BodyParseError(f"a NUL character is not allowed in {what}")


async def _parse_hocon(text: str) -> Any:
    if _INCLUDE.search(text):
        raise BodyParseError("include is not allowed in a request's config")
    outcome = await _in_child(_parse_in_child, text, PARSE_TIMEOUT_S)
    if outcome is None:
        raise BodyParseError(f"the config took more than {PARSE_TIMEOUT_S:.0f} s to read")
    kind, value = outcome
    if kind == "error":
        raise BodyParseError(str(value))
    return value


async def python_source_problem(source: bytes) -> str | None:
    """Why ``source`` is no Python module (not UTF-8, does not compile), or None. Compiling holds
    the interpreter's lock for as long as it takes (a big literal: minutes, gigabytes), so it runs
    in a child with the same limits as a HOCON body, never in the server."""
    outcome = await _in_child(_compile_in_child, source, COMPILE_TIMEOUT_S)
    if outcome is None:
        return f"compiling it took more than {COMPILE_TIMEOUT_S:.0f} s"
    kind, value = outcome
    return None if kind == "ok" else str(value)


async def _in_child(target: Any, payload: Any, timeout_s: float) -> tuple[str, Any] | None:
    """``target(payload, sender)`` in a child of the fork server: its answer, or None when it
    takes longer than ``timeout_s`` (the child is killed either way)."""
    receiver, sender = _PROCESSES.Pipe(duplex=False)
    child = _PROCESSES.Process(target=target, args=(payload, sender), name="limited-parse", daemon=True)
    child.start()
    sender.close()
    try:
        return await asyncio.to_thread(_outcome_within, receiver, timeout_s)
    finally:
        receiver.close()
        await asyncio.to_thread(_reap, child)


def _outcome_within(receiver: Connection, timeout_s: float) -> tuple[str, Any] | None:
    try:
        if not receiver.poll(timeout_s):
            return None
        outcome: tuple[str, Any] = receiver.recv()
    except (EOFError, OSError):  # the child died (out of memory): it said nothing
        return ("error", "the config is too large to read")
    return outcome


def _reap(child: Any) -> None:
    child.join(0.1)
    if child.is_alive():
        child.kill()
        child.join()


def _parse_in_child(text: str, sender: Connection) -> None:
    """In the child: no environment to read, a memory ceiling, and the answer's size bounded."""
    os.environ.clear()
    resource.setrlimit(resource.RLIMIT_AS, (PARSE_MEMORY_BYTES, PARSE_MEMORY_BYTES))
    outcome: tuple[str, Any]
    try:
        outcome = ("ok", _hocon_to_plain(text))
        if len(json.dumps(outcome[1])) > MAX_PARSED_BYTES:
            outcome = ("error", f"the config is larger than {MAX_PARSED_BYTES} bytes once read")
    except MemoryError:
        outcome = ("error", "the config is too large to read")
    except RecursionError:
        outcome = ("error", f"the config is nested more than {MAX_DEPTH} deep")
    except Exception as error:  # pyhocon raises pyparsing's errors and its own alike
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        outcome = ("error", message)
    sender.send(outcome)
    sender.close()


def _compile_in_child(source: bytes, sender: Connection) -> None:
    """In the child, with the limits of ``_parse_in_child``: decode and compile, run nothing."""
    os.environ.clear()
    resource.setrlimit(resource.RLIMIT_AS, (PARSE_MEMORY_BYTES, PARSE_MEMORY_BYTES))
    outcome: tuple[str, Any] = ("ok", None)
    try:
        compile(source.decode("utf-8"), "<module>", "exec", dont_inherit=True)
    except UnicodeDecodeError as error:
        outcome = ("error", f"not UTF-8 text ({error.reason} at byte {error.start})")
    except SyntaxError as error:
        outcome = ("error", f"line {error.lineno}: {error.msg}")
    except MemoryError:
        outcome = ("error", "too large to compile")
    except (ValueError, RecursionError) as error:  # NUL bytes, nesting too deep for the parser
        outcome = ("error", str(error) or type(error).__name__)
    sender.send(outcome)
    sender.close()


def _hocon_to_plain(text: str) -> Any:
    from pyhocon import ConfigFactory

    return to_plain(ConfigFactory.parse_string(text))
