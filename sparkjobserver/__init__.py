"""Compatibility package for Python jobs written for spark-jobserver.

Existing job packages do ``from sparkjobserver.api import SparkJob, build_problems`` and so on; this
package provides those names with the same signatures and behaviour, so such jobs run unchanged on
this server. The job API itself lives in :mod:`sparkjobserver.api`.
"""
