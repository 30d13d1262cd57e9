"""The real Diameter node (eir.diameter.transport) over kernel SCTP on the stdlib asyncio loop.

CER/CEA, 100 ECR/ECA, DWR/DWA (driven through the connection's timer path: Tw cannot go below 6 s),
DPR/DPA through close(), and PPID 46 on what the node writes, seen by a raw SCTP receiver.
Skipped on a kernel without SCTP; `make test-sctp` runs it inside a throwaway QEMU guest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from eir.diameter.transport import DiameterNode, TransportKind
from eir.net.sctp import DIAMETER_PPID, create_sctp_connection_socket, enable_recv_rcvinfo, recv_with_ppid
from protocols.diameter import Message, decode_message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter.events import DisconnectRequested
from protocols.diameter.peer_state import State
from tests.peer.helpers import EIR, MME, cer, ecr
from tests.transport.support import Recorder, node_pair, record_events

pytestmark = pytest.mark.sctp

TIMEOUT = 10.0
SCTP = TransportKind.SCTP


@contextlib.asynccontextmanager
async def sctp_nodes() -> AsyncIterator[tuple[DiameterNode, DiameterNode, int]]:
    loop = asyncio.get_running_loop()
    assert type(loop).__module__.startswith("asyncio."), "SCTP needs the stdlib loop"
    async with node_pair(Recorder(), kind=SCTP) as nodes:
        yield nodes


async def test_cer_cea_and_100_ecrs_over_sctp() -> None:
    async with sctp_nodes() as (server, client, port):
        link = await client.connect("127.0.0.1", port, SCTP, peer_host=EIR.host, timeout=TIMEOUT)
        assert link.kind is SCTP
        assert link.peer is not None and link.peer.host == EIR.host
        (srv,) = server.links
        assert (await asyncio.wait_for(srv.opened, TIMEOUT)).host == MME.host
        reqs = [ecr(f"{35000000000000 + i}") for i in range(100)]
        answers = await asyncio.wait_for(asyncio.gather(*(link.request(r, timeout=TIMEOUT) for r in reqs)), TIMEOUT)
        assert [a.hop_by_hop for a in answers] == [r.hop_by_hop for r in reqs]
        assert all(a.get(base.RESULT_CODE) == 2001 for a in answers)


async def test_dwr_dwa_over_sctp() -> None:
    async with sctp_nodes() as (_server, client, port):
        link = await client.connect("127.0.0.1", port, SCTP, timeout=TIMEOUT)
        conn = link.conn
        # Tw cannot be shortened below 6 s: drive the connection's timer path with a clock 40 s ahead.
        deadline = conn.next_deadline()
        assert deadline is not None
        assert conn.handle_timer(deadline) == []
        assert conn._dwr_pending  # the DWR is queued
        link._flush()
        async with asyncio.timeout(TIMEOUT):
            while conn._dwr_pending:  # cleared by the DWA
                await asyncio.sleep(0.01)
        assert conn.is_open


async def test_dpr_dpa_through_close_over_sctp() -> None:
    async with sctp_nodes() as (server, client, port):
        link = await client.connect("127.0.0.1", port, SCTP, timeout=TIMEOUT)
        (srv,) = server.links
        events = record_events(srv)
        await asyncio.wait_for(client.close(base.DisconnectCause.BUSY, timeout=TIMEOUT), TIMEOUT + 1)
        assert await asyncio.wait_for(link.closed, TIMEOUT) == "DPA received"
        await asyncio.wait_for(srv.closed, TIMEOUT)
        assert DisconnectRequested(int(base.DisconnectCause.BUSY)) in events
        assert link.conn.state is State.CLOSED and srv.conn.state is State.CLOSED


async def test_node_writes_carry_ppid_46() -> None:
    """A raw SCTP client sends a CER built with the codec; the node's CEA and ECA arrive with PPID 46."""
    async with sctp_nodes() as (_server, _client, port):
        sock = await asyncio.to_thread(create_sctp_connection_socket, "127.0.0.1", port)
        with sock:
            enable_recv_rcvinfo(sock)
            sock.settimeout(TIMEOUT)
            await asyncio.to_thread(sock.sendall, encode_message(cer()))
            data, ppid = await asyncio.to_thread(recv_with_ppid, sock)
            assert ppid == DIAMETER_PPID
            cea = decode_message(data)  # one SCTP message = one Diameter message
            assert cea.command == base.CER.code and cea.get(base.RESULT_CODE) == 2001
            req = ecr()
            req.hop_by_hop = 4242
            await asyncio.to_thread(sock.sendall, encode_message(req))
            data, ppid = await asyncio.to_thread(recv_with_ppid, sock)
            assert ppid == DIAMETER_PPID
            eca_msg = decode_message(data)
            assert eca_msg.hop_by_hop == 4242 and eca_msg.get(base.RESULT_CODE) == 2001
            # And the DWA to our DWR.
            dwr = Message(base.DWR.code, 0, 0x80, 77, 77, list(MME.origin_avps))
            await asyncio.to_thread(sock.sendall, encode_message(dwr))
            data, ppid = await asyncio.to_thread(recv_with_ppid, sock)
            assert ppid == DIAMETER_PPID
            dwa = decode_message(data)
            assert dwa.hop_by_hop == 77 and dwa.get(base.RESULT_CODE) == 2001
