"""Real network services for authentication tests, without internet: a small LDAP server that ldap3's
client binds to and searches, and an OIDC issuer that signs RS256 tokens and serves its JWKS.

Both listen on 127.0.0.1 (a free port chosen by the OS) and run on an asyncio loop of their own in a
background thread, so they answer while the test's thread, or the test's own event loop, is blocked in
a synchronous client (ldap3's SYNC strategy and PyJWT's PyJWKClient both use blocking sockets).
Use them as context managers, or call ``start()`` (returns the port) and ``stop()`` in a ``finally``.

The LDAP server speaks just enough LDAPv3 for a login: simple bind, search (scopes base, one, subtree;
filters and, or, not, equality, substrings, presence), unbind. Every other request is answered with
unwillingToPerform (53). Messages are decoded and encoded with ldap3's own ASN.1 definitions and
pyasn1's BER codec. DNs are compared case-insensitively, ignoring spaces around ``,`` and ``=``;
escaped commas inside a DN are not supported.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from ldap3.core import results
from ldap3.protocol import rfc4511
from ldap3.strategy.base import BaseStrategy
from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1.type.namedtype import NamedType, NamedTypes
from pyasn1.type.tag import Tag, tagClassContext, tagFormatConstructed

_T = TypeVar("_T")
_LOGGER = logging.getLogger(__name__)
_START_STOP_TIMEOUT_S = 10.0
_MAX_MESSAGE_BYTES = 1024 * 1024
# LDAP result codes (RFC 4511, 4.1.9).
_SUCCESS: int = results.RESULT_SUCCESS
_INVALID_CREDENTIALS: int = results.RESULT_INVALID_CREDENTIALS
_UNWILLING_TO_PERFORM: int = results.RESULT_UNWILLING_TO_PERFORM
_AUTH_METHOD_NOT_SUPPORTED: int = results.RESULT_AUTH_METHOD_NOT_SUPPORTED
_NO_SUCH_OBJECT: int = results.RESULT_NO_SUCH_OBJECT
_SIZE_LIMIT_EXCEEDED: int = results.RESULT_SIZE_LIMIT_EXCEEDED
# Values of these attributes are DNs, so they match as DNs do (case and spacing ignored).
_DN_ATTRIBUTES = frozenset({"member", "uniquemember", "memberof", "owner", "manager", "seealso"})
_PASSWORD_ATTRIBUTE = "userpassword"
# What each refused request is answered with: (response's name in ProtocolOp, response's type).
_REFUSED_REQUESTS: dict[str, tuple[str, type[Any]]] = {
    "modifyRequest": ("modifyResponse", rfc4511.ModifyResponse),
    "addRequest": ("addResponse", rfc4511.AddResponse),
    "delRequest": ("delResponse", rfc4511.DelResponse),
    "modDNRequest": ("modDNResponse", rfc4511.ModifyDNResponse),
    "compareRequest": ("compareResponse", rfc4511.CompareResponse),
    "extendedReq": ("extendedResp", rfc4511.ExtendedResponse),
}

Directory = Mapping[str, Mapping[str, Sequence[str | bytes]]]


class _LoopThread:
    """An event loop running in a daemon thread of its own; ``run`` waits for a coroutine on it."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_STOP_TIMEOUT_S)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_STOP_TIMEOUT_S)
        self._loop.close()


def _with_alternative(spec: Any, name: str, alternative: Any) -> Any:
    """A copy of the constructed ASN.1 type ``spec`` whose component ``name`` has type ``alternative``."""
    named_types = [
        NamedType(name, alternative) if named.name == name else named
        for named in spec.componentType.namedTypes
    ]
    return spec.clone(componentType=NamedTypes(*named_types))


# ldap3 completes the recursion of its Filter on the classes after Filter's alternatives were built: enough
# to encode, but pyasn1 cannot decode an and/or/not from it. So requests are decoded with a filter left
# undecoded (Any), and a filter one level at a time, each nested filter left undecoded in turn.
_FILTER_LEVEL_SPEC = _with_alternative(
    _with_alternative(
        _with_alternative(rfc4511.Filter(), "and", rfc4511.And(componentType=univ.Any())),
        "or",
        rfc4511.Or(componentType=univ.Any()),
    ),
    "notFilter",
    univ.Any().subtype(explicitTag=Tag(tagClassContext, tagFormatConstructed, 2)),
)
_REQUEST_SPEC = _with_alternative(
    rfc4511.LDAPMessage(),
    "protocolOp",
    _with_alternative(
        rfc4511.ProtocolOp(),
        "searchRequest",
        _with_alternative(rfc4511.SearchRequest(), "filter", univ.Any()),
    ),
)


