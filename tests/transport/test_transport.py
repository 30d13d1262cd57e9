"""eir.diameter.transport over real loopback TCP: capabilities, many requests, batching, DPR, errors."""

from __future__ import annotations

import asyncio

import pytest

from eir.diameter.transport import DiameterNode, LinkClosed, NodeConfig, RequestTimeout, TransportKind
from eir.net.sctp import SctpUnavailableError, sctp_available
from protocols.diameter import base_rfc6733 as base
from protocols.diameter.events import DisconnectRequested
from protocols.diameter.framer import Framer
from protocols.diameter.peer_state import State
from tests.peer.helpers import EIR, MME

from .support import (
    WAIT,
    RawClient,
    Recorder,
    eca,
    ecr,
    eventually,
    node_pair,
    peer_config,
    pipelined_ecrs,
    record_events,
    server_link,
)


async def test_connect_opens_both_sides() -> None:
    async with node_pair(Recorder()) as (server, client, port):
        link = await client.connect("127.0.0.1", port, peer_host=EIR.host)
        assert link.peer is not None and link.peer.host == EIR.host
        srv = server_link(server)
        assert (await asyncio.wait_for(srv.opened, WAIT)).host == MME.host
        assert client.registry.get(EIR.host) is link
        assert server.registry.get(MME.host) is srv


async def test_many_concurrent_ecrs_are_answered() -> None:
    handler = Recorder()
    async with node_pair(handler, client_cfg=NodeConfig(peer_config(MME), max_in_flight=16)) as (_s, client, port):
        link = await client.connect("127.0.0.1", port)
        seen_in_flight: list[int] = []
        orig = handler.__call__

        def watch(lnk: object, batch: list[object]) -> None:
            seen_in_flight.append(link.conn.in_flight)
            orig(lnk, batch)  # type: ignore[arg-type]

        _s.handler = watch  # type: ignore[assignment]
        reqs = [ecr(f"{35000000000000 + i}") for i in range(500)]
        answers = await asyncio.wait_for(asyncio.gather(*(link.request(r, timeout=WAIT) for r in reqs)), WAIT)
        assert len(answers) == 500
        for req, ans in zip(reqs, answers, strict=True):
            assert ans.hop_by_hop == req.hop_by_hop and ans.end_to_end == req.end_to_end
            assert ans.get(base.RESULT_CODE) == 2001
            assert ans.get(base.SESSION_ID) == req.get(base.SESSION_ID)
        assert handler.count == 500
        assert max(seen_in_flight) <= 16  # the in-flight semaphore
        assert link.conn.in_flight == 0


async def test_pipelined_requests_reach_the_handler_in_batches() -> None:
    handler = Recorder()
    async with node_pair(handler) as (_server, _client, port):
        raw = await RawClient.connect(port)
        try:
            raw.writer.write(pipelined_ecrs(50))  # one write of 50 requests
            answers = [await raw.read_message() for _ in range(50)]
        finally:
            await raw.close()
        assert sorted(a.hop_by_hop for a in answers) == list(range(1, 51))
        assert handler.count == 50
        assert max(len(b) for b in handler.batches) > 1, [len(b) for b in handler.batches]


async def test_answer_all_writes_held_answers_at_once_from_the_calling_callback() -> None:
    handler = Recorder(hold=True)
    async with node_pair(handler) as (server, _client, port):
        raw = await RawClient.connect(port)
        try:
            raw.writer.write(pipelined_ecrs(20))
            await eventually(lambda: len(handler.held) == 20, "20 requests held")
            srv = server_link(server)
            assert srv.transport is not None
            writes: list[bytes] = []
            original = srv.transport.write
            srv.transport.write = lambda data: (writes.append(bytes(data)), original(data))[1]  # type: ignore[method-assign]
            srv.answer_all([(eca(req), req) for _, req in handler.held])
            assert len(writes) == 1 and len(Framer().feed(writes[0])) == 20  # one write, before returning
            answers = [await raw.read_message() for _ in range(20)]
            assert sorted(a.hop_by_hop for a in answers) == list(range(1, 21))
            assert srv.conn.incoming_pending == 0
            srv.abort()
            await asyncio.wait_for(srv.closed, WAIT)
            srv.answer_all([(eca(req), req) for _, req in handler.held])  # closed: nothing, no error
        finally:
            await raw.close()


async def test_graceful_close_sends_dpr() -> None:
    async with node_pair(Recorder()) as (server, client, port):
        link = await client.connect("127.0.0.1", port)
        events = record_events(link)
        await asyncio.wait_for(server.close(base.DisconnectCause.BUSY, timeout=WAIT), WAIT)
        await asyncio.wait_for(link.closed, WAIT)
        assert DisconnectRequested(int(base.DisconnectCause.BUSY)) in events
        assert link.conn.state is State.CLOSED
        assert not server.links and not client.links


async def test_client_disconnect_gets_dpa() -> None:
    async with node_pair(Recorder()) as (server, client, port):
        link = await client.connect("127.0.0.1", port)
        srv = server_link(server)
        srv_events = record_events(srv)
        await asyncio.wait_for(link.disconnect(base.DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU), WAIT)
        assert await asyncio.wait_for(link.closed, WAIT) == "DPA received"
        await asyncio.wait_for(srv.closed, WAIT)
        assert DisconnectRequested(2) in srv_events


async def test_request_timeout_raises() -> None:
    handler = Recorder(hold=True)
    async with node_pair(handler) as (_s, client, port):
        link = await client.connect("127.0.0.1", port)
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(link.request(ecr(), timeout=0.2), WAIT)
        assert link.conn.in_flight == 0
        assert handler.count == 1
        assert link.conn.is_open  # a timeout does not close the connection


async def test_pending_requests_fail_with_link_closed_when_the_peer_goes_away() -> None:
    handler = Recorder(hold=True)
    async with node_pair(handler) as (server, client, port):
        link = await client.connect("127.0.0.1", port)
        pending = [asyncio.ensure_future(link.request(ecr(), timeout=WAIT)) for _ in range(5)]
        await eventually(lambda: handler.count == 5, "the server holds 5 requests")
        server_link(server).abort()  # the transport just closes
        for fut in pending:
            with pytest.raises(LinkClosed):
                await asyncio.wait_for(fut, WAIT)
        with pytest.raises(LinkClosed):
            await link.request(ecr(), timeout=1.0)


async def test_connection_refused() -> None:
    node = DiameterNode(NodeConfig(peer_config(MME)))
    probe = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await node.connect("127.0.0.1", port, timeout=WAIT)
    assert not node.links


async def test_unknown_peer_refused_with_3010() -> None:
    cfg = NodeConfig(peer_config(EIR), allowed_peers=lambda info: info.host == "someone.else")
    async with node_pair(Recorder(), server_cfg=cfg) as (_server, client, port):
        with pytest.raises(ConnectionRefusedError, match="3010"):
            await client.connect("127.0.0.1", port)


@pytest.mark.skipif(sctp_available(), reason="this kernel has SCTP; tests/sctp cover it")
async def test_sctp_on_this_kernel_is_one_clear_line() -> None:
    node = DiameterNode(NodeConfig(peer_config(EIR)))
    with pytest.raises(SctpUnavailableError) as info:
        await node.listen("127.0.0.1", 0, TransportKind.SCTP)
    assert "\n" not in str(info.value) and "SCTP" in str(info.value)
    with pytest.raises(SctpUnavailableError) as info:
        await node.connect("127.0.0.1", 3868, TransportKind.SCTP, timeout=1.0)
    assert "\n" not in str(info.value)
    assert not node.links
