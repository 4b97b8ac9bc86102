"""Functions that Spark runs on the executors as Python UDFs.

This module imports nothing, so an executor needs only this package to run them, not the
``sparkjobserver`` package that the job classes import.
"""


def shout(word):
    """Upper-case a word and add an exclamation mark; ``None`` stays ``None``."""
    return None if word is None else word.upper() + "!"
