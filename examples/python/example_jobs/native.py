"""Jobs written against the native API (``sparkjobserver.native``); docs/jobs.md shows each."""

from pyspark.sql import functions

from sparkjobserver.native import ValidationError


def word_count(spark, config):
    """mainClass ``example_jobs.native:word_count``: ``input.strings`` → word counts."""
    words = spark.createDataFrame([(word,) for word in config.get("input.strings")], ["word"])
    return {row["word"]: row["count"] for row in words.groupBy("word").count().collect()}


def whoami(spark, config, env):
    """mainClass ``example_jobs.native:whoami``: a third parameter receives the job environment."""
    return {"jobId": env.job_id, "context": env.context_name}


def range_count(spark):
    """mainClass ``example_jobs.native:range_count``: ``spark.range(1000).count()``, the function
    job ``bench/connect.py`` runs beside Spark Connect; a function may take the session alone."""
    return spark.range(1000).count()


class Average:
    """mainClass ``example_jobs.native.Average``: the mean of ``input.numbers``.

    ``validate`` rejects a request without numbers with 400 VALIDATION FAILED before anything runs.
    """

    def validate(self, spark, config):
        numbers = config.get("input.numbers", None)
        if not numbers:
            raise ValidationError("input.numbers is missing")
        return list(numbers)

    def run(self, spark, numbers, env):
        frame = spark.createDataFrame([(float(number),) for number in numbers], ["n"])
        return frame.agg(functions.avg("n")).first()[0]


def file_words(spark, config, env):
    """mainClass ``example_jobs.native:file_words``: word counts of a data file uploaded with
    ``POST /data``, named by ``input.file`` (the name the upload returned)."""
    with open(env.data_file(config.get("input.file")), encoding="utf-8") as text:
        words = text.read().split()
    return {word: words.count(word) for word in sorted(set(words))}


def cache_numbers(spark, config, env):
    """mainClass ``example_jobs.native:cache_numbers``: keeps a DataFrame of ``input.rows`` numbers
    as the named object ``numbers`` (computed once per context) and says whether this job made it."""
    made_here = []

    def create():
        made_here.append(True)
        return spark.range(int(config.get("input.rows", 1000))).toDF("n")

    numbers = env.named_objects.get_or_else_create("numbers", create)
    return {"rows": numbers.count(), "computedHere": bool(made_here)}


def drop_numbers(spark, config, env):
    """mainClass ``example_jobs.native:drop_numbers``: unpersists and forgets ``numbers``."""
    env.named_objects.destroy("numbers")
    return env.named_objects.get_names()


def twice_in_java(spark, config):
    """mainClass ``example_jobs.native:twice_in_java``: doubles 0, 1 and 2 with the Java UDF
    ``example.Twice``, from a jar the context was created with (``dependent-jar-uris``)."""
    spark.udf.registerJavaFunction("twice", "example.Twice", "bigint")
    return [row[0] for row in spark.sql("SELECT twice(id) FROM range(3)").collect()]
