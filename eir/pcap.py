"""A small, fast libpcap writer for TCP conversations, without capture privileges.

Writes the classic libpcap format (global header magic ``0xa1b2c3d4``, version 2.4, a 16-byte
record header per packet; the tcpdump project's "libpcap file format", draft-ietf-opsawg-pcap)
with link type 1 (Ethernet). Each payload becomes one Ethernet/IPv4 (RFC 791) or Ethernet/IPv6
(RFC 8200) frame carrying one TCP segment (RFC 793) with correct checksums, sequence and
acknowledgement numbers, so dissectors such as tshark reassemble and decode the stream without
"previous segment not captured" or checksum warnings. A conversation starts with the SYN, SYN-ACK,
ACK handshake (RFC 793 §3.4) and ends with a FIN from each side, each acknowledged (§3.5).

Usage::

    with PcapWriter("run.pcap") as writer:
        conv = writer.tcp_conversation(("127.0.0.1", 40000), ("127.0.0.1", 3868), ts=t0)
        conv.client_sends(cer_bytes, t0 + 0.001)
        conv.server_sends(cea_bytes, t0 + 0.002)
        conv.close(t0 + 0.003)
"""

from __future__ import annotations

import ipaddress
import struct
from types import TracebackType
from typing import BinaryIO

__all__ = ["LINKTYPE_ETHERNET", "PcapWriter", "TcpConversation", "internet_checksum"]

#: Link type in the global header: IEEE 802.3 Ethernet (tcpdump.org link-layer header types).
LINKTYPE_ETHERNET = 1
_PCAP_MAGIC = 0xA1B2C3D4
_SNAPLEN = 262144

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_MACS = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"  # locally administered dst, src
_IPV4 = struct.Struct(">BBHHHBBH4s4s")
_IPV6 = struct.Struct(">IHBB16s16s")
_TCP = struct.Struct(">HHIIBBHHH")
_PSEUDO4 = struct.Struct(">4s4sBBH")
_PSEUDO6 = struct.Struct(">16s16sIxxxB")
_PROTO_TCP = 6
_TTL = 64
_WINDOW = 65535

# TCP control bits (RFC 793 §3.1).
FIN = 0x01
SYN = 0x02
PSH = 0x08
ACK = 0x10

