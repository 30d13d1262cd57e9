"""A pcap of the run (or a sample of it), written without capture privileges through :mod:`eir.pcap`.

Each MME connection becomes one synthetic TCP conversation (127.0.0.x:port -> the EIR's address)
carrying the exact ECR/ECA bytes at their send/answer times, so Wireshark/tshark decode it as
Diameter S13 (port 3868 is Diameter's default; other ports need ``-d tcp.port==N,diameter``).
``sample`` keeps one procedure in N; ``max_packets`` bounds the file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["PcapTrace", "pcap_available"]


def pcap_available() -> bool:
    try:
        import eir.pcap  # noqa: F401
    except ImportError:
        return False
    return True


class PcapTrace:
    """Collects request/answer pairs (bounded) and writes them, in time order, as TCP conversations."""

    def __init__(self, path: str | Path, server: tuple[str, int], *, sample: int = 1,
                 max_packets: int = 1_000_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.sample = max(1, sample)
        self.max_packets = max_packets
        self.packets = 0
        self._n = 0
        self._events: list[tuple[float, int, int, bytes]] = []  # (ts, connection key, side, bytes)
        self._keys: dict[int, int] = {}
        # time.monotonic() (what the simulated MMEs time with) -> wall time for pcap timestamps.
        self._offset = time.time() - time.monotonic()

    def _key(self, link: object) -> int:
        return self._keys.setdefault(id(link), len(self._keys))

    def __call__(self, request: bytes, answer: bytes | None, sent: float, done: float, link: object) -> None:
        self._n += 1
        if (self._n - 1) % self.sample or self.packets >= self.max_packets:
            return
        key = self._key(link)
        self._events.append((sent + self._offset, key, 0, request))
        self.packets += 1
        if answer is not None:
            self._events.append((done + self._offset, key, 1, answer))
            self.packets += 1

    def add_pair(self, key: int, request: bytes, sent: float, answer: bytes | None, done: float) -> None:
        """Add one exchange with wall-clock times (the load generator's samples)."""
        self._events.append((sent, key, 0, request))
        if answer is not None:
            self._events.append((done, key, 1, answer))
        self.packets += 1 + (answer is not None)

    def close(self) -> None:
        from eir import pcap

        self._events.sort(key=lambda e: e[0])
        convs: dict[int, Any] = {}
        with pcap.PcapWriter(str(self.path)) as writer:
            for ts, key, side, data in self._events:
                conv = convs.get(key)
                if conv is None:
                    conv = convs[key] = writer.tcp_conversation(("127.0.0.1", 40000 + key), self.server,
                                                                 ts - 0.0001)
                if side == 0:
                    conv.client_sends(data, ts)
                else:
                    conv.server_sends(data, ts)
            end = self._events[-1][0] + 0.001 if self._events else time.time()
            for conv in convs.values():
                conv.close(end)
        self._events.clear()
