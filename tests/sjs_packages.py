"""Job packages as spark-jobserver's users build them, for the compatibility tests.

spark-jobserver builds its Python examples with ``job-server-python/src/python/setup-examples.py``
(setuptools, ``find_packages(exclude=['test*', 'sparkkjob*'])``) through its ``build.sh``:
``setup-examples.py build … egg_info … bdist_egg`` and ``… bdist_wheel``. The exclude pattern has a
typo, so ``find_packages`` ships spark-jobserver's own ``sparkjobserver/`` package (its ``api.py``
and ``subprocess.py``) next to ``example_jobs/``; every package built from that file, and from the
many setup files copied from it, carries that copy. ``build_sjs_packages`` writes such a source tree,
with an ``api.py`` written from spark-jobserver's published interface (it has no
``is_validation_failure``, which this server's copy adds), and builds the egg and the wheel the same
way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SETUP_EXAMPLES = """\
from setuptools import setup, find_packages
import os

setup(
    name='sjs-python-examples',
    version=os.getenv('SJS_VERSION', 'NO_ENV'),
    description='Examples of jobs for Spark Job Server',
    packages=find_packages(exclude=['test*', 'sparkkjob*']),
    install_requires=['pyhocon', 'py4j'],
)
"""

# spark-jobserver's Python job API as it publishes it: these names, these signatures.
SJS_API = """\
class JobEnvironment:
    def __init__(self, job_id, named_objects, context_config):
        self.jobId = job_id
        self.namedObjects = named_objects
        self.contextConfig = context_config


class ValidationProblem:
    def __init__(self, problem):
        self.problem = problem


def build_problems(problems):
    return [ValidationProblem(problem) for problem in problems]


class SparkJob:
    def __init__(self):
        pass

    def validate(self, context, runtime, config):
        raise NotImplementedError("Concrete implementations should override validate")

    def run_job(self, context, runtime, data):
        raise NotImplementedError("Concrete implementations should override run_job")

    def build_context(self, gateway, jvmContext, sparkConf):
        return None


class NamedObject:
    def __init__(self, obj, forceComputation, storage_level):
        self.obj = obj
        self.forceComputation = forceComputation
        self.storage_level = storage_level


class NamedObjects:
    def __init__(self):
        pass
"""

# spark-jobserver's own runner, shipped in the same package; it imports what it needs at the top.
SJS_SUBPROCESS = """\
import sys

from py4j.java_gateway import JavaGateway
from pyhocon import ConfigFactory

from sparkjobserver.api import JobEnvironment, ValidationProblem


def exit_with_failure(message, exit_code=1):
    sys.stderr.write(message)
    sys.exit(exit_code)
"""

WORD_COUNT = """\
from sparkjobserver.api import SparkJob, build_problems


class WordCountSparkSessionJob(SparkJob):

    def validate(self, context, runtime, config):
        if config.get('input.strings', None):
            return config.get('input.strings')
        else:
            return build_problems(['config input.strings not found'])

    def run_job(self, context, runtime, data):
        return context.sparkContext.parallelize(data).countByValue()


class WhoAmIJob(SparkJob):

    def validate(self, context, runtime, config):
        return runtime

    def run_job(self, context, runtime, data):
        return {'jobId': runtime.jobId, 'validateRuntime': repr(data),
                'contextConfigType': type(runtime.contextConfig).__name__}
"""

FAILING_JOB = """\
from sparkjobserver.api import SparkJob, build_problems


class FailingRunJob(SparkJob):

    def validate(self, context, runtime, config):
        return "fine"

    def run_job(self, context, runtime, data):
        raise Exception("Deliberate failure")
"""

SOURCES = {
    "setup-examples.py": SETUP_EXAMPLES,
    "sparkjobserver/__init__.py": "",
    "sparkjobserver/api.py": SJS_API,
    "sparkjobserver/subprocess.py": SJS_SUBPROCESS,
    "example_jobs/__init__.py": "",
    "example_jobs/word_count/__init__.py": WORD_COUNT,
    "example_jobs/failing_job/__init__.py": FAILING_JOB,
}


def build_sjs_packages(folder: Path) -> tuple[Path, Path]:
    """Build the egg and the wheel as spark-jobserver's build.sh does; returns (egg, wheel)."""
    source = folder / "python"
    for name, text in SOURCES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    target = folder / "target"
    build = [sys.executable, "setup-examples.py", "build", "--build-base", str(target)]
    environment = {"SJS_VERSION": "0.11.1", "PATH": "/usr/bin:/bin", "HOME": str(folder)}
    steps = [
        [*build, "egg_info", "--egg-base", str(target), "bdist_egg", "--bdist-dir", str(folder / "bdist"),
         "--dist-dir", str(target), "--skip-build"],
        [*build, "bdist_wheel", "--bdist-dir", str(folder / "bdist"), "--dist-dir", str(target),
         "--skip-build"],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(step, cwd=source, env=environment, check=True, capture_output=True)
    (egg,) = target.glob("*.egg")
    (wheel,) = target.glob("*.whl")
    return egg, wheel
