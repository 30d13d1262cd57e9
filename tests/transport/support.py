"""Loopback TCP helpers for the transport tests: nodes on free ports, a raw codec-level client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from eir.diameter.transport import DiameterNode, NodeConfig, PeerLink, TransportKind
from protocols.diameter import Message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter.events import Event
from protocols.diameter.framer import Framer
from protocols.diameter.message import decode_message
from protocols.diameter.peer import PeerConfig
from tests.peer.helpers import EIR, MME, caps, cer, eca, ecr

WAIT = 10.0  # generous bound on every wait: a hang fails, slowness does not

__all__ = ["WAIT", "RawClient", "Recorder", "eca", "ecr", "eventually", "node_pair", "peer_config", "record_events",
           "server_link"]


def peer_config(local: Any = EIR, **kw: Any) -> PeerConfig:
    from tests.peer.helpers import DICT

    return PeerConfig(caps(local), DICT, **kw)


@dataclass
class Recorder:
    """A request handler: records every batch; answers at once unless ``hold`` is set."""

    hold: bool = False
    batches: list[list[Message]] = field(default_factory=list)
    held: list[tuple[PeerLink, Message]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    def __call__(self, link: PeerLink, batch: list[Message]) -> None:
        self.batches.append(batch)
        self.arrived.set()
        for req in batch:
            if self.hold:
                self.held.append((link, req))
            else:
                link.answer(eca(req), req)

    def release(self) -> None:
        self.hold = False
        held, self.held = self.held, []
        for link, req in held:
            link.answer(eca(req), req)


async def eventually(cond: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait (polling the loop) until ``cond()`` holds; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


def server_link(node: DiameterNode) -> PeerLink:
    (link,) = node.links
    return link


def record_events(link: PeerLink) -> list[Event]:
    """Tap a link's event dispatch (the events the sans-I/O connection reported)."""
    seen: list[Event] = []
    original = link._dispatch

    def tap(events: Any) -> None:
        events = list(events)
        seen.extend(events)
        original(events)

    link._dispatch = tap  # type: ignore[method-assign]
    return seen


@contextlib.asynccontextmanager
async def node_pair(handler: Any = None, *, server_cfg: NodeConfig | None = None,
                    client_cfg: NodeConfig | None = None,
                    kind: TransportKind = TransportKind.TCP) -> AsyncIterator[tuple[DiameterNode, DiameterNode, int]]:
    """A listening EIR node on a free loopback port and an MME node (not yet connected)."""
    server = DiameterNode(server_cfg or NodeConfig(peer_config(EIR)), handler)
    client = DiameterNode(client_cfg or NodeConfig(peer_config(MME)))
    srv = await server.listen("127.0.0.1", 0, kind)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield server, client, port
    finally:
        await client.close(timeout=2.0)
        await server.close(timeout=2.0)
        for link in client.links | server.links:
            link.abort()


class RawClient:
    """A codec-level TCP client: sends a CER built with the codec and reads frames itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer()
        self.frames: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawClient:
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        client = cls(reader, writer)
        writer.write(encode_message(cer()))
        cea = await client.read_message()
        assert cea.command == base.CER.code and cea.get(base.RESULT_CODE) == 2001, cea
        return client

    async def read_message(self) -> Message:
        async with asyncio.timeout(WAIT):
            while not self.frames:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("connection closed")
                self.frames += self.framer.feed(data)
        return decode_message(self.frames.pop(0))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def pipelined_ecrs(n: int, start_hbh: int = 1) -> bytes:
    out = []
    for i in range(n):
        m = ecr(f"{49015420000000 + i % 1000000:014d}", origin=MME, e2e=i + 1)
        m.hop_by_hop = start_hbh + i
        out.append(encode_message(m))
    return b"".join(out)
