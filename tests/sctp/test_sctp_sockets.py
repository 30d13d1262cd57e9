"""Real kernel SCTP sockets from eir.net.sctp (RFC 6733 §2.1, RFC 6458): no mocks.

Skipped on a kernel without SCTP; `make test-sctp` runs them inside a throwaway QEMU guest.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from eir.net.sctp import (
    DIAMETER_PPID,
    IPPROTO_SCTP,
    create_sctp_connection_socket,
    create_sctp_listener,
    enable_recv_rcvinfo,
    get_default_ppid,
    open_sctp_connection_socket,
    recv_with_ppid,
    sctp_available,
    set_default_ppid,
)

pytestmark = pytest.mark.sctp

TIMEOUT = 5.0


def _diameter_like(n: int, size: int) -> bytes:
    """A message framed like a Diameter header: version 1, 24-bit length, then filler."""
    body = bytes((n + i) % 251 for i in range(size - 4))
    return struct.pack("!B3s", 1, size.to_bytes(3, "big")) + body


@contextlib.contextmanager
def sctp_pair(host: str = "127.0.0.1", **kwargs: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected (client, server-side accepted) pair of blocking SCTP sockets with a timeout."""
    listener = create_sctp_listener(host, 0, **kwargs)
    enable_recv_rcvinfo(listener)  # inherited by the accepted socket
    port = listener.getsockname()[1]
    client = create_sctp_connection_socket(host, port, **kwargs)
    try:
        listener.settimeout(TIMEOUT)
        server, _peer = listener.accept()
        try:
            client.settimeout(TIMEOUT)
            server.settimeout(TIMEOUT)
            enable_recv_rcvinfo(client)
            yield client, server
        finally:
            server.close()
    finally:
        client.close()
        listener.close()


def _ipv6_loopback_or_skip() -> None:
    if not socket.has_ipv6:
        pytest.skip("Python built without IPv6")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM, IPPROTO_SCTP) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback ::1 in this kernel/guest: {exc}")


def test_sctp_available() -> None:
    assert sctp_available() is True


def test_listener_socket_shape() -> None:
    with create_sctp_listener("127.0.0.1", 0) as listener:
        assert listener.family == socket.AF_INET
        assert listener.type == socket.SOCK_STREAM
        assert listener.proto == IPPROTO_SCTP
        assert listener.getblocking() is False
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert get_default_ppid(listener) == DIAMETER_PPID
        assert listener.getsockname()[1] != 0


def test_connection_socket_is_connected_and_non_blocking() -> None:
    with create_sctp_listener("127.0.0.1", 0) as listener:
        port = listener.getsockname()[1]
        with create_sctp_connection_socket("127.0.0.1", port) as client:
            assert client.getblocking() is False
            assert client.proto == IPPROTO_SCTP
            assert client.getpeername() == ("127.0.0.1", port)
            assert get_default_ppid(client) == DIAMETER_PPID


def test_round_trip_ipv4() -> None:
    with sctp_pair() as (client, server):
        client.sendall(b"ping over sctp")
        assert server.recv(65536) == b"ping over sctp"
        server.sendall(b"pong over sctp")
        assert client.recv(65536) == b"pong over sctp"


def test_plain_send_carries_ppid_46_both_ways() -> None:
    with sctp_pair() as (client, server):
        assert get_default_ppid(server) == DIAMETER_PPID  # inherited from the listener
        for i in range(3):
            msg = _diameter_like(i, 20 + 16 * i)
            client.send(msg)
            assert recv_with_ppid(server) == (msg, DIAMETER_PPID)
            server.send(msg[::-1])
            assert recv_with_ppid(client) == (msg[::-1], DIAMETER_PPID)