Endpoint = tuple[str, int]


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement of the one's complement sum of ``data`` (RFC 791 §3.1, RFC 1071).

    Since 2^16 = 1 (mod 2^16 - 1), the one's complement sum of the 16-bit words is the big-endian
    integer of the data modulo 0xFFFF: one C-level operation instead of a Python loop.
    """
    if len(data) & 1:
        data += b"\0"
    n = int.from_bytes(data, "big")
    if not n:
        return 0xFFFF
    total = n % 0xFFFF or 0xFFFF
    return ~total & 0xFFFF


class PcapWriter:
    """Writes a libpcap file; ``target`` is a path or a binary file object (left open if given)."""

    __slots__ = ("_file", "_ip_id", "_owned", "_write")

    def __init__(self, target: str | BinaryIO, *, snaplen: int = _SNAPLEN) -> None:
        if isinstance(target, str):
            self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 (closed by close())
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._write = self._file.write
        self._ip_id = 0
        self._write(_GLOBAL.pack(_PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        self._file.flush()
        if self._owned:
            self._file.close()

    def write_frame(self, frame: bytes, ts: float) -> None:
        """Write one link-layer frame with timestamp ``ts`` (seconds since the Unix epoch)."""
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        n = len(frame)
        self._write(_RECORD.pack(sec, usec, n, n) + frame)

    def tcp_conversation(
        self,
        client: Endpoint,
        server: Endpoint,
        ts: float,
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        handshake: bool = True,
    ) -> TcpConversation:
        """Start a TCP conversation between two IPv4 or two IPv6 endpoints; writes the handshake."""
        conv = TcpConversation(self, client, server, client_isn, server_isn)
        if handshake:
            conv.handshake(ts)
        return conv

    def _next_ip_id(self) -> int:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id


class TcpConversation:
    """One TCP connection: tracks both sides' sequence numbers (RFC 793 §3.3)."""

    __slots__ = ("_c", "_c_ip", "_next", "_s", "_s_ip", "_v6", "_writer", "closed")

    def __init__(
        self, writer: PcapWriter, client: Endpoint, server: Endpoint, client_isn: int, server_isn: int
    ) -> None:
        c_ip = ipaddress.ip_address(client[0])
        s_ip = ipaddress.ip_address(server[0])
        if c_ip.version != s_ip.version:
            raise ValueError("client and server must both be IPv4 or both IPv6")
        self._writer = writer
        self._v6 = c_ip.version == 6
        self._c_ip = c_ip.packed
        self._s_ip = s_ip.packed
        # Per direction: (source ip, dest ip, source port, dest port); _next[i] = next seq of side i.
        self._c = (self._c_ip, self._s_ip, client[1], server[1])
        self._s = (self._s_ip, self._c_ip, server[1], client[1])
        self._next = [client_isn & 0xFFFFFFFF, server_isn & 0xFFFFFFFF]
        self.closed = False

    def handshake(self, ts: float) -> None:
        """SYN, SYN-ACK, ACK: each SYN consumes one sequence number (RFC 793 §3.3)."""
        c, s = self._next
        self._segment(0, SYN, c, 0, b"", ts)
        self._segment(1, SYN | ACK, s, c + 1, b"", ts)
        self._next = [(c + 1) & 0xFFFFFFFF, (s + 1) & 0xFFFFFFFF]
        self._segment(0, ACK, self._next[0], self._next[1], b"", ts)

    def client_sends(self, data: bytes, ts: float) -> None:
        """One segment from client to server carrying ``data`` (PSH, ACK)."""
        self._send(0, data, ts)

    def server_sends(self, data: bytes, ts: float) -> None:
        """One segment from server to client carrying ``data`` (PSH, ACK)."""
        self._send(1, data, ts)

    def close(self, ts: float, *, by_client: bool = True) -> None:
        """FIN from one side, FIN-ACK from the other, final ACK (RFC 793 §3.5)."""
        if self.closed:
            return
        a = 0 if by_client else 1
        b = 1 - a
        n = self._next
        self._segment(a, FIN | ACK, n[a], n[b], b"", ts)
        n[a] = (n[a] + 1) & 0xFFFFFFFF
        self._segment(b, FIN | ACK, n[b], n[a], b"", ts)
        n[b] = (n[b] + 1) & 0xFFFFFFFF
        self._segment(a, ACK, n[a], n[b], b"", ts)
        self.closed = True

    def _send(self, side: int, data: bytes, ts: float) -> None:
        if self.closed:
            raise ValueError("the conversation is closed")
        n = self._next
        self._segment(side, PSH | ACK, n[side], n[1 - side], data, ts)
        n[side] = (n[side] + len(data)) & 0xFFFFFFFF

    def _segment(self, side: int, flags: int, seq: int, ack: int, data: bytes, ts: float) -> None:
        src, dst, sport, dport = self._c if side == 0 else self._s
        tcp_len = 20 + len(data)
        head = _TCP.pack(sport, dport, seq, ack, 5 << 4, flags, _WINDOW, 0, 0)
        if self._v6:
            pseudo = _PSEUDO6.pack(src, dst, tcp_len, _PROTO_TCP)
        else:
            pseudo = _PSEUDO4.pack(src, dst, 0, _PROTO_TCP, tcp_len)
        csum = internet_checksum(pseudo + head + data)
        segment = head[:16] + csum.to_bytes(2, "big") + head[18:] + data
        if self._v6:
            ip = _IPV6.pack(6 << 28, tcp_len, _PROTO_TCP, _TTL, src, dst)
            frame = _MACS + b"\x86\xdd" + ip + segment
        else:
            total = 20 + tcp_len
            ident = self._writer._next_ip_id()
            ip = _IPV4.pack(0x45, 0, total, ident, 0x4000, _TTL, _PROTO_TCP, 0, src, dst)
            ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
            frame = _MACS + b"\x08\x00" + ip + segment
        self._writer.write_frame(frame, ts)
