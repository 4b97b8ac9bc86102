"""Reading the ``input.data`` table shared by the SQL examples: a list of ``[name, age, salary]``."""

# Explicit types, because Spark cannot infer one column type from a mix of ints and floats.
PEOPLE_SCHEMA = "name STRING, age BIGINT, salary DOUBLE"


def read_people(config):
    """Return ``(rows, problems)``: rows typed to match ``PEOPLE_SCHEMA``, or the problem texts."""
    entries = config.get("input.data", None)
    if not isinstance(entries, list):
        return None, ["config input.data not found"]
    try:
        return [_person(entry) for entry in entries], []
    except (TypeError, ValueError):
        return None, ["config input.data must be a list of [name, age, salary] entries"]


def _person(entry):
    name, age, salary = entry
    return str(name), int(age), float(salary)


def validate_people(context, config):
    """The shared ``validate`` of the SQL examples: the typed rows, or validation problems."""
    from pyspark.sql import SparkSession

    from sparkjobserver.api import build_problems

    problems = [] if isinstance(context, SparkSession) else ["Expected a SparkSession context"]
    people, data_problems = read_people(config)
    problems.extend(data_problems)
    return build_problems(problems) if problems else people
