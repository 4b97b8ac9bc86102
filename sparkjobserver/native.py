"""The native Python job API: ordinary PySpark, no server-specific base class.

A job is addressed by ``mainClass``:

* ``package.module:function``, a plain function ``run(spark, config)`` or
  ``run(spark, config, env)``; it returns the job's result.
* ``package.module.Class``, a class whose instances have ``run(spark, data, env)`` and optionally
  ``validate(spark, config)``. ``validate`` returns the data ``run`` receives (the config when there
  is no ``validate``); raising ``ValidationError`` rejects the request with
  ``400 VALIDATION FAILED`` before the job runs.

``spark`` is what the context's factory provides (a SparkSession unless the context was made with
``spark.jobserver.context.DefaultSparkContextFactory``); ``config`` is the job's config, the posted
config over the server's, as a pyhocon ConfigTree (``config.get("input.strings")`` or
``config["input"]["strings"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyhocon import ConfigTree

    from driver.named_objects import NamedObjects


class ValidationError(Exception):
    """Raised by ``validate`` (or a function job before it starts work) to reject the job."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems) or "validation failed")
        self.problems = list(problems)


@dataclass(frozen=True)
class JobEnvironment:
    """What a job may know about where it runs."""

    job_id: str
    context_name: str
    context_config: ConfigTree  # the context's settings
    fetch_data_file: Callable[[str], str] | None = field(default=None, repr=False, compare=False)
    # The context's named objects (get, get_or_else_create, update, forget, destroy, get_names).
    named_objects: NamedObjects | None = field(default=None, repr=False, compare=False)

    def data_file(self, name: str) -> str:
        """A local path to a file uploaded with ``POST /data``: give the name that upload
        returned (or its last part). A driver on another host fetches it from the server once."""
        if self.fetch_data_file is None:
            raise FileNotFoundError(name)
        return self.fetch_data_file(name)
