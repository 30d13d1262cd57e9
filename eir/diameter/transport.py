"""asyncio transports for Diameter over TCP and SCTP: the only Diameter code that does I/O.

A :class:`DiameterNode` listens and connects; each connection is a :class:`PeerLink`, an
``asyncio.Protocol`` driving one sans-I/O :class:`~protocols.diameter.peer.PeerConnection`: bytes
from the socket go in, bytes it queues go out, and one loop timer follows ``next_deadline()``.

Requests from a peer reach the application in batches (every request cut from one read), so a
front end can decide a whole batch with one store round trip. The application answers each request
with :meth:`PeerLink.answer`, at once or later.

Back-pressure (nothing grows without bound):
- a peer that sends requests faster than the application answers them is no longer read once
  ``max_pending_requests`` are unanswered on its connection (reading resumes at half of that);
- a peer that does not read its answers (the transport's write buffer passes its high-water mark)
  is no longer read either, until its buffer drains;
- our own requests wait for one of ``max_in_flight`` slots per connection.

Fairness: after a read of :data:`YIELD_BYTES` or more (a peer far ahead of us), reading pauses until the
loop's next iteration. uvloop (libuv) otherwise reads a readable socket up to 32 times, 256 KB each, in one
callback: a backlog of a few MB was processed in one go, holding the loop for more than a second (measured:
1.3 s at 20k ECR/s on a slow VM), during which no timer ran, no other peer was read, and the register's
change feed timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import cast

from eir.net import sctp
from protocols.diameter import Message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter.errors import StateError
from protocols.diameter.events import (
    AnswerReceived,
    CapabilitiesRejected,
    ConnectionClosed,
    ConnectionOpened,
    DisconnectRequested,
    Event,
    PeerInfo,
    RequestReceived,
    RequestRejected,
    RequestTimedOut,
    WatchdogChanged,
)
from protocols.diameter.peer import PeerConfig, PeerConnection, Role
from protocols.diameter.peer_state import State
from protocols.diameter.registry import PeerRegistry

__all__ = [
    "DiameterNode",
    "LinkClosed",
    "NodeConfig",
    "PeerLink",
    "RequestHandler",
    "RequestTimeout",
    "StateError",
    "TransportKind",
]

log = logging.getLogger("eir.diameter")

#: A read at least this large yields the loop before the next one (see the module docstring).
YIELD_BYTES = 64 * 1024

#: Called with the link and every request cut from one read.
RequestHandler = Callable[["PeerLink", list[Message]], Awaitable[None] | None]


class TransportKind(enum.Enum):
    TCP = "tcp"
    SCTP = "sctp"


class RequestTimeout(TimeoutError):
    """No answer to our request in time (or the connection closed first)."""


class LinkClosed(ConnectionError):
    """The connection closed before the operation could complete."""


class PeerLink(asyncio.Protocol):
    """One transport connection to one peer."""

    def __init__(self, node: DiameterNode, role: Role, transport_kind: TransportKind) -> None:
        self.node = node
        self.kind = transport_kind
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.conn = PeerConnection(node.peer_config(self), role, loop.time(), e2e_seed=int(time.time()))
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[PeerInfo] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self._waiters: dict[int, asyncio.Future[Message]] = {}
        self._slots = asyncio.Semaphore(node.config.max_in_flight)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._read_paused = False
        self._write_paused = False
        self._yielding = False
        self._flush_pending = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.peername: str = "?"
        self.remote_address: str = ""

    # -------------------------------------------------------------- asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        peer = transport.get_extra_info("peername")
        self.peername = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.remote_address = str(peer[0]) if isinstance(peer, tuple) else ""
        sock = transport.get_extra_info("socket")
        if sock is not None and self.kind is TransportKind.TCP:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.node._links.add(self)
        if self.conn.role is Role.INITIATOR:
            self.conn.start(self._loop.time())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if len(data) >= YIELD_BYTES and not self._yielding:
            self._yielding = True
            self._update_reading()
            self._loop.call_soon(self._end_yield)
        now = self._loop.time()
        events = self.conn.receive_data(data, now)
        if events:
            # Answers given while dispatching go out with this flush, in this callback: no extra loop
            # callback and no second flush per read (answer() sees a flush pending).
            self._flush_pending = True
            try:
                self._dispatch(events)
            finally:
                self._flush()
        else:
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        events = self.conn.connection_lost(self._loop.time())
        self._dispatch(events)
        self._finish("transport closed" if exc is None else f"transport error: {exc}")

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # -------------------------------------------------------------- public API
    @property
    def peer(self) -> PeerInfo | None:
        return self.conn.peer

    async def request(self, msg: Message, timeout: float | None = None) -> Message:
        """Send an application request and wait for its answer (bounded in-flight per connection)."""
        await self.opened
        async with self._slots:
            if self.conn.state is not State.OPEN:
                raise LinkClosed(f"connection to {self.peername} is {self.conn.state.value}")
            hbh = self.conn.send_request(msg, self._loop.time(), timeout)
            fut: asyncio.Future[Message] = self._loop.create_future()
            self._waiters[hbh] = fut
            self._flush_soon()
            return await fut

    def send_request_nowait(self, msg: Message, timeout: float | None = None) -> asyncio.Future[Message]:
        """Fire a request without the in-flight semaphore (load generators manage their own window)."""
        hbh = self.conn.send_request(msg, self._loop.time(), timeout)
        fut: asyncio.Future[Message] = self._loop.create_future()
        self._waiters[hbh] = fut
        self._flush_soon()
        return fut

    def answer(self, answer: Message | bytes, request: Message) -> None:
        """Send the answer to ``request`` (no-op once the connection is closed)."""
        if self.conn.state in (State.OPEN, State.CLOSING):
            self.conn.send_answer(answer, request)
            self._flush_soon()
            if self._read_paused:
                self._update_reading()

    def answer_all(self, answers: Iterable[tuple[Message | bytes, Message]]) -> None:
        """:meth:`answer` each ``(answer, request)`` pair, then write them at once, in this callback.

        For answers given outside a read (after a store round trip, say): :meth:`answer` would leave the
        write to a callback of the next loop iteration.
        """
        if self.conn.state not in (State.OPEN, State.CLOSING):
            return
        send = self.conn.send_answer
        for answer, request in answers:
            send(answer, request)
        self._flush()
        if self._read_paused:
            self._update_reading()

    async def disconnect(self, cause: int = base.DisconnectCause.REBOOTING, timeout: float = 5.0) -> None:
        """DPR, wait for the DPA (or ``timeout``), close."""
        events = self.conn.disconnect(self._loop.time(), cause)
        self._dispatch(events)
        self._flush()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -------------------------------------------------------------- internals
    def _flush_soon(self) -> None:
        """Coalesce: everything queued in this loop iteration goes out in one write."""
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.conn.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        events = self.conn.handle_timer(self._loop.time())
        if events:
            self._dispatch(events)
        self._flush()

    def _end_yield(self) -> None:
        self._yielding = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        limit = self.node.config.max_pending_requests
        pending = self.conn.incoming_pending
        should_pause = self._write_paused or self._yielding or pending >= limit
        if should_pause and not self._read_paused:
            self.transport.pause_reading()
            self._read_paused = True
        elif self._read_paused and not self._write_paused and not self._yielding and pending <= limit // 2:
            self.transport.resume_reading()
            self._read_paused = False

    def _dispatch(self, events: Iterable[Event]) -> None:
        batch: list[Message] = []
        for ev in events:
            if isinstance(ev, RequestReceived):
                batch.append(ev.message)
            elif isinstance(ev, AnswerReceived):
                fut = self._waiters.pop(ev.message.hop_by_hop, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev.message)
            elif isinstance(ev, RequestTimedOut):
                fut = self._waiters.pop(ev.hop_by_hop, None)
                if fut is not None and not fut.done():
                    fut.set_exception(RequestTimeout(f"no answer to command {ev.command} in time"))
            elif isinstance(ev, ConnectionOpened):
                self._on_opened(ev.peer)
            elif isinstance(ev, ConnectionClosed):
                self._log("closed", reason=ev.reason)
                self._flush()
                self.abort()
                self._finish(ev.reason)
            elif isinstance(ev, CapabilitiesRejected):
                self._log("capabilities-rejected", result_code=ev.result_code, reason=ev.reason, by_peer=ev.by_peer)
                if not self.opened.done():
                    self.opened.set_exception(ConnectionRefusedError(f"CER/CEA failed: {ev.result_code} {ev.reason}"))
                    self.opened.exception()  # retrieved: a responder link has nobody awaiting it
            elif isinstance(ev, DisconnectRequested):
                self._log("dpr-received", cause=ev.cause)
            elif isinstance(ev, WatchdogChanged):
                self._log("watchdog", state=ev.state)
            elif isinstance(ev, RequestRejected):
                self.node.rejected += 1
                log.debug("request rejected peer=%s result_code=%s %s", self.peername, ev.error.result_code,
                          ev.error.message)
        if batch:
            self._update_reading()
            handler = self.node.handler
            if handler is None:
                return
            try:
                result = handler(self, batch)
            except Exception:  # a handler bug must not kill the connection and the answers queued before it
                log.exception("request handler failed")
                return
            if result is not None:
                task = self._loop.create_task(_run(result))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _on_opened(self, info: PeerInfo) -> None:
        registry = self.node.registry
        if self.conn.role is Role.INITIATOR:
            other = registry.opened(info.host, self)
            if other is not None:
                other.abort()
        self._log("open", peer_host=info.host, realm=info.realm, applications=sorted(info.applications))
        if not self.opened.done():
            self.opened.set_result(info)

    def _finish(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.node.registry.closed(self)
        self.node._links.discard(self)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(LinkClosed(f"connection closed: {reason}"))
        self._waiters.clear()
        if not self.opened.done():
            self.opened.set_exception(LinkClosed(f"connection closed before capabilities exchange: {reason}"))
            self.opened.exception()  # mark retrieved: callers that never awaited it are not at fault
        if not self.closed.done():
            self.closed.set_result(reason)

    def _log(self, event: str, **fields: object) -> None:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        log.info("peer_event=%s transport=%s remote=%s state=%s %s", event, self.kind.value, self.peername,
                 self.conn.state.value, extra)


async def _run(aw: Awaitable[None]) -> None:
    try:
        await aw
    except asyncio.CancelledError:
        raise
    except Exception:  # a handler bug must not kill the connection silently: log it with its trace
        log.exception("request handler failed")


@dataclass
class NodeConfig:
    """The node-wide settings: the sans-I/O peer template and the transport limits."""

    peer: PeerConfig
    max_in_flight: int = 1024
    max_pending_requests: int = 1024
    #: Origin-Host admission (RFC 6733 §5.3: refused with 3010 DIAMETER_UNKNOWN_PEER, then closed).
    allowed_peers: Callable[[PeerInfo], bool] | None = None
    #: Source address admission, checked at the CER too so the peer learns why (3010).
    allowed_addresses: Callable[[str], bool] | None = None


@dataclass
class DiameterNode:
    """A Diameter node: listeners, outgoing connections, the peer table, graceful shutdown."""

    config: NodeConfig
    handler: RequestHandler | None = None
    registry: PeerRegistry[PeerLink] = field(init=False)
    rejected: int = 0
    _links: set[PeerLink] = field(default_factory=set)
    _servers: list[asyncio.base_events.Server] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.registry = PeerRegistry(self.config.peer.capabilities.node.host)

    @property
    def links(self) -> set[PeerLink]:
        return set(self._links)

    def peer_config(self, link: PeerLink) -> PeerConfig:
        """The sans-I/O config of one connection: its admission goes through the registry."""
        allowed = self.config.allowed_peers
        addresses = self.config.allowed_addresses

        def admit(info: PeerInfo) -> int | None:
            if (allowed is not None and not allowed(info)) or (
                addresses is not None and not addresses(link.remote_address)
            ):
                return int(base.ResultCode.DIAMETER_UNKNOWN_PEER)
            verdict = self.registry.admit(info, link)
            if verdict.drop is not None:
                verdict.drop.abort()
            return None if verdict.refuse is None else int(verdict.refuse)

        return replace(self.config.peer, admit=admit)

    async def listen(
        self, host: str, port: int, kind: TransportKind = TransportKind.TCP, *, reuse_port: bool = False
    ) -> asyncio.base_events.Server:
        """Accept connections on ``host:port`` (SCTP raises SctpUnavailableError on kernels without it)."""
        loop = asyncio.get_running_loop()
        if kind is TransportKind.SCTP:
            sock = sctp.create_sctp_listener(host, port, reuse_port=reuse_port)
            server = await loop.create_server(lambda: PeerLink(self, Role.RESPONDER, kind), sock=sock)
        else:
            server = await loop.create_server(
                lambda: PeerLink(self, Role.RESPONDER, kind), host, port, reuse_port=reuse_port or None,
                reuse_address=True,
            )
        self._servers.append(server)
        return server

    async def connect(
        self, host: str, port: int, kind: TransportKind = TransportKind.TCP, *, peer_host: str | None = None,
        timeout: float = 10.0,
    ) -> PeerLink:
        """Connect, exchange capabilities, and return the open link (raises on refusal or timeout)."""
        loop = asyncio.get_running_loop()

        def factory() -> PeerLink:
            link = PeerLink(self, Role.INITIATOR, kind)
            if peer_host is not None:
                self.registry.initiating(peer_host, link)
            return link

        if kind is TransportKind.SCTP:
            sock = await sctp.open_sctp_connection_socket(host, port, timeout=timeout)
            _, link = await loop.create_connection(factory, sock=sock)
        else:
            _, link = await asyncio.wait_for(loop.create_connection(factory, host, port), timeout)
        await asyncio.wait_for(asyncio.shield(link.opened), timeout)
        return link

    def stop_listening(self) -> None:
        """Stop accepting connections; the open ones are left as they are."""
        for server in self._servers:
            server.close()

    async def close(self, cause: int = base.DisconnectCause.REBOOTING, timeout: float = 5.0) -> None:
        """Graceful shutdown: stop accepting, DPR to every open peer, wait for DPAs, close the rest."""
        self.stop_listening()
        links = list(self._links)
        await asyncio.gather(*(link.disconnect(cause, timeout) for link in links), return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()

