"""``spark.jobserver.tls`` read into TlsSettings: a half-made TLS configuration stops the server at
start-up with the key's name, rather than serving plain HTTP or accepting any client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobserver.common.config import load_settings
from jobserver.common.errors import ConfigError


def tls(**values: Any) -> dict[str, Any]:
    return {f"spark.jobserver.tls.{key.replace('_', '-')}": value for key, value in values.items()}


def test_tls_is_off_by_default() -> None:
    settings = load_settings(None, {})

    assert not settings.tls.enabled
    assert settings.tls.client_auth == "none"


def test_a_certificate_and_key_turn_tls_on_with_client_certificates_checked(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        tls(
            cert_file=str(tmp_path / "server.crt"),
            key_file=str(tmp_path / "server.key"),
            client_auth="Required",
            client_ca_file=str(tmp_path / "ca.crt"),
        ),
    )

    assert settings.tls.enabled
    assert settings.tls.cert_file == tmp_path / "server.crt"
    assert settings.tls.client_ca_file == tmp_path / "ca.crt"
    assert settings.tls.client_auth == "required"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cert_file": "server.crt"}, "both cert-file and key-file"),
        ({"key_file": "server.key"}, "both cert-file and key-file"),
        (
            {"cert_file": "server.crt", "key_file": "server.key", "client_auth": "optional"},
            "client-auth needs client-ca-file",
        ),
        (
            {"cert_file": "server.crt", "key_file": "server.key", "client_auth": "sometimes"},
            "client-auth must be one of none, optional, required",
        ),
        ({"client_auth": "required", "client_ca_file": "ca.crt"}, "client-auth needs cert-file and key-file"),
    ],
    ids=[
        "cert-without-key",
        "key-without-cert",
        "client-auth-without-ca",
        "unknown-mode",
        "client-auth-without-tls",
    ],
)
def test_an_incomplete_tls_configuration_is_a_config_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, tls(**values))
