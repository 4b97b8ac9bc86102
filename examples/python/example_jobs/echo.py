"""A job that never touches Spark: it returns its ``input`` config, so its run time is the server's."""

from sparkjobserver.api import SparkJob


class EchoJob(SparkJob):
    """``input = {…}`` → the same object back (``{}`` when there is no ``input``)."""

    def validate(self, context, runtime, config):
        return plain(config.get("input", {}))

    def run_job(self, context, runtime, data):
        return data


def plain(value):
    """A pyhocon tree as ordinary dicts and lists, with quoted keys such as ``"a.b"`` unquoted."""
    if hasattr(value, "as_plain_ordered_dict"):
        return value.as_plain_ordered_dict()
    return value
