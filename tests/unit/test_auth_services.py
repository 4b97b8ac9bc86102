"""The LDAP server and OIDC issuer that authentication tests log in against, checked with the real
client libraries the job server uses: ldap3 (SYNC strategy) and PyJWT's PyJWKClient."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import jwt
import ldap3
import pytest
from ldap3.core.exceptions import LDAPBindError, LDAPSessionTerminatedByServerError, LDAPStartTLSError
from ldap3.operation.bind import bind_operation
from ldap3.operation.search import search_operation
from ldap3.protocol import rfc4511
from ldap3.strategy.base import BaseStrategy
from pyasn1.codec.ber import decoder, encoder

from tests.auth_services import LdapServer, OidcIssuer, new_rsa_key

BASE_DN = "dc=example,dc=org"
ALICE_DN = f"uid=alice,ou=people,{BASE_DN}"
BOB_DN = f"uid=bob,ou=people,{BASE_DN}"
DIRECTORY = {
    BASE_DN: {"objectClass": ["dcObject", "organization"], "dc": ["example"]},
    f"ou=people,{BASE_DN}": {"objectClass": ["organizationalUnit"], "ou": ["people"]},
    ALICE_DN: {
        "objectClass": ["inetOrgPerson"],
        "uid": ["alice"],
        "cn": ["Alice Archer"],
        "mail": ["alice@example.org"],
        "userPassword": ["alice-secret"],
    },
    BOB_DN: {
        "objectClass": ["inetOrgPerson"],
        "uid": ["bob"],
        "cn": ["Bob Baker"],
        "userPassword": ["bob-secret"],
    },
    f"ou=groups,{BASE_DN}": {"objectClass": ["organizationalUnit"], "ou": ["groups"]},
    f"cn=spark-admins,ou=groups,{BASE_DN}": {
        "objectClass": ["groupOfNames"],
        "cn": ["spark-admins"],
        "member": [ALICE_DN],
    },
    f"cn=spark-users,ou=groups,{BASE_DN}": {
        "objectClass": ["groupOfNames"],
        "cn": ["spark-users"],
        "member": [ALICE_DN, BOB_DN],
    },
    f"cn=alice-lookalikes,ou=groups,{BASE_DN}": {"objectClass": ["posixGroup"], "cn": ["alice-lookalikes"]},
}
ANSWER_DEADLINE_S = 5  # ldap3 wants whole seconds


@pytest.fixture(autouse=True)
def no_service_thread_outlives_its_test() -> Iterator[None]:
    yield
    names = {thread.name for thread in threading.enumerate()}
    assert not names & {"ldap-test-server", "oidc-test-issuer"}


@pytest.fixture
def ldap_server() -> Iterator[LdapServer]:
    server = LdapServer(
        {dn: {name: list(values) for name, values in entry.items()} for dn, entry in DIRECTORY.items()}
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oidc_issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience="jobserver") as issuer:
        yield issuer


def connect(server: LdapServer, user: str | None = None, password: str | None = None) -> ldap3.Connection:
    return ldap3.Connection(
        ldap3.Server(server.url, connect_timeout=ANSWER_DEADLINE_S),
        user,
        password,
        auto_bind=True,
        receive_timeout=ANSWER_DEADLINE_S,
    )


def search_dns(connection: ldap3.Connection, search_filter: str, **options: Any) -> list[str]:
    connection.search(BASE_DN, search_filter, **options)
    return sorted(entry.entry_dn for entry in connection.entries)


# LDAP


def test_bind_with_the_right_password_succeeds_and_is_counted(ldap_server: LdapServer) -> None:
    connection = connect(ldap_server, ALICE_DN, "alice-secret")
    try:
        assert connection.bound
        assert connection.extend.standard.who_am_i() is None  # an extended operation: refused, still bound
    finally:
        connection.unbind()
    assert ldap_server.bind_count == 1
    assert ldap_server.binds[0].dn == ALICE_DN
    assert ldap_server.binds[0].succeeded


@pytest.mark.parametrize(
    ("user", "password"),
    [(ALICE_DN, "wrong"), (ALICE_DN, "bob-secret"), (f"uid=nobody,ou=people,{BASE_DN}", "alice-secret")],
)
def test_bind_with_a_wrong_password_or_unknown_user_is_invalid_credentials(
    ldap_server: LdapServer, user: str, password: str
) -> None:
    connection = ldap3.Connection(
        ldap3.Server(ldap_server.url), user, password, receive_timeout=ANSWER_DEADLINE_S
    )
    try:
        assert not connection.bind()
        assert connection.result["result"] == 49
        assert connection.result["description"] == "invalidCredentials"
    finally:
        connection.unbind()
    assert [(attempt.dn, attempt.succeeded) for attempt in ldap_server.binds] == [(user, False)]


def test_failed_automatic_bind_raises_in_ldap3(ldap_server: LdapServer) -> None:
    with pytest.raises(LDAPBindError, match="invalidCredentials"):
        connect(ldap_server, ALICE_DN, "wrong")


def test_anonymous_bind_and_differently_written_dns_are_accepted(ldap_server: LdapServer) -> None:
    anonymous = connect(ldap_server)
    spelled_differently = connect(ldap_server, "UID=Alice, OU=People, DC=Example, DC=Org", "alice-secret")
    try:
        assert anonymous.bound
        assert spelled_differently.bound
    finally:
        anonymous.unbind()
        spelled_differently.unbind()
    assert [attempt.dn for attempt in ldap_server.binds] == ["", "UID=Alice, OU=People, DC=Example, DC=Org"]


def test_group_search_returns_the_groups_of_a_member(ldap_server: LdapServer) -> None:
    connection = connect(ldap_server, BOB_DN, "bob-secret")
    searches_before = ldap_server.search_count  # ldap3 reads the root DSE after binding
    try:
        for member, groups in [(ALICE_DN, ["spark-admins", "spark-users"]), (BOB_DN, ["spark-users"])]:
            connection.search(BASE_DN, f"(&(objectClass=groupOfNames)(member={member}))", attributes=["cn"])
            assert sorted(str(entry.cn) for entry in connection.entries) == groups
    finally:
        connection.unbind()
    assert ldap_server.search_count == searches_before + 2


def test_search_by_uid_returns_the_entry_with_requested_attributes_and_never_the_password(
    ldap_server: LdapServer,
) -> None:
    connection = connect(ldap_server, BOB_DN, "bob-secret")
    try:
        connection.search(BASE_DN, "(uid=ALICE)", attributes=["cn", "mail", "userPassword"])
        [entry] = connection.response
        assert entry["dn"] == ALICE_DN
        returned = {name: values for name, values in entry["raw_attributes"].items() if values}
        assert returned == {"cn": [b"Alice Archer"], "mail": [b"alice@example.org"]}
        connection.search(BASE_DN, "(uid=alice)", attributes=ldap3.ALL_ATTRIBUTES)
        assert set(connection.response[0]["raw_attributes"]) == {"objectClass", "uid", "cn", "mail"}
        assert search_dns(connection, "(uid=carol)") == []
    finally:
        connection.unbind()


def test_search_scopes_and_filters(ldap_server: LdapServer) -> None:
    people = f"ou=people,{BASE_DN}"
    connection = connect(ldap_server)
    try:
        connection.search(people, "(objectClass=*)", search_scope=ldap3.BASE)
        assert [entry.entry_dn for entry in connection.entries] == [people]
        connection.search(people, "(objectClass=*)", search_scope=ldap3.LEVEL)
        assert sorted(entry.entry_dn for entry in connection.entries) == [ALICE_DN, BOB_DN]
        assert len(search_dns(connection, "(objectClass=*)")) == len(DIRECTORY)
        assert search_dns(connection, "(|(uid=alice)(uid=bob))") == [ALICE_DN, BOB_DN]
        assert search_dns(connection, "(&(objectClass=inetOrgPerson)(!(uid=alice)))") == [BOB_DN]
        assert search_dns(connection, "(&(mail=*)(|(cn=Alice*)(!(!(uid=nobody)))))") == [ALICE_DN]
        assert search_dns(connection, "(cn=*rche*)") == [ALICE_DN]
        assert not connection.search(f"ou=elsewhere,{BASE_DN}", "(objectClass=*)")
        assert connection.result["description"] == "noSuchObject"
    finally:
        connection.unbind()


def test_start_tls_and_writes_are_refused_as_unwilling_to_perform(ldap_server: LdapServer) -> None:
    connection = connect(ldap_server, ALICE_DN, "alice-secret")
    try:
        with pytest.raises(LDAPStartTLSError, match="unwillingToPerform"):
            connection.start_tls()
        assert not connection.modify(ALICE_DN, {"cn": [(ldap3.MODIFY_REPLACE, ["Mallory"])]})
        assert connection.result["description"] == "unwillingToPerform"
        assert search_dns(connection, "(cn=Alice Archer)") == [ALICE_DN]
    finally:
        connection.unbind()


def test_connections_are_served_concurrently(ldap_server: LdapServer) -> None:
    # A server answering one connection at a time would never answer the second while the first is open.
    first = connect(ldap_server, ALICE_DN, "alice-secret")
    second = connect(ldap_server, BOB_DN, "bob-secret")
    try:
        assert search_dns(second, "(uid=alice)") == [ALICE_DN]
        assert search_dns(first, "(uid=bob)") == [BOB_DN]
    finally:
        first.unbind()
        second.unbind()

    def log_in(index: int) -> bool:
        user, password = (ALICE_DN, "alice-secret") if index % 2 else (BOB_DN, "bob-secret")
        connection = connect(ldap_server, user, password)
        try:
            return search_dns(connection, f"(member={user})") != []
        finally:
            connection.unbind()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(log_in, range(16)))
    assert ldap_server.bind_count == 18


def _ldap_message(message_id: int, operation_name: str, operation: Any) -> bytes:
    message = rfc4511.LDAPMessage()
    message["messageID"] = message_id
    message["protocolOp"][operation_name] = operation
    return bytes(encoder.encode(message))


def _receive_messages(client: socket.socket, count: int) -> list[Any]:
    buffer, messages = b"", list[Any]()
    while len(messages) < count:
        size = BaseStrategy.compute_ldap_message_size(buffer)
        if 0 < size <= len(buffer):
            message, _ = decoder.decode(buffer[:size], asn1Spec=rfc4511.LDAPMessage())
            messages.append(message)
            buffer = buffer[size:]
            continue
        chunk = client.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    return messages


def test_messages_split_across_reads_or_sharing_one_are_all_answered(ldap_server: LdapServer) -> None:
    bind = _ldap_message(1, "bindRequest", bind_operation(3, ldap3.SIMPLE, ALICE_DN, "alice-secret"))
    search = _ldap_message(
        2,
        "searchRequest",
        search_operation(
            BASE_DN, "(uid=bob)", ldap3.SUBTREE, ldap3.DEREF_NEVER, ["uid"], False, 0, 0, False, None
        ),
    )
    with socket.create_connection(("127.0.0.1", ldap_server.port), timeout=ANSWER_DEADLINE_S) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for offset in range(len(bind)):
            client.sendall(bind[offset : offset + 1])
        [bound] = _receive_messages(client, 1)
        client.sendall(search + search[:5])  # one whole search and the start of the next
        client.sendall(search[5:])
        answers = _receive_messages(client, 4)
    assert int(bound["protocolOp"]["bindResponse"]["resultCode"]) == 0
    assert [answer["protocolOp"].getName() for answer in answers] == ["searchResEntry", "searchResDone"] * 2
    assert str(answers[0]["protocolOp"]["searchResEntry"]["object"]) == BOB_DN


def test_stop_closes_open_connections(ldap_server: LdapServer) -> None:
    connection = connect(ldap_server, ALICE_DN, "alice-secret")
    try:
        ldap_server.stop()
        with pytest.raises(LDAPSessionTerminatedByServerError):
            connection.search(BASE_DN, "(uid=alice)")
    finally:
        connection.unbind()


def test_directory_changes_apply_to_the_next_bind() -> None:
    directory = {ALICE_DN: {"uid": ["alice"], "userPassword": ["alice-secret"]}}
    with LdapServer(directory) as server:
        connect(server, ALICE_DN, "alice-secret").unbind()
        directory[ALICE_DN]["userPassword"] = ["changed"]
        with pytest.raises(LDAPBindError):
            connect(server, ALICE_DN, "alice-secret")
        connect(server, ALICE_DN, "changed").unbind()
    assert [attempt.succeeded for attempt in server.binds] == [True, False, True]


async def test_ldap_server_answers_a_blocking_client_called_from_async_code(ldap_server: LdapServer) -> None:
    def bind_and_search() -> list[str]:
        connection = connect(ldap_server, ALICE_DN, "alice-secret")
        try:
            return search_dns(connection, "(uid=bob)")
        finally:
            connection.unbind()

    assert bind_and_search() == [BOB_DN]  # even blocking this loop: the server has a loop of its own
    assert await asyncio.to_thread(bind_and_search) == [BOB_DN]


# OIDC


def verify(issuer: OidcIssuer, token: str, client: jwt.PyJWKClient | None = None) -> dict[str, Any]:
    signing_key = (client or jwt.PyJWKClient(issuer.jwks_url)).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, signing_key.key, algorithms=["RS256"], audience="jobserver", issuer=issuer.issuer
    )
    return claims


def test_a_good_token_is_accepted_with_its_claims(oidc_issuer: OidcIssuer) -> None:
    token = oidc_issuer.token(
        sub="alice", groups=["spark-admins"], extra_claims={"email": "alice@example.org"}
    )
    claims = verify(oidc_issuer, token)
    assert jwt.get_unverified_header(token)["kid"] == oidc_issuer.kid
    assert claims["sub"] == "alice"
    assert claims["groups"] == ["spark-admins"]
    assert claims["email"] == "alice@example.org"
    assert claims["iss"] == oidc_issuer.url
    assert 0 < claims["exp"] - time.time() <= 300
    assert oidc_issuer.jwks_fetch_count == 1


def test_discovery_document_names_the_issuer_and_its_jwks(oidc_issuer: OidcIssuer) -> None:
    with urllib.request.urlopen(oidc_issuer.discovery_url, timeout=ANSWER_DEADLINE_S) as response:
        document = json.load(response)
    assert document["issuer"] == oidc_issuer.issuer
    assert document["jwks_uri"] == oidc_issuer.jwks_url
    assert oidc_issuer.discovery_fetch_count == 1


@pytest.mark.parametrize(
    ("make_token", "error"),
    [
        (lambda issuer: issuer.expired_token(), jwt.ExpiredSignatureError),
        (lambda issuer: issuer.token(audience="someone-else"), jwt.InvalidAudienceError),
        (lambda issuer: issuer.token(issuer="https://impostor.example"), jwt.InvalidIssuerError),
        (lambda issuer: issuer.token_from_unknown_key(), jwt.InvalidSignatureError),
        (lambda issuer: issuer.token(key=new_rsa_key()), jwt.InvalidSignatureError),
        (lambda issuer: issuer.token_from_unknown_key(kid="unknown"), jwt.PyJWKClientError),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "unknown-key", "other-key", "unknown-kid"],
)
def test_bad_tokens_are_refused(oidc_issuer: OidcIssuer, make_token: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify(oidc_issuer, make_token(oidc_issuer))


def test_a_rotated_key_is_found_by_fetching_the_jwks_again(oidc_issuer: OidcIssuer) -> None:
    # PyJWKClient refetches for an unknown kid only after a cooldown (30 s by default) since its last fetch.
    client = jwt.PyJWKClient(oidc_issuer.jwks_url, cooldown_duration=0)
    client_in_cooldown = jwt.PyJWKClient(oidc_issuer.jwks_url)
    old_token = oidc_issuer.token()
    assert verify(oidc_issuer, old_token, client)["sub"] == "alice"
    assert verify(oidc_issuer, old_token, client_in_cooldown)["sub"] == "alice"
    new_kid = oidc_issuer.rotate_key()
    new_token = oidc_issuer.token(sub="bob")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify(oidc_issuer, new_token, client)["sub"] == "bob"
    assert verify(oidc_issuer, old_token, client)["sub"] == "alice"
    with pytest.raises(jwt.PyJWKClientError):
        verify(oidc_issuer, new_token, client_in_cooldown)
    assert oidc_issuer.jwks_fetch_count == 3
    oidc_issuer.rotate_key(keep_previous=False)
    with pytest.raises(jwt.PyJWKClientError):
        verify(oidc_issuer, old_token)


def test_a_failing_jwks_endpoint_is_a_client_connection_error(oidc_issuer: OidcIssuer) -> None:
    oidc_issuer.jwks_status = 503
    with pytest.raises(jwt.PyJWKClientConnectionError):
        verify(oidc_issuer, oidc_issuer.token())
    assert oidc_issuer.jwks_fetch_count == 1


async def test_oidc_issuer_serves_async_clients(oidc_issuer: OidcIssuer) -> None:
    async with aiohttp.ClientSession() as session, session.get(oidc_issuer.jwks_url) as response:
        keys = (await response.json())["keys"]
    assert [(key["kid"], key["alg"], key["kty"]) for key in keys] == [(oidc_issuer.kid, "RS256", "RSA")]
    assert verify(oidc_issuer, oidc_issuer.token())["sub"] == "alice"  # a blocking client works too
