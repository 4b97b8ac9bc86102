"""Schedules: a job or a workflow started at each due time of a cron expression."""
