"""Ranking with a Spark SQL window function on a ``SparkSession`` context."""

from sparkjobserver.api import SparkJob

from .people import PEOPLE_SCHEMA, validate_people

# The DataFrame is passed to sql() as a parameter instead of being registered as a temporary view:
# jobs share the session, and two of them registering the same view name would race.
RANK_BY_NAME_WITHIN_AGE = """
    SELECT name, age, rank() OVER (PARTITION BY age ORDER BY name) AS rank
    FROM {people}
    ORDER BY age, rank, name
"""


class SessionWindowJob(SparkJob):
    """``input.data`` = ``[[name, age, salary], …]`` → ``[[name, age, rank], …]``, ranked by name within age.

    For example ``[["bob", 20, 1200], ["jon", 21, 1400], ["mary", 20, 1300], ["sue", 21, 1600]]`` gives
    ``[["bob", 20, 1], ["mary", 20, 2], ["jon", 21, 1], ["sue", 21, 2]]``.
    """

    def validate(self, context, runtime, config):
        return validate_people(context, config)

    def run_job(self, context, runtime, data):
        people = context.createDataFrame(data, PEOPLE_SCHEMA)
        ranked = context.sql(RANK_BY_NAME_WITHIN_AGE, people=people)
        return [list(row) for row in ranked.collect()]
