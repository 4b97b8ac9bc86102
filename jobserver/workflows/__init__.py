"""Workflows: steps, each a job, started when the steps they come after have ended."""
