"""Example Python jobs for the job server, written against ``sparkjobserver.api``.

Each module holds one or more job classes; a job is submitted with ``mainClass=<module>.<Class>``, for
example ``example_jobs.word_count.WordCountSparkSessionJob``. ``examples/build.py`` packs this package
into the wheel and egg that the walk-through uploads.
"""