def _normalized_dn(dn: str) -> tuple[str, ...]:
    if not dn.strip():
        return ()
    rdns = []
    for rdn in dn.split(","):
        attribute, _, value = rdn.partition("=")
        rdns.append(f"{attribute.strip().casefold()}={value.strip().casefold()}")
    return tuple(rdns)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _same_value(attribute: str, stored: bytes, asserted: bytes) -> bool:
    if attribute == _PASSWORD_ATTRIBUTE:
        return stored == asserted
    if attribute in _DN_ATTRIBUTES:
        return _normalized_dn(stored.decode()) == _normalized_dn(asserted.decode())
    return stored.decode().casefold() == asserted.decode().casefold()


@dataclass(frozen=True, slots=True)
class BindAttempt:
    """One bind request the LDAP server answered: the DN given (empty when anonymous) and the result."""

    dn: str
    result_code: int

    @property
    def succeeded(self) -> bool:
        return self.result_code == _SUCCESS


@dataclass(frozen=True, slots=True)
class _Entry:
    dn: str
    path: tuple[str, ...]
    attributes: dict[str, tuple[str, list[bytes]]]  # casefolded name -> (name as written, values)

    def values(self, attribute: str) -> list[bytes]:
        return self.attributes.get(attribute.casefold(), ("", []))[1]


class _UnsupportedFilterError(Exception):
    pass


def _matches(encoded_filter: Any, entry: _Entry) -> bool:
    search_filter, _ = decoder.decode(encoded_filter.asOctets(), asn1Spec=_FILTER_LEVEL_SPEC)
    kind, value = search_filter.getName(), search_filter.getComponent()
    if kind == "and":
        return all(_matches(part, entry) for part in value)
    if kind == "or":
        return any(_matches(part, entry) for part in value)
    if kind == "notFilter":
        return not _matches(value, entry)
    if kind == "present":
        attribute = str(value).casefold()
        return attribute == "objectclass" or bool(entry.values(attribute))
    if kind == "equalityMatch":
        attribute = str(value["attributeDesc"]).casefold()
        asserted = value["assertionValue"].asOctets()
        return any(_same_value(attribute, stored, asserted) for stored in entry.values(attribute))
    if kind == "substringFilter":
        return any(
            _substrings_match(value["substrings"], stored) for stored in entry.values(str(value["type"]))
        )
    raise _UnsupportedFilterError(f"filter {kind} is not supported by this test server")


def _substrings_match(substrings: Any, stored: bytes) -> bool:
    text, position = stored.decode().casefold(), 0
    for substring in substrings:
        kind, part = substring.getName(), substring.getComponent().asOctets().decode().casefold()
        if kind == "initial" and not text.startswith(part):
            return False
        if kind == "final":
            return text.endswith(part) and len(text) - len(part) >= position
        found = text.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def _message(message_id: int, operation_name: str, operation: Any) -> rfc4511.LDAPMessage:
    message = rfc4511.LDAPMessage()
    message["messageID"] = message_id
    message["protocolOp"][operation_name] = operation
    return message


def _result(
    message_id: int, operation_name: str, result_type: type[Any], code: int, diagnostic: str = ""
) -> rfc4511.LDAPMessage:
    result = result_type()
    result["resultCode"] = code
    result["matchedDN"] = ""
    result["diagnosticMessage"] = diagnostic
    return _message(message_id, operation_name, result)


