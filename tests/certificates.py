"""Certificates for TLS tests, made on the spot with ``cryptography``: a CA, certificates it signs
(a server's for 127.0.0.1 and localhost, clients' with a CN), and self-signed ones, written as PEM
files that ``ssl`` and the server's configuration read."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# EC keys: generated in a millisecond, where RSA keys take tens.
_CURVE = ec.SECP256R1()
_VALIDITY = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its key as PEM files."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA that signs certificates; ``cert_file`` is what a peer trusts."""

    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert_file: Path

    def issue_server(self, folder: Path, name: str = "server") -> Issued:
        """For 127.0.0.1 and localhost: hostname checks look at the SAN, never at the CN."""
        alternative_names = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        return self._issue(
            folder,
            name,
            common_name="localhost",
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            alternative_names=alternative_names,
        )

    def issue_client(self, folder: Path, common_name: str) -> Issued:
        return self._issue(
            folder, common_name, common_name=common_name, usage=ExtendedKeyUsageOID.CLIENT_AUTH
        )

    def _issue(
        self,
        folder: Path,
        name: str,
        *,
        common_name: str,
        usage: x509.ObjectIdentifier,
        alternative_names: x509.SubjectAlternativeName | None = None,
    ) -> Issued:
        key = ec.generate_private_key(_CURVE)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            _builder(subject, self.name, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            # Python 3.13's default contexts check X.509 strictly: they want this one
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if alternative_names is not None:
            builder = builder.add_extension(alternative_names, critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return _write(folder, name, certificate, key)


def create_authority(folder: Path, common_name: str = "Test CA") -> Authority:
    key = ec.generate_private_key(_CURVE)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    issued = _write(folder, common_name.replace(" ", "-").lower(), certificate, key)
    return Authority(name=name, key=key, cert_file=issued.cert_file)


def self_signed_client(folder: Path, common_name: str) -> Issued:
    key = ec.generate_private_key(_CURVE)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        _builder(name, name, key)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, f"{common_name}-self-signed", certificate, key)


def client_context(trusted_ca: Path | None, identity: Issued | None = None) -> ssl.SSLContext:
    """What an https client uses: trusting ``trusted_ca`` (None: the system's CAs only), presenting
    ``identity`` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=trusted_ca and str(trusted_ca))
    if identity is not None:
        context.load_cert_chain(identity.cert_file, identity.key_file)
    return context


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks that disagree a little
        .not_valid_after(now + _VALIDITY)
    )


def _write(folder: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_file=cert_file, key_file=key_file)
