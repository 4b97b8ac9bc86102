"""JVM jobs: a class in a jar of the job's cp, run through py4j in the driver's JVM.

A class with ``public static Object run(SparkSession spark, String configJson)``
(``run(JavaStreamingContext, String)`` in a streaming context). Maps, lists and scalars it returns
convert as Python results do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from driver.jobbase import INVALID_TYPE, Job, JobRejected
from driver.protocol import FAILURE_INVALID_TYPE, FAILURE_NOT_FOUND
from driver.spark import SESSION, SPARK_CONTEXT, STREAMING, SparkHandle

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject
    from pyhocon import ConfigTree
    from pyspark.streaming import StreamingContext

    from sparkjobserver.native import JobEnvironment

# The JVM type of the first parameter of a JVM job's run, per context kind.
_JVM_CONTEXT_TYPES = {
    SESSION: "org.apache.spark.sql.SparkSession",
    SPARK_CONTEXT: "org.apache.spark.sql.SparkSession",
    STREAMING: "org.apache.spark.streaming.api.java.JavaStreamingContext",
}


class JvmJob(Job):
    """A class in a jar with ``public static Object run(SparkSession spark, String configJson)``
    (``run(JavaStreamingContext, String)`` in a streaming context), called through py4j in this
    driver's JVM. Maps, lists and scalars it returns convert as Python results do."""

    def __init__(self, main_class: str, jars: Sequence[Path]) -> None:
        self._main_class = main_class
        self._jars = tuple(jars)

    def prepare(self, spark: SparkHandle, config: ConfigTree) -> tuple[JavaObject, str]:
        gateway = spark.gateway
        jvm = gateway.jvm
        try:
            job_class = jvm.java.lang.Class.forName(self._main_class, True, _class_loader(spark, self._jars))
        except Exception as error:  # py4j wraps ClassNotFoundException
            raise JobRejected(FAILURE_NOT_FOUND, f"classPath {self._main_class} not found") from error
        parameter_types = gateway.new_array(jvm.java.lang.Class, 2)
        parameter_types[0] = jvm.java.lang.Class.forName(_JVM_CONTEXT_TYPES[spark.kind])
        parameter_types[1] = jvm.java.lang.Class.forName("java.lang.String")
        try:
            method = job_class.getMethod("run", parameter_types)
        except Exception as error:  # no run for what this context hands out
            raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE) from error
        return method, json.dumps(
            config.as_plain_ordered_dict() if hasattr(config, "as_plain_ordered_dict") else config
        )

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        method, config_json = cast("tuple[JavaObject, str]", data)  # what prepare made
        gateway = spark.gateway
        arguments = gateway.new_array(gateway.jvm.java.lang.Object, 2)
        if spark.kind == STREAMING:
            arguments[0] = cast("StreamingContext", spark.job_context)._jssc
        else:
            arguments[0] = spark.session._jsparkSession
        arguments[1] = config_json
        return _from_java(method.invoke(None, arguments))


_class_loaders: dict[tuple[Path, ...], JavaObject] = {}


def _class_loader(spark: SparkHandle, jars: Sequence[Path]) -> JavaObject:
    """One class loader per set of jars, over the JVM's own: jars uploaded after the context
    started load too, and two versions of a jar do not mix."""
    key = tuple(jars)
    if key not in _class_loaders:
        gateway = spark.gateway
        jvm = gateway.jvm
        urls = gateway.new_array(jvm.java.net.URL, len(jars))
        for index, jar in enumerate(jars):
            urls[index] = jvm.java.io.File(str(jar)).toURI().toURL()
        parent = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        _class_loaders[key] = jvm.java.net.URLClassLoader(urls, parent)
    return _class_loaders[key]


def _from_java(value: object) -> object:
    from py4j.java_collections import JavaArray, JavaList, JavaMap, JavaSet

    if isinstance(value, JavaMap):
        return {str(key): _from_java(item) for key, item in value.items()}
    if isinstance(value, JavaList | JavaArray | JavaSet):
        return [_from_java(item) for item in value]
    return value
