"""CPU per ECR of the EIR's whole Python path, in one process, without sockets (issue 5).

What ``bench.s13_server`` cannot separate: how much of an answer's cost is our Python code (framing, the
peer state machine, decode and validation, duplicate detection, the S13 front end, the register's
verdict, the answer) and how much is the kernel and the event loop. Here one ``EirServer`` (embedded store,
the replica on, as ``eir serve --store memory:// --replica-max-entries N`` runs) gets its ECRs through a
real :class:`~eir.diameter.transport.PeerLink` whose transport is a byte counter: ``data_received`` with
``--per`` ECRs at a time, as many as one socket read carries (about 2 at 20k/s with the load generator's
0.1 ms tick, tens at saturation). Printed: CPU time per ECR (``time.process_time``), for IMEIs on the
black list and for IMEIs on no list, after a warm-up of the same size.

    .venv/bin/python -m bench.s13_inprocess [--count 100000] [--per 2 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvloop

from bench.register_common import machine
from eir.config import from_mapping
from eir.diameter.transport import PeerLink, TransportKind
from eir.register.model import Entry, Status
from eir.server import S13_DICTIONARY, EirServer
from protocols.diameter import LocalNode, encode_message
from protocols.diameter.peer import PeerConfig, PeerConnection, Role
from testbed.mme import build_ecr, mme_capabilities

MME = LocalNode("mme.bench", "localdomain")


class CountingTransport:
    """The transport of the link under test: counts what would be written, never blocks."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 3868) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def imei_key(i: int, listed: bool) -> str:
    return f"{35 if listed else 86}{i:012d}"


def ecr_bytes(count: int, listed: bool, first_id: int) -> list[bytes]:
    """``count`` ECRs of one MME, each with its own Session-Id, IMEI and identifiers (none is a duplicate)."""
    out = []
    for i in range(count):
        msg = build_ecr(MME, "localdomain", f"mme.bench;1;{first_id + i}", imei_key(i, listed), "01", None)
        msg.hop_by_hop = msg.end_to_end = first_id + i
        out.append(encode_message(msg))
    return out


async def open_link(server: EirServer) -> tuple[PeerLink, CountingTransport]:
    """A link of ``server``'s node past its capabilities exchange."""
    assert server.node is not None
    link = PeerLink(server.node, Role.RESPONDER, TransportKind.TCP)
    transport = CountingTransport()
    link.connection_made(transport)  # type: ignore[arg-type]
    mme = PeerConnection(PeerConfig(mme_capabilities(MME.host, MME.realm), S13_DICTIONARY), Role.INITIATOR, 0.0)
    mme.start(0.0)
    link.data_received(mme.data_to_send())
    await link.opened
    return link, transport


def cpu_per_ecr(link: PeerLink, messages: list[bytes], per: int) -> float:
    """Feed the second half of ``messages`` after the first (the warm-up), ``per`` a read; µs of CPU each."""
    reads = [b"".join(messages[i : i + per]) for i in range(0, len(messages), per)]
    half = len(reads) // 2
    for data in reads[:half]:
        link.data_received(data)
    start = time.process_time()
    for data in reads[half:]:
        link.data_received(data)
    return 1e6 * (time.process_time() - start) / (sum(map(len, reads[half:])) / len(messages[0]))


async def main(args: argparse.Namespace) -> None:
    config = from_mapping({"store": {"url": "memory://", "replica_max_entries": 2 * args.count},
                           "diameter": {"listen": ["127.0.0.1:0"]}})
    server = EirServer(config)
    await server.start()
    try:
        assert server.checker is not None
        await server.checker.store.put_many([Entry.imei(imei_key(i, True), Status.BLACK) for i in range(args.count)])
        replica = server.checker.replica
        assert replica is not None
        deadline = time.monotonic() + 60
        while not replica.complete or replica.unsure_count:
            if time.monotonic() > deadline:
                raise SystemExit("the replica did not load within 60 s")
            await asyncio.sleep(0.05)
        print(f"# {machine()}; EirServer (embedded store, replica of {args.count:,} black-listed IMEIs), "
              f"{args.count:,} ECRs per figure (half warm-up), median of {args.repeat}")
        next_id = 1
        for listed in (True, False):
            for per in args.per:
                figures = []
                for _ in range(args.repeat):
                    link, transport = await open_link(server)
                    messages = ecr_bytes(args.count, listed, next_id)
                    next_id += args.count
                    figures.append(cpu_per_ecr(link, messages, per))
                    assert transport.written > 0
                    link.connection_lost(None)  # the fake transport closes nothing: the link is told
                which = "black-listed IMEIs" if listed else "IMEIs on no list"
                print(f"{which:<20} {per:>3} ECRs per read  {statistics.median(figures):6.2f} µs CPU per ECR "
                      f"({1e6 / statistics.median(figures):,.0f}/s)", flush=True)
    finally:
        await server.stop(0.1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--per", type=int, nargs="+", default=[2, 20], help="ECRs per read")
    ap.add_argument("--repeat", type=int, default=3)
    uvloop.run(main(ap.parse_args()))