def test_ppid_is_what_we_set() -> None:
    """The PPID really comes from SCTP_DEFAULT_SEND_PARAM: another value, a change, and the 0 default."""
    with sctp_pair(ppid=47) as (client, server):
        client.send(b"dtls-ish")
        assert recv_with_ppid(server) == (b"dtls-ish", 47)
        set_default_ppid(client, DIAMETER_PPID)
        client.send(b"diameter")
        assert recv_with_ppid(server) == (b"diameter", DIAMETER_PPID)
        set_default_ppid(client, 0xDEADBEEF)
        client.send(b"big")
        assert recv_with_ppid(server) == (b"big", 0xDEADBEEF)

    # A bare SCTP socket (not from our helpers) sends PPID 0: the helper is what makes it 46.
    with create_sctp_listener("127.0.0.1", 0) as listener:
        enable_recv_rcvinfo(listener)
        listener.settimeout(TIMEOUT)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP) as bare:
            bare.settimeout(TIMEOUT)
            bare.connect(listener.getsockname())
            server, _ = listener.accept()
            with server:
                server.settimeout(TIMEOUT)
                bare.send(b"no ppid")
                assert recv_with_ppid(server) == (b"no ppid", 0)


def test_ppid_46_on_the_wire_in_network_byte_order() -> None:
    """Capture the DATA chunk with a raw IPPROTO_SCTP socket and read the PPID bytes themselves."""
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
    except PermissionError as exc:
        pytest.skip(f"raw sockets need CAP_NET_RAW: {exc}")
    with raw, sctp_pair() as (client, server):
        raw.settimeout(TIMEOUT)
        payload = b"EIR-WIRE-CHECK-" + bytes(range(17))
        client.send(payload)
        assert recv_with_ppid(server) == (payload, DIAMETER_PPID)
        client_port = client.getsockname()[1]
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert time.monotonic() < deadline, "no SCTP DATA chunk with our payload was captured"
            packet = raw.recv(65536)
            ihl = (packet[0] & 0x0F) * 4
            sctp = packet[ihl:]
            src_port = struct.unpack_from("!H", sctp, 0)[0]
            if src_port != client_port:
                continue
            offset = 12  # SCTP common header (RFC 9260 §3.1)
            found = None
            while offset + 4 <= len(sctp):
                ctype, _flags, clen = struct.unpack_from("!BBH", sctp, offset)
                if ctype == 0 and clen >= 16:  # DATA chunk (RFC 9260 §3.3.1)
                    ppid_bytes = sctp[offset + 12 : offset + 16]
                    user_data = sctp[offset + 16 : offset + clen]
                    if user_data == payload:
                        found = ppid_bytes
                offset += max(4, (clen + 3) & ~3)
            if found is not None:
                assert found == b"\x00\x00\x00\x2e"  # 46, big-endian on the wire
                break


def test_large_message_is_reassembled() -> None:
    with sctp_pair() as (client, server):
        big = _diameter_like(7, 100_000)
        client.sendall(big)
        data, ppid = recv_with_ppid(server, 16384)
        assert ppid == DIAMETER_PPID
        assert data == big


def test_peer_close_reads_eof() -> None:
    with sctp_pair() as (client, server):
        client.close()
        assert recv_with_ppid(server) == (b"", 0)


def test_ipv6_loopback_round_trip_and_ppid() -> None:
    _ipv6_loopback_or_skip()
    with sctp_pair("::1") as (client, server):
        assert client.family == socket.AF_INET6
        client.send(b"v6 hello")
        assert recv_with_ppid(server) == (b"v6 hello", DIAMETER_PPID)
        server.send(b"v6 answer")
        assert recv_with_ppid(client) == (b"v6 answer", DIAMETER_PPID)


def test_reuse_port_lets_two_listeners_share_a_port() -> None:
    with create_sctp_listener("127.0.0.1", 0, reuse_port=True) as first:
        port = first.getsockname()[1]
        assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        with create_sctp_listener("127.0.0.1", port, reuse_port=True) as second:
            assert second.getsockname()[1] == port


