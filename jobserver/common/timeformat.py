"""spark-jobserver's two date formats (sjs-contract §1.4)."""

from __future__ import annotations

import datetime


def job_time(moment: datetime.datetime) -> str:
    """Job reports: ``2016-06-19T16:27:12.196+05:30`` in the server's zone, ``…Z`` at offset zero."""
    local = moment.astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    offset = local.utcoffset() or datetime.timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def instant(moment: datetime.datetime) -> str:
    """Binaries and contexts: a UTC instant with milliseconds, ``2013-05-29T00:00:00.000Z``."""
    utc = moment.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
