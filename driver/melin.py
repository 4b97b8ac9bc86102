"""Jobs written for melin/spark-jobserver: ``main(sparkSession)`` in a module of its own.

melin's driver pastes a job's source into a template and calls ``main(sparkSession)``; the job may
use what the template defines around it without importing it: ``info``, ``warn`` and ``error`` (log
lines of the job), the star imports of ``pyspark``, ``pyspark.sql`` and ``pyspark.sql.types``, and
``os``, ``sys``, ``inspect``, ``threading``, ``signal``, ``traceback``. A module whose job takes the
session alone gets the names it does not define itself, so such jobs run unchanged; a module that
uses them at import time is executed again with them in place.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import os
import signal
import sys
import threading
import traceback
from types import ModuleType

_LOG = logging.getLogger("jobserver.job")


def info(message: object) -> None:
    _LOG.info("%s", message)


def warn(message: object) -> None:
    _LOG.warning("%s", message)


def error(message: object) -> None:
    _LOG.error("%s", message)


@functools.cache
def template_globals() -> dict[str, object]:
    """The names melin's template defines around a job's code."""
    names: dict[str, object] = {}
    for star in ("pyspark", "pyspark.sql", "pyspark.sql.types"):
        module = importlib.import_module(star)
        exported = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
        names.update({name: getattr(module, name) for name in exported if hasattr(module, name)})
    for module in (os, sys, inspect, threading, signal, traceback):
        names[module.__name__] = module
    names.update(info=info, warn=warn, error=error)
    return names


def provide_template_globals(module: ModuleType) -> None:
    """Give ``module`` the template's names it does not define itself."""
    namespace = vars(module)
    for name, value in template_globals().items():
        namespace.setdefault(name, value)


def import_with_template_globals(module_name: str) -> ModuleType:
    """Import ``module_name`` with the template's names in place before its code runs (for a
    module that uses them at import time); raises what the import raises."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {module_name!r}", name=module_name)
    module = importlib.util.module_from_spec(spec)
    provide_template_globals(module)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
