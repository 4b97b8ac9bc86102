"""Average salary per age with Spark SQL, adapted from spark-jobserver's SQLContext example to a session."""

from sparkjobserver.api import SparkJob

from .people import PEOPLE_SCHEMA, validate_people

# Passed as a parameter rather than a temporary view, so concurrent jobs in one session do not collide.
AVERAGE_SALARY_BY_AGE = """
    SELECT age, avg(salary) AS average_salary
    FROM {people}
    GROUP BY age
    ORDER BY age
"""


class SQLAverageJob(SparkJob):
    """``input.data`` = ``[[name, age, salary], …]`` → ``[[age, average salary], …]`` ordered by age.

    For example ``[["bob", 20, 1200], ["jon", 21, 1400], ["mary", 20, 1300], ["sue", 21, 1600]]`` gives
    ``[[20, 1250.0], [21, 1500.0]]``.
    """

    def validate(self, context, runtime, config):
        return validate_people(context, config)

    def run_job(self, context, runtime, data):
        people = context.createDataFrame(data, PEOPLE_SCHEMA)
        averages = context.sql(AVERAGE_SALARY_BY_AGE, people=people)
        return [list(row) for row in averages.collect()]
