"""The servers sharing the metadata store: this one's heartbeat, where the others are, and the
adoption of a silent one's contexts.

Every ``peers.heartbeat-interval`` each server writes its row (``servers``: REST URL, bus
endpoint, key fingerprint, heartbeat time) and reads the others'. A request about a context whose
owner is a live peer is forwarded there (``ServedByPeer``, raised for the web layer); a peer
silent for ``peers.timeout`` is dead, and the first live server holding the same key to notice
adopts its active contexts with one compare-and-set transaction (``Store.adopt_contexts``): their
owner becomes this server, and they wait ``reattach-grace`` for their drivers, as after a restart.
Drivers learn the bus endpoints of the live servers sharing their server's key
(``ServerEndpoints``) and try them in turn when their server goes silent. A reset of the contexts
goes to every live peer too (``reset_others``, through the web layer's signed ``PeerCall``).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from jobserver.common.config import Settings
from jobserver.common.errors import PeerUnavailable, ServedByPeer, StoreUnavailable
from jobserver.common.records import Caller, ContextRecord, ServerRecord, utc_now
from jobserver.drivers import tokens
from jobserver.storage import Store

log = structlog.get_logger(__name__)

# A request to a peer server, signed as a forwarded one (given by the web layer):
# (where, method, path, body, content type, as whom) -> status, JSON
PeerCall = Callable[[ServedByPeer, str, str, bytes, str, Caller | None], Awaitable[tuple[int, Any]]]


class Peers:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        key: bytes,
        *,
        adopt: Callable[[ContextRecord], Awaitable[None]],
        endpoints_changed: Callable[[list[str]], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._fingerprint = tokens.fingerprint(key)
        self._adopt = adopt
        self._endpoints_changed = endpoints_changed
        self._servers: dict[str, ServerRecord] = {}
        self._endpoints: list[str] = []
        self._peer_call: PeerCall | None = None  # given by the web layer (reach_with)
        self.bus_endpoint = ""  # known once the bus is bound
        # Told when this server finds that a peer adopted its contexts (it was frozen, or cut off
        # from the store, for longer than peers.timeout).
        self.on_adopted: Callable[[], Awaitable[None]] | None = None

    @property
    def server_id(self) -> str:
        return self._settings.server_id

    async def beat(self) -> str | None:
        """Tell the peers this server is alive (also clears an adoption: it is back); who had
        adopted this server since its last beat, if anyone did."""
        return await self._store.beat(
            ServerRecord(
                server_id=self.server_id,
                rest_url=self._settings.peer_advertised_url,
                bus_endpoint=self.bus_endpoint,
                key_fingerprint=self._fingerprint,
                heartbeat_time=utc_now(),
            )
        )

    async def leave(self) -> None:
        """A stop that ended every context: nothing is left to adopt."""
        try:
            await self._store.remove_server(self.server_id)
        except StoreUnavailable as error:
            log.warning("server_leave_failed", error=error.message)

    def endpoints(self) -> list[str]:
        """The bus endpoints a driver of this server may go to: this server's first, then the
        live peers' that share its key."""
        return list(self._endpoints) or [self.bus_endpoint]

    async def check_owner(self, record: ContextRecord) -> None:
        """For a context in a non-final state that this server does not hold: ``ServedByPeer``
        when its owner is a live peer, ``PeerUnavailable`` while a silent one's contexts await
        adoption. Returns when this server should answer as before (its own, or an owner that
        never wrote a heartbeat)."""
        owner = record.owner
        if owner is None or owner == self.server_id:
            return
        peer = self._servers.get(owner)
        if peer is None or not self._alive(peer):
            await self._refresh()  # a peer that just started or just beat
            peer = self._servers.get(owner)
        if peer is None:
            return
        if peer.key_fingerprint != self._fingerprint:
            raise PeerUnavailable(
                f"context {record.name} runs on server {owner}, which does not share this server's key"
            )
        if self._alive(peer):
            raise ServedByPeer(
                f"context {record.name} runs on server {owner}", server_id=owner, url=peer.rest_url
            )
        raise PeerUnavailable(
            f"context {record.name} runs on server {owner}, which is not answering; another server"
            " takes it over shortly"
        )

    def reach_with(self, peer_call: PeerCall) -> None:
        self._peer_call = peer_call

    async def reset_others(self, *, sync: bool, caller: Caller | None) -> None:
        """``PUT /contexts?reset=reboot`` on every other live server sharing this one's key, at
        once, as ``caller``: a forwarded reset, so each resets only its own contexts.
        PeerUnavailable when one could not."""
        if self._peer_call is None:
            return
        await self._refresh()
        others = [
            ServedByPeer(
                f"the contexts of server {peer.server_id}", server_id=peer.server_id, url=peer.rest_url
            )
            for peer in self._live_peers()
            if peer.rest_url
        ]
        path = f"/contexts?reset=reboot&sync={str(sync).lower()}"
        calls = (self._peer_call(peer, "PUT", path, b"", "application/json", caller) for peer in others)
        answers = await asyncio.gather(*calls, return_exceptions=True)
        for peer, answer in zip(others, answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer
            status, body = answer
            if status != 200:
                result = body.get("result") if isinstance(body, dict) else body
                raise PeerUnavailable(f"{peer.message} were not reset: {status} {result}")

    def _alive(self, peer: ServerRecord) -> bool:
        return peer.heartbeat_time >= self._silent_since()

    def _silent_since(self) -> datetime.datetime:
        return utc_now() - datetime.timedelta(seconds=self._settings.peer_timeout_s)

    async def _refresh(self) -> None:
        self._servers = {server.server_id: server for server in await self._store.list_servers()}
        live = [server.bus_endpoint for server in self._live_peers() if server.bus_endpoint]
        endpoints = [self.bus_endpoint, *sorted(live)] if self.bus_endpoint else sorted(live)
        if endpoints != self._endpoints:
            self._endpoints = endpoints
            self._endpoints_changed(endpoints)

    def _live_peers(self) -> list[ServerRecord]:
        """The other servers, as last read, that are alive and share this server's key."""
        return [
            server
            for server in self._servers.values()
            if server.server_id != self.server_id
            and server.key_fingerprint == self._fingerprint
            and self._alive(server)
        ]

    async def run(self) -> None:
        """Every heartbeat interval: beat, read the peers, adopt what a dead one left."""
        while True:
            await asyncio.sleep(self._settings.peer_heartbeat_interval_s)
            try:
                await self._refresh()
                adopter = await self.beat()  # read and cleared at once: no adoption slips between
                if adopter is not None and self.on_adopted is not None:
                    log.warning("server_was_adopted", adopter=adopter)
                    await self.on_adopted()
                await self._adopt_from_dead_peers()
            except StoreUnavailable as error:
                log.warning("peer_heartbeat_failed", error=error.message)

    async def _adopt_from_dead_peers(self) -> None:
        silent_since = self._silent_since()
        for peer in list(self._servers.values()):
            if (
                peer.server_id == self.server_id
                or peer.adopted_by is not None
                or peer.key_fingerprint != self._fingerprint
                or peer.heartbeat_time >= silent_since
            ):
                continue
            records = await self._store.adopt_contexts(
                peer.server_id, self.server_id, silent_since=silent_since
            )
            if not records:  # another server was first, or it had nothing running
                continue
            log.warning(
                "peer_adopted",
                peer=peer.server_id,
                contexts=len(records),
                silent_s=round((utc_now() - peer.heartbeat_time).total_seconds(), 1),
            )
            for record in records:
                await self._adopt(record)
