"""Incremental framer: cuts complete Diameter messages out of a byte stream (RFC 6733 §3).

Feed it whatever the transport read (a partial message, several messages, or both); it returns
every complete message as bytes and keeps the rest. A length that cannot be trusted, or a message
larger than ``max_length``, raises FramingError: the stream cannot be resynchronised, close it.
"""

from __future__ import annotations

from .errors import FramingError
from .message import HEADER_SIZE

__all__ = ["DEFAULT_MAX_LENGTH", "Framer"]

#: Largest message we accept; RFC 6733 allows 2^24-1, real S13 messages are a few hundred octets.
DEFAULT_MAX_LENGTH = 1 << 20


class Framer:
    """Stateful splitter of a Diameter byte stream into messages."""

    __slots__ = ("_buf", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self._buf = bytearray()
        self.max_length = max_length

    @property
    def buffered(self) -> int:
        """Octets held while waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every message now complete, in order."""
        buf = self._buf
        if not buf and len(data) >= HEADER_SIZE:
            # Fast path: the read holds whole messages and starts at a message boundary.
            out: list[bytes] = []
            pos, end = 0, len(data)
            while end - pos >= 4:
                length = int.from_bytes(data[pos + 1 : pos + 4], "big")
                self._check(length)
                if end - pos < length:
                    break
                out.append(data[pos : pos + length])
                pos += length
            if pos < end:
                buf += data[pos:]
            return out
        buf += data
        out = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            length = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            self._check(length)
            if end - pos < length:
                break
            out.append(bytes(buf[pos : pos + length]))
            pos += length
        del buf[:pos]
        return out

    def _check(self, length: int) -> None:
        if length < HEADER_SIZE or length & 3:
            raise FramingError(f"message length {length} is not a multiple of 4 of at least {HEADER_SIZE}")
        if length > self.max_length:
            raise FramingError(f"message length {length} exceeds the limit of {self.max_length} octets")
