"""Job callbacks (``callbackUrl``): POST the outcome of a finished or failed job to the client.

Delivery runs in the background with retries and never holds up other jobs. Killed jobs are not
reported (spark-jobserver documented it so; its code did not always keep to it). The standard
library's HTTP client runs on a worker thread: callbacks are few, and only the web layer may use
aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import structlog

from jobserver.common.records import JobRecord
from jobserver.common.states import JobState

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    attempts: int
    retry_interval_s: float
    timeout_s: float


def callback_body(job: JobRecord, result_json: bytes | None) -> bytes | None:
    """What the callback says about ``job``, or None when it gets no callback."""
    if job.state is JobState.FINISHED:
        head = json.dumps({"jobId": job.id}, separators=(",", ":")).encode()
        return head[:-1] + b',"result":' + (result_json or b"null") + b"}"
    if job.state is JobState.ERROR:
        body = {"jobId": job.id, "status": "ERROR", "result": dict(job.error or {})}
        return json.dumps(body, separators=(",", ":")).encode()
    return None


async def deliver(url: str, body: bytes, job_id: str, policy: CallbackPolicy) -> bool:
    """POST ``body`` until the receiver answers 2xx or 3xx, at most ``policy.attempts`` times."""
    for attempt in range(1, policy.attempts + 1):
        try:
            status = await asyncio.to_thread(_post, url, body, policy.timeout_s)
        except (OSError, urllib.error.URLError) as error:
            reason = str(error)
        else:
            reason = f"HTTP {status}"
            if status < 400:
                log.info("callback_delivered", job_id=job_id, attempt=attempt)
                return True
        log.warning("callback_failed", job_id=job_id, attempt=attempt, reason=reason)
        if attempt < policy.attempts:
            await asyncio.sleep(policy.retry_interval_s)
    log.error("callback_abandoned", job_id=job_id, attempts=policy.attempts)
    return False


def _post(url: str, body: bytes, timeout_s: float) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