class LdapServer:
    """An LDAPv3 server over TCP holding ``directory``: ``{dn: {attribute: [values]}}``, passwords
    (plain text) in ``userPassword``. The directory is read on every request, so a test may change it
    between requests. ``binds`` lists every bind answered, in order; ``userPassword`` is never returned
    by a search, as directories' access rules usually hide it. A search base must be an entry or an
    ancestor of one (else noSuchObject, 32); base ``""`` with scope base is the root DSE."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.port = 0
        self.binds: list[BindAttempt] = []
        self.search_count = 0
        self._loop_thread: _LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def bind_count(self) -> int:
        return len(self.binds)

    def start(self) -> int:
        self._loop_thread = _LoopThread("ldap-test-server")
        self._server = self._loop_thread.run(asyncio.start_server(self._serve_connection, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        if self._loop_thread is None:
            return
        with contextlib.suppress(Exception):
            self._loop_thread.run(self._close())
        self._loop_thread.close()
        self._loop_thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for connection in self._connections:
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._answer_messages(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            _LOGGER.exception("ldap_test_server_failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer_messages(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while chunk := await reader.read(65536):
            buffer += chunk
            # A message may arrive in pieces, or several in one read: decode each one once it is whole.
            while 0 < (size := BaseStrategy.compute_ldap_message_size(buffer)) <= len(buffer):
                request, _ = decoder.decode(buffer[:size], asn1Spec=_REQUEST_SPEC)
                buffer = buffer[size:]
                responses = self._answer(request)
                if responses is None:
                    return
                writer.write(b"".join(encoder.encode(response) for response in responses))
            await writer.drain()
            if len(buffer) > _MAX_MESSAGE_BYTES:
                raise PyAsn1Error(f"an LDAP message of more than {_MAX_MESSAGE_BYTES} bytes")

    def _answer(self, request: rfc4511.LDAPMessage) -> list[rfc4511.LDAPMessage] | None:
        """The responses to one request; None to close the connection (unbind)."""
        message_id = int(request["messageID"])
        name, operation = request["protocolOp"].getName(), request["protocolOp"].getComponent()
        if name == "unbindRequest":
            return None
        if name == "abandonRequest":
            return []
        if name == "bindRequest":
            code = self._bind(operation)
            return [_result(message_id, "bindResponse", rfc4511.BindResponse, code)]
        if name == "searchRequest":
            return self._search(message_id, operation)
        if name not in _REFUSED_REQUESTS:
            raise PyAsn1Error(f"unexpected LDAP operation {name}")
        response_name, response_type = _REFUSED_REQUESTS[name]
        unwilling = _UNWILLING_TO_PERFORM
        return [_result(message_id, response_name, response_type, unwilling, f"{name} is not supported")]

    def _entries(self) -> list[_Entry]:
        entries = []
        for dn, attributes in list(self.directory.items()):
            folded = {
                name.casefold(): (name, [_as_bytes(value) for value in values])
                for name, values in attributes.items()
            }
            entries.append(_Entry(dn, _normalized_dn(dn), folded))
        return entries

    def _bind(self, request: Any) -> int:
        dn = str(request["name"])
        authentication = request["authentication"]
        if authentication.getName() != "simple":
            code = _AUTH_METHOD_NOT_SUPPORTED
        else:
            password = authentication.getComponent().asOctets()
            code = self._check_password(dn, password)
        self.binds.append(BindAttempt(dn, code))
        return code

    def _check_password(self, dn: str, password: bytes) -> int:
        if not dn and not password:
            return _SUCCESS
        if not password:
            # An "unauthenticated bind" (a DN, no password) would succeed without proof; refuse it.
            return _UNWILLING_TO_PERFORM
        path = _normalized_dn(dn)
        for entry in self._entries():
            if entry.path == path and password in entry.values(_PASSWORD_ATTRIBUTE):
                return _SUCCESS
        return _INVALID_CREDENTIALS

    def _search(self, message_id: int, request: Any) -> list[rfc4511.LDAPMessage]:
        self.search_count += 1
        base, scope = _normalized_dn(str(request["baseObject"])), int(request["scope"])
        entries = self._entries()
        if base and not any(entry.path[len(entry.path) - len(base) :] == base for entry in entries):
            code = _NO_SUCH_OBJECT
            return [_result(message_id, "searchResDone", rfc4511.SearchResultDone, code)]
        in_scope = [entry for entry in entries if self._in_scope(entry.path, base, scope)]
        if not base and scope == 0:
            in_scope = [self._root_entry(entries)]
        try:
            matching = [entry for entry in in_scope if _matches(request["filter"], entry)]
        except _UnsupportedFilterError as error:
            code = _UNWILLING_TO_PERFORM
            return [_result(message_id, "searchResDone", rfc4511.SearchResultDone, code, str(error))]
        size_limit, code = int(request["sizeLimit"]), _SUCCESS
        if 0 < size_limit < len(matching):
            matching, code = matching[:size_limit], _SIZE_LIMIT_EXCEEDED
        selection = [str(attribute).casefold() for attribute in request["attributes"]]
        types_only = bool(request["typesOnly"])
        responses = [self._result_entry(message_id, entry, selection, types_only) for entry in matching]
        return [*responses, _result(message_id, "searchResDone", rfc4511.SearchResultDone, code)]

    @staticmethod
    def _in_scope(path: tuple[str, ...], base: tuple[str, ...], scope: int) -> bool:
        under_base = path[len(path) - len(base) :] == base if base else True
        depth = len(path) - len(base)
        return under_base and {0: depth == 0, 1: depth == 1}.get(scope, depth >= 0)

    @staticmethod
    def _root_entry(entries: list[_Entry]) -> _Entry:
        """The root DSE, which ldap3 reads after binding: the directory's top entries as naming contexts."""
        paths = {entry.path for entry in entries}
        tops = [entry.dn.encode() for entry in entries if entry.path[1:] not in paths]
        attributes = {
            "namingcontexts": ("namingContexts", tops),
            "supportedldapversion": ("supportedLDAPVersion", [b"3"]),
        }
        return _Entry("", (), attributes)

    @staticmethod
    def _result_entry(
        message_id: int, entry: _Entry, selection: list[str], types_only: bool
    ) -> rfc4511.LDAPMessage:
        everything = not selection or "*" in selection
        result = rfc4511.SearchResultEntry()
        result["object"] = entry.dn
        for folded, (name, values) in entry.attributes.items():
            if folded == _PASSWORD_ATTRIBUTE or not (everything or folded in selection):
                continue
            attribute = rfc4511.PartialAttribute()
            attribute["type"] = name
            attribute["vals"].extend([] if types_only else values)
            result["attributes"].append(attribute)
        return _message(message_id, "searchResEntry", result)


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key: sign with it to make a token no published key verifies."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcIssuer:
    """An OpenID Connect issuer for bearer-token tests: serves ``/.well-known/openid-configuration`` and
    ``/jwks.json`` over HTTP, and signs RS256 tokens whose ``iss`` is its URL. ``jwks_status`` other than
    200 makes the JWKS endpoint fail with that status (an identity provider outage)."""

    JWKS_PATH = "/jwks.json"
    DISCOVERY_PATH = "/.well-known/openid-configuration"

    def __init__(self, *, audience: str = "jobserver", groups_claim: str = "groups") -> None:
        self.audience = audience
        self.groups_claim = groups_claim
        self.port = 0
        self.jwks_fetch_count = 0
        self.discovery_fetch_count = 0
        self.jwks_status = 200
        self.key = new_rsa_key()
        self.kid = "test-key-1"
        self.published_keys: dict[str, rsa.RSAPrivateKey] = {self.kid: self.key}
        self._kid_numbers = itertools.count(2)
        self._loop_thread: _LoopThread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the OIDC issuer has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return self.url + self.JWKS_PATH

    @property
    def discovery_url(self) -> str:
        return self.url + self.DISCOVERY_PATH

    def start(self) -> int:
        self._loop_thread = _LoopThread("oidc-test-issuer")
        self.port = self._loop_thread.run(self._open())
        return self.port

    def stop(self) -> None:
        if self._loop_thread is None:
            return
        if self._runner is not None:
            with contextlib.suppress(Exception):
                self._loop_thread.run(self._runner.cleanup())
        self._loop_thread.close()
        self._loop_thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def rotate_key(self, *, keep_previous: bool = True) -> str:
        """Sign with a new key from now on and publish it (beside the old one if ``keep_previous``)."""
        self.key, self.kid = new_rsa_key(), f"test-key-{next(self._kid_numbers)}"
        if not keep_previous:
            self.published_keys.clear()
        self.published_keys[self.kid] = self.key
        return self.kid

    def token(
        self,
        *,
        sub: str = "alice",
        groups: Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        expires_in_s: float = 300.0,
        issuer: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed RS256 token; by default from this issuer, for ``self.audience``, with this issuer's
        current key and kid. Override any part to make a token a verifier must refuse."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer if issuer is None else issuer,
            "sub": sub,
            "aud": self.audience if audience is None else audience,
            "iat": now,
            "exp": now + int(expires_in_s),
            "jti": uuid.uuid4().hex,
        }
        if groups is not None:
            claims[self.groups_claim] = list(groups)
        claims.update(extra_claims or {})
        headers = {"kid": self.kid if kid is None else kid}
        return jwt.encode(claims, self.key if key is None else key, algorithm="RS256", headers=headers)

    def expired_token(self, *, sub: str = "alice", groups: Sequence[str] | None = None) -> str:
        """Expired two minutes ago, beyond any clock-skew leeway a verifier is likely to allow."""
        return self.token(sub=sub, groups=groups, expires_in_s=-120)

    def token_from_unknown_key(self, *, sub: str = "alice", kid: str | None = None) -> str:
        """Signed by a key this issuer never published. With the default (published) kid the verifier
        finds a key and the signature check fails; with another kid no key is found at all."""
        return self.token(sub=sub, key=new_rsa_key(), kid=kid)

    async def _open(self) -> int:
        app = web.Application()
        app.router.add_get(self.JWKS_PATH, self._serve_jwks)
        app.router.add_get(self.DISCOVERY_PATH, self._serve_discovery)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _serve_jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetch_count += 1
        if self.jwks_status != 200:
            return web.json_response({"error": "unavailable"}, status=self.jwks_status)
        keys = []
        for kid, key in list(self.published_keys.items()):
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return web.json_response({"keys": keys})

    async def _serve_discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetch_count += 1
        document = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code"],
        }
        return web.json_response(document)
