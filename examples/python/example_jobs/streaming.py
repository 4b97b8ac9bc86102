"""Streaming jobs; docs/jobs.md shows each.

* ``rate_to_memory``: a Structured Streaming query in any context, until it is killed (or until
  ``stream.rows`` rows arrived).
* ``queue_word_count`` and ``queue_forever``: DStream jobs for a streaming context
  (``context-factory = spark.jobserver.context.StreamingContextFactory``), which hands them a
  ``StreamingContext``.
"""

import threading
import time

from pyspark.sql import SparkSession
from pyspark.streaming import StreamingContext


def rate_to_memory(spark: SparkSession, config):
    """mainClass ``example_jobs.streaming:rate_to_memory``: counts rows of Spark's rate source
    (``stream.rows_per_second``, default 10) into the in-memory table ``stream.name``.

    Without ``stream.rows`` it runs until the job is killed; with it, it stops its query once at
    least that many rows reached the table and returns ``{"name", "rows"}`` (the rows it holds).
    """
    name = config.get("stream.name")
    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", int(config.get("stream.rows_per_second", 10)))
        .load()
        .writeStream.format("memory")
        .queryName(name)
        .start()
    )
    rows = config.get("stream.rows", None)
    if rows is None:
        query.awaitTermination()
    else:
        while spark.table(name).count() < int(rows):
            query.awaitTermination(0.2)  # raises if the query failed
        query.stop()
    return {"name": name, "rows": spark.table(name).count()}


def active_queries(spark: SparkSession, config):
    """mainClass ``example_jobs.streaming:active_queries``: the names of the context's running
    Structured Streaming queries, sorted."""
    return sorted(query.name for query in spark.streams.active)


def queue_word_count(ssc: StreamingContext, config):
    """mainClass ``example_jobs.streaming:queue_word_count``: word counts over a DStream of
    ``input.batches`` (a list of lists of words, one batch each), once every batch is processed
    (at most ``stream.seconds``, default 60). Stops its StreamingContext but not Spark."""
    batches = [list(batch) for batch in config.get("input.batches")]
    counts = {}
    processed = []
    lock = threading.Lock()

    def add(rdd):
        with lock:
            for word, count in rdd.collect():
                counts[word] = counts.get(word, 0) + count
            processed.append(True)

    stream = ssc.queueStream([ssc.sparkContext.parallelize(batch) for batch in batches])
    stream.countByValue().foreachRDD(add)
    ssc.start()
    deadline = time.monotonic() + float(config.get("stream.seconds", 60))
    while len(processed) < len(batches) and time.monotonic() < deadline:
        ssc.awaitTerminationOrTimeout(0.1)
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    with lock:
        return counts


def queue_forever(ssc: StreamingContext, config):
    """mainClass ``example_jobs.streaming:queue_forever``: a DStream that counts the same words
    every batch until the job is killed (or its context stops)."""
    words = ssc.sparkContext.parallelize(list(config.get("input.words", ["tick"])))

    def count(rdd):  # returns nothing: pyspark takes what a foreachRDD function returns for an RDD
        rdd.count()

    ssc.queueStream([words], default=words).foreachRDD(count)
    ssc.start()
    ssc.awaitTermination()
    return "stopped"


def streaming_state(ssc: StreamingContext, config):
    """mainClass ``example_jobs.streaming:streaming_state``: whether a StreamingContext is active
    in this context (a DStream job is streaming)."""
    return {"active": StreamingContext.getActive() is not None}
