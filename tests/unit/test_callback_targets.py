"""Where a callbackUrl may point: public addresses, and what the operator lists."""

from __future__ import annotations

import pytest

from jobserver.common.errors import BadRequest
from jobserver.jobs.callbacks import CallbackTargets


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8090/data",
        "http://localhost/x",
        "http://169.254.169.254/",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://192.168.1.10/",
        "ftp://example.com/x",
        "http:///nohost",
    ],
)
async def test_private_loopback_link_local_and_odd_urls_are_refused(url: str) -> None:
    with pytest.raises(BadRequest):
        await CallbackTargets([]).check(url)


async def test_public_addresses_and_listed_hosts_and_networks_are_allowed() -> None:
    await CallbackTargets([]).check("http://8.8.8.8/hook")
    await CallbackTargets(["10.0.0.0/8"]).check("http://10.0.0.5/hook")
    await CallbackTargets(["localhost"]).check("http://localhost:9000/hook")
    await CallbackTargets(["127.0.0.1"]).check("https://127.0.0.1/hook")
