"""The context settings the server reads itself, checked before a driver is launched.

spark-jobserver's users bring settings from its configs and documentation (sjs-contract §4.1):

* ``mem-per-node``, the spelling of spark-jobserver's README, is ``memory-per-node``. It is
  renamed where it is written (each layer: the server's config file, a ``spark.contexts`` entry,
  a client's request), so a layer's ``mem-per-node`` overrides the layer below as
  ``memory-per-node`` would; one layer naming both with different values is an error.
* ``context-factory`` must be a factory the driver knows (``driver.protocol.CONTEXT_FACTORIES``).
* ``forked-jvm-init-timeout`` bounds a new driver's start until it connects back to the server,
  ``context-init-timeout`` its Spark's start from then on (``start_deadlines``).
* ``python.paths`` (a list, or a comma-separated string) and ``python.executable``: made absolute
  against the server's folder, and checked for their types.

Every problem is a ``ConfigError`` naming the setting; the context domain answers it with a 400,
the server's start-up refuses its configuration with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driver.protocol import CONTEXT_FACTORIES, DEFAULT_CONTEXT_FACTORY
from jobserver.common.errors import ConfigError
from jobserver.common.values import parse_duration_s, string_list

MEMORY = "memory-per-node"
MEMORY_ALIAS = "mem-per-node"
FACTORY = "context-factory"
CONNECT_TIMEOUT = "forked-jvm-init-timeout"
INIT_TIMEOUT = "context-init-timeout"
PYTHON = "python"
PYTHON_PATHS = "python.paths"
PYTHON_EXECUTABLE = "python.executable"
# conf/defaults.conf's, for settings stored before these keys existed (a context restarted with
# its stored settings).
_DEFAULT_DEADLINES_S = {CONNECT_TIMEOUT: 30.0, INIT_TIMEOUT: 60.0}


@dataclass(frozen=True, slots=True)
class StartDeadlines:
    """How long a new driver may take to connect back, and then to start Spark (seconds)."""

    connect_s: float
    init_s: float


def with_canonical_names(settings: Mapping[str, Any], where: str = "context settings") -> dict[str, Any]:
    """``settings`` (one layer, nested) with ``mem-per-node`` as ``memory-per-node``."""
    result = dict(settings)
    if MEMORY_ALIAS not in result:
        return result
    alias = result.pop(MEMORY_ALIAS)
    if MEMORY in result and str(result[MEMORY]) != str(alias):
        raise ConfigError(
            f"{where}: {MEMORY_ALIAS} ({alias}) and {MEMORY} ({result[MEMORY]}) differ; "
            f"{MEMORY_ALIAS} is another name of {MEMORY}: set one of them"
        )
    result[MEMORY] = alias
    return result


def checked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A context's whole settings (the server's defaults merged with its own), checked, with
    ``python.paths`` as a list of absolute paths."""
    factory = str(settings.get(FACTORY) or DEFAULT_CONTEXT_FACTORY)
    if factory not in CONTEXT_FACTORIES:
        supported = ", ".join(sorted(CONTEXT_FACTORIES))
        raise ConfigError(f"Unknown context-factory {factory}; supported factories: {supported}")
    start_deadlines(settings)
    python = settings.get(PYTHON)
    if python is None:
        return dict(settings)
    if not isinstance(python, Mapping):
        raise ConfigError(f"{PYTHON} must hold paths and executable, got {python!r}")
    executable = python.get("executable")
    if executable is not None and not isinstance(executable, str):
        raise ConfigError(f"{PYTHON_EXECUTABLE} must be a program's path, got {executable!r}")
    paths = python.get("paths")
    if paths is not None and not isinstance(paths, list | str):
        raise ConfigError(f"{PYTHON_PATHS} must be a list of folders, got {paths!r}")
    absolute = [os.path.abspath(path) for path in string_list(paths)]
    return {**settings, PYTHON: {**python, "paths": absolute}}


def start_deadlines(settings: Mapping[str, Any]) -> StartDeadlines:
    return StartDeadlines(
        connect_s=_duration(settings, CONNECT_TIMEOUT), init_s=_duration(settings, INIT_TIMEOUT)
    )


def _duration(settings: Mapping[str, Any], key: str) -> float:
    value = settings.get(key)
    if value is None:
        return _DEFAULT_DEADLINES_S[key]
    try:
        seconds = parse_duration_s(value)
    except ConfigError as error:
        raise ConfigError(f"{key}: {error}") from error
    if seconds <= 0:
        raise ConfigError(f"{key} must be longer than 0, got {value!r}")
    return seconds
