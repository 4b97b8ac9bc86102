"""JVM jobs: a class in a jar of the job's cp, run through py4j in the driver's JVM.

Two kinds of class:

* spark-jobserver's JVM job API (``spark.jobserver.japi.JSessionJob``, ``JSparkJob``,
  ``JStreamingJob`` and the Scala traits ``spark.jobserver.SparkSessionJob``,
  ``spark.jobserver.api.SparkJob``), through the adapter jar that ``make install`` builds from
  ``jvm/`` (``driver.jvm_api``): ``verify``/``validate`` runs before the job is accepted, and its
  problems answer the request 400 VALIDATION FAILED, as a native Python job's ValidationError does.
* a class with ``public static Object run(SparkSession spark, String configJson)``
  (``run(JavaStreamingContext, String)`` in a streaming context).

Results (maps, lists, scalars; Scala collections, arrays, Rows and Products as lists) convert as
Python results do. The classes come from the context's class loaders (``driver.jvmclasses``): the
jars a job brings stay loadable for later jobs of the context.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from driver.jobbase import INVALID_TYPE, Job, JobRejected
from driver.jvmclasses import context_classes
from driver.protocol import FAILURE_INVALID_TYPE, FAILURE_LOADING, FAILURE_VALIDATION, error_map
from driver.spark import SESSION, SPARK_CONTEXT, STREAMING, SparkHandle

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject
    from pyhocon import ConfigTree
    from pyspark.streaming import StreamingContext

    from sparkjobserver.native import JobEnvironment

# The JVM type of the first parameter of a static run, per context kind.
_JVM_CONTEXT_TYPES = {
    SESSION: "org.apache.spark.sql.SparkSession",
    SPARK_CONTEXT: "org.apache.spark.sql.SparkSession",
    STREAMING: "org.apache.spark.streaming.api.java.JavaStreamingContext",
}


@dataclass(frozen=True, slots=True)
class _StaticCall:
    method: JavaObject
    config_json: str


@dataclass(frozen=True, slots=True)
class _ApiCall:
    bridge: JavaObject
    job: JavaObject
    context: JavaObject
    data: object  # what verify made of the config


class JvmJob(Job):
    """A class in the job's jars: a job of spark-jobserver's JVM API, or one with a static run."""

    def __init__(self, main_class: str, jars: Sequence[Path]) -> None:
        self._main_class = main_class
        self._jars = tuple(jars)

    def prepare(self, spark: SparkHandle, config: ConfigTree) -> _StaticCall | _ApiCall:
        classes = context_classes(spark)
        job_class = classes.load(self._main_class, self._jars)
        bridge = classes.bridge
        api_kind = str(bridge.contextKind(job_class)) if bridge is not None else ""
        if api_kind:
            return _verified(spark, bridge, job_class, api_kind, config)
        return _static_call(spark, job_class, config)

    def run(self, spark: SparkHandle, data: object, env: JobEnvironment) -> object:
        if isinstance(data, _ApiCall):
            names = env.named_objects.get_names() if env.named_objects is not None else []
            environment = _environment(spark, data.bridge, names)
            return _from_java(data.bridge.run(data.job, data.context, environment, data.data))
        assert isinstance(data, _StaticCall)  # what prepare made
        gateway = spark.gateway
        arguments = gateway.new_array(gateway.jvm.java.lang.Object, 2)
        if spark.kind == STREAMING:
            arguments[0] = _streaming_context(spark)._jssc
        else:
            arguments[0] = spark.session._jsparkSession
        arguments[1] = data.config_json
        result = data.method.invoke(None, arguments)
        bridge = context_classes(spark).bridge
        return _from_java(result if bridge is None else bridge.plain(result))


def _verified(
    spark: SparkHandle, bridge: JavaObject, job_class: JavaObject, api_kind: str, config: ConfigTree
) -> _ApiCall:
    """The job of spark-jobserver's API, its context, and what its verify made of the config."""
    if api_kind != spark.kind:
        raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE)
    try:
        job = bridge.instantiate(job_class)
    except Exception as error:  # py4j's error carries the JVM's (no public constructor, …)
        raise JobRejected(FAILURE_LOADING, f"cannot instantiate {job_class.getName()}: {error}") from error
    if spark.kind == SESSION:
        context = spark.session._jsparkSession
    elif spark.kind == SPARK_CONTEXT:
        context = spark.spark_context._jsc  # the JavaSparkContext
    else:
        context = _streaming_context(spark)._jssc.ssc()
    verified = bridge.verify(job, context, _environment(spark, bridge, []), _json(config))
    if not verified.isValid():
        message = f"Validation failed: {verified.problems()}"
        details = error_map(message, str(verified.errorClass()), str(verified.stack()))
        raise JobRejected(FAILURE_VALIDATION, message, details)
    return _ApiCall(bridge=bridge, job=job, context=context, data=verified.data())


def _static_call(spark: SparkHandle, job_class: JavaObject, config: ConfigTree) -> _StaticCall:
    gateway = spark.gateway
    jvm = gateway.jvm
    parameter_types = gateway.new_array(jvm.java.lang.Class, 2)
    parameter_types[0] = jvm.java.lang.Class.forName(_JVM_CONTEXT_TYPES[spark.kind])
    parameter_types[1] = jvm.java.lang.Class.forName("java.lang.String")
    try:
        method = job_class.getMethod("run", parameter_types)
    except Exception as error:  # no run for what this context hands out
        raise JobRejected(FAILURE_INVALID_TYPE, INVALID_TYPE) from error
    return _StaticCall(method=method, config_json=_json(config))


def _environment(spark: SparkHandle, bridge: JavaObject, named_object_names: list[str]) -> JavaObject:
    """spark-jobserver's JobEnvironment: the job's id, the context's config, its named objects'
    names (known once the job runs: verify comes before the job's environment exists)."""
    names = spark.gateway.jvm.java.util.ArrayList()
    for name in named_object_names:
        names.add(name)
    return bridge.environment(spark.job_id, json.dumps(spark.context_config), names)


def _streaming_context(spark: SparkHandle) -> StreamingContext:
    context = spark.job_context
    assert spark.kind == STREAMING
    return context  # type: ignore[return-value]  # a streaming context hands out StreamingContexts


def _json(config: ConfigTree) -> str:
    return json.dumps(config.as_plain_ordered_dict() if hasattr(config, "as_plain_ordered_dict") else config)


def _from_java(value: object) -> object:
    from py4j.java_collections import JavaArray, JavaList, JavaMap, JavaSet

    if isinstance(value, JavaMap):
        return {str(key): _from_java(item) for key, item in value.items()}
    if isinstance(value, JavaList | JavaArray | JavaSet):
        return [_from_java(item) for item in value]
    return value
