"""HTTPS for the REST API (``spark.jobserver.tls``): the server's certificate, TLS 1.2 at least,
and optionally clients' certificates, verified against the configured CAs (their subject CN is then
a login when ``auth.mechanisms`` lists ``certificate``)."""

from __future__ import annotations

import ssl

from jobserver.common.errors import ConfigError
from jobserver.common.security_settings import TlsSettings

_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """None when TLS is off; ConfigError naming the file that cannot be used."""
    if tls.cert_file is None or tls.key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=tls.key_password or None)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"spark.jobserver.tls: cannot use {tls.cert_file} / {tls.key_file}: {error}"
        ) from error
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"spark.jobserver.tls.client-ca-file {tls.client_ca_file}: {error}") from error
    context.verify_mode = _VERIFY_MODES[tls.client_auth]
    return context
