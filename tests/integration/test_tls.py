"""HTTPS on the REST port and logins by TLS client certificate, as a client sees them: the real
``jobserver`` command in a child process, with a CA, server and client certificates made by the test.

With TLS 1.3 the client's handshake is done before the server has looked at the client's
certificate. A server that refuses it then closes the connection (asyncio does not flush OpenSSL's
alert first), so the refusal surfaces as an error of the request, not of the connection's set-up.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.certificates import Authority, Issued, client_context, create_authority, self_signed_client
from tests.support import FAKE_SPARK_HOMES, ServerProcess, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

JOBSERVER = Path(sys.executable).parent / "jobserver"


@dataclass(frozen=True, slots=True)
class Credentials:
    authority: Authority
    server: Issued
    alice: Issued  # signed by the CA the server trusts
    mallory: Issued  # self-signed: its CN means nothing


@dataclass(frozen=True, slots=True)
class TlsSite:
    credentials: Credentials
    port: int

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def context(self, identity: Issued | None = None) -> ssl.SSLContext:
        """A client trusting the CA, presenting ``identity``."""
        return client_context(self.credentials.authority.cert_file, identity)

    async def call(self, path: str, client: ssl.SSLContext) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base_url + path, ssl=client) as response,
        ):
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


def make_credentials(folder: Path) -> Credentials:
    authority = create_authority(folder, "Test CA")
    return Credentials(
        authority=authority,
        server=authority.issue_server(folder),
        alice=authority.issue_client(folder, "alice"),
        mallory=self_signed_client(folder, "mallory"),
    )


def write_config(folder: Path, credentials: Credentials, port: int, **tls: Any) -> Path:
    settings = {
        "spark.jobserver.port": port,
        "spark.jobserver.work-dir": str(folder / "work"),
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.tls.cert-file": str(credentials.server.cert_file),
        "spark.jobserver.tls.key-file": str(credentials.server.key_file),
        "spark.jobserver.tls.client-auth": "optional",
        "spark.jobserver.tls.client-ca-file": str(credentials.authority.cert_file),
        "spark.jobserver.auth.mechanisms": ["certificate"],
        "spark.jobserver.auth.permissions.users.alice": ["jobs:read"],
        "spark.jobserver.auth.permissions.default": [],
        **{f"spark.jobserver.tls.{key.replace('_', '-')}": value for key, value in tls.items()},
    }
    config = folder / "server.conf"
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    return config


async def first_bytes(port: int, client: ssl.SSLContext) -> bytes:
    """What the server sends on a TLS connection on which the client sends nothing: b"" when it
    hangs up once it has seen the client's certificate (or its absence); a server that accepts the
    client would wait for a request instead, and this would time out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


@asynccontextmanager
async def running_tls_server(folder: Path, credentials: Credentials, **tls: Any) -> AsyncIterator[TlsSite]:
    """The real command serving https; stopped (killed if it will not stop) however the test ends."""
    site = TlsSite(credentials=credentials, port=free_port())
    server = ServerProcess(write_config(folder, credentials, site.port, **tls), folder / "server.log")
    try:
        # alice's certificate: the probe must pass even where client-auth = required
        await server.start(site.base_url, ssl_context=site.context(credentials.alice))
        yield site
        assert await server.stop() == 0
    finally:
        server.kill_if_running()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("certificates"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory, credentials: Credentials) -> AsyncIterator[TlsSite]:
    async with running_tls_server(tmp_path_factory.mktemp("tls-optional"), credentials) as running:
        yield running


async def test_a_certificate_from_the_ca_logs_in_as_its_common_name_with_its_permissions(
    site: TlsSite,
) -> None:
    alice = site.context(site.credentials.alice)

    assert await site.call("/jobs", alice) == (200, [])
    status, body = await site.call("/binaries", alice)
    assert status == 403
    assert body["status"] == "ERROR"
    assert "result" in body


async def test_without_a_client_certificate_the_api_answers_401_but_healthz_is_open(site: TlsSite) -> None:
    anonymous = site.context()

    status, body = await site.call("/jobs", anonymous)
    assert status == 401
    assert body["status"] == "ERROR"
    assert (await site.call("/healthz", anonymous))[0] == 200


async def test_a_certificate_not_from_the_ca_is_refused_in_the_handshake(site: TlsSite) -> None:
    mallory = site.context(site.credentials.mallory)
    # client-auth = optional means "a certificate may be absent", not "any certificate will do":
    # OpenSSL (SSL_VERIFY_PEER) fails the server's side of the handshake on a certificate it cannot
    # verify, and asyncio then closes the connection (without flushing OpenSSL's "unknown ca" alert).
    # mallory gets no HTTP answer at all, hence no 401 either: the client sees the connection end
    # (ServerDisconnectedError) or, when its request was already on the wire, a reset (ClientOSError).
    with pytest.raises(aiohttp.ClientError):
        await site.call("/jobs", mallory)
    assert await first_bytes(site.port, mallory) == b""


async def test_plain_http_on_the_tls_port_gets_no_api_answer(site: TlsSite) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    # The server takes the request for a broken ClientHello and closes the connection.
    assert not answer.startswith(b"HTTP/"), answer


async def test_a_client_that_does_not_trust_the_ca_fails_verification(site: TlsSite) -> None:
    untrusting = client_context(None, site.credentials.alice)  # the system's CAs only

    with pytest.raises(aiohttp.ClientConnectorCertificateError) as refused:
        await site.call("/healthz", untrusting)
    verification = refused.value.certificate_error
    assert isinstance(verification, ssl.SSLCertVerificationError)
    # The server sends the CA's certificate too (OpenSSL completes the chain from the client CAs it
    # trusts, here the same CA), but a self-signed root the client does not hold proves nothing.
    assert verification.verify_message == "self-signed certificate in certificate chain"


async def test_client_auth_required_refuses_a_handshake_without_a_client_certificate(
    tmp_path: Path, credentials: Credentials
) -> None:
    async with running_tls_server(tmp_path, credentials, client_auth="required") as required:
        alice = required.context(credentials.alice)
        assert (await required.call("/jobs", alice))[0] == 200

        anonymous = required.context()
        with pytest.raises(aiohttp.ClientError):
            await required.call("/healthz", anonymous)
        assert await first_bytes(required.port, anonymous) == b""


async def test_a_missing_certificate_file_stops_the_command_with_status_2_naming_it(
    tmp_path: Path, credentials: Credentials
) -> None:
    missing = tmp_path / "no-such-server.crt"
    config = write_config(tmp_path, credentials, free_port(), cert_file=str(missing))

    finished = await asyncio.to_thread(
        subprocess.run, [str(JOBSERVER), str(config)], capture_output=True, text=True, timeout=30, check=False
    )

    assert finished.returncode == 2, finished.stderr
    assert str(missing) in finished.stderr