def test_listener_without_reuse_port_conflicts() -> None:
    with create_sctp_listener("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        with pytest.raises(OSError) as info:
            create_sctp_listener("127.0.0.1", port)
        assert info.value.errno == errno.EADDRINUSE


def test_connect_refused_closes_and_raises() -> None:
    with create_sctp_listener("127.0.0.1", 0) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(OSError):
        create_sctp_connection_socket("127.0.0.1", port, timeout=TIMEOUT)


def test_bad_ppid_and_non_sctp_socket_are_rejected() -> None:
    with pytest.raises(ValueError):
        create_sctp_listener("127.0.0.1", 0, ppid=1 << 32)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, pytest.raises(ValueError):
        set_default_ppid(tcp, DIAMETER_PPID)


# --------------------------------------------------------------------------- asyncio (stdlib loop)


class Recorder(asyncio.Protocol):
    """Records every data_received() chunk; optionally answers each chunk with a reversed copy."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.chunks: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.changed.set()
        if self.echo:
            assert self.transport is not None
            self.transport.write(data[::-1])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    async def wait_for_chunks(self, n: int) -> list[bytes]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.chunks) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.chunks


def _assert_stdlib_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.get_running_loop()
    assert type(loop).__module__.startswith("asyncio."), f"SCTP needs the stdlib loop, got {type(loop)}"
    return loop


MESSAGES = [_diameter_like(i, size) for i, size in enumerate([20, 64, 1500, 4096, 20, 9000, 333])]


async def test_asyncio_server_and_client_message_framing() -> None:
    """create_server(sock=listener) + create_connection(sock=client): one data_received per message."""
    loop = _assert_stdlib_loop()
    servers: list[Recorder] = []

    def factory() -> Recorder:
        proto = Recorder(echo=True)
        servers.append(proto)
        return proto

    server = await loop.create_server(factory, sock=create_sctp_listener("127.0.0.1", 0))
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: Recorder(echo=False), sock=create_sctp_connection_socket("127.0.0.1", port)
        )
        try:
            for msg in MESSAGES:  # written back to back: SCTP must keep the boundaries
                transport.write(msg)
            got = await client.wait_for_chunks(len(MESSAGES))
            assert got == [m[::-1] for m in MESSAGES]
            assert servers[0].chunks == MESSAGES
        finally:
            transport.close()
        await asyncio.wait_for(servers[0].closed, TIMEOUT)


async def test_asyncio_server_writes_carry_ppid_46() -> None:
    loop = _assert_stdlib_loop()
    server = await loop.create_server(lambda: Recorder(echo=True), sock=create_sctp_listener("127.0.0.1", 0))
    async with server:
        port = server.sockets[0].getsockname()[1]
        client = create_sctp_connection_socket("127.0.0.1", port)
        with client:
            enable_recv_rcvinfo(client)
            client.settimeout(TIMEOUT)
            for msg in MESSAGES[:3]:
                client.send(msg)
                got = await asyncio.to_thread(recv_with_ppid, client)
                assert got == (msg[::-1], DIAMETER_PPID)


async def test_asyncio_client_writes_carry_ppid_46() -> None:
    loop = _assert_stdlib_loop()
    listener = create_sctp_listener("127.0.0.1", 0)
    enable_recv_rcvinfo(listener)
    listener.setblocking(True)
    listener.settimeout(TIMEOUT)
    with listener:
        port = listener.getsockname()[1]
        sock = await open_sctp_connection_socket("127.0.0.1", port)
        assert sock.getblocking() is False
        transport, _client = await loop.create_connection(lambda: Recorder(echo=False), sock=sock)
        try:
            conn, _ = await asyncio.to_thread(listener.accept)
            with conn:
                conn.settimeout(TIMEOUT)
                for msg in MESSAGES:
                    transport.write(msg)
                for msg in MESSAGES:
                    got = await asyncio.to_thread(recv_with_ppid, conn)
                    assert got == (msg, DIAMETER_PPID)
        finally:
            transport.close()


async def test_asyncio_ipv6_round_trip() -> None:
    _ipv6_loopback_or_skip()
    loop = _assert_stdlib_loop()
    server = await loop.create_server(lambda: Recorder(echo=True), sock=create_sctp_listener("::1", 0))
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(
            lambda: Recorder(echo=False), sock=await open_sctp_connection_socket("::1", port)
        )
        try:
            for msg in MESSAGES[:4]:
                transport.write(msg)
            assert await client.wait_for_chunks(4) == [m[::-1] for m in MESSAGES[:4]]
        finally:
            transport.close()
