"""The fixed-answer calibration peer: answers every ECR with one pre-encoded ECA (AnswerTemplate).

Measures the testbed itself (``eir testbed responder``): whatever the load generator reaches against
it is the generator's ceiling, not an EIR's. Several worker processes can share the port
(SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from eir.diameter.transport import DiameterNode, NodeConfig, PeerLink, TransportKind
from protocols.diameter import Avp, LocalNode, Message, decode_message, encode_avp, encode_message, make_answer
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import AnswerTemplate
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.peer import PeerConfig
from testbed.mme import S13_DICTIONARY

__all__ = ["ResponderConfig", "answer_template", "run_fast", "run_responder_process", "serve_responder"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    host: str = "127.0.0.1"
    port: int = 3868
    status: str = "white"  # white | grey | black | unknown (Experimental-Result 5422)
    origin_host: str = "responder.testbed"
    realm: str = "localdomain"
    transport: str = "tcp"
    #: Answer through DiameterNode/PeerConnection (validating, slower) instead of the raw byte path.
    full_stack: bool = False


def answer_template(node: LocalNode, status: str) -> AnswerTemplate:
    """The one ECA (TS 29.272 §7.2.20) the responder sends."""
    state = Avp.new(base.AUTH_SESSION_STATE, base.AuthSessionState.NO_STATE_MAINTAINED)
    if status == "unknown":
        return AnswerTemplate((Avp.new(base.EXPERIMENTAL_RESULT, [
            Avp.new(base.VENDOR_ID, s13.VENDOR_3GPP),
            Avp.new(base.EXPERIMENTAL_RESULT_CODE, s13.ExperimentalResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN),
        ]), state, *node.origin_avps))
    code = {"white": 0, "black": 1, "grey": 2}[status]
    return AnswerTemplate((Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_SUCCESS), state, *node.origin_avps,
                           Avp.new(s13.EQUIPMENT_STATUS, code)))


class _RawResponder(asyncio.Protocol):
    """The fast path: requests are cut by length and answered by copying the header identifiers and
    the Session-Id AVP in front of the template's pre-encoded AVPs (what AnswerTemplate.render does,
    without decoding). CER, DWR and DPR go through the ordinary codec."""

    def __init__(self, caps: Capabilities, tail: bytes, counter: list[int]) -> None:
        self.caps = caps
        self.tail = tail
        self.counter = counter
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, n = 0, len(buf)
        out = []
        tail = self.tail
        pack = _HDR.pack
        answered = 0
        while n - pos >= 20:
            length = int.from_bytes(buf[pos + 1:pos + 4], "big")
            if length < 20:
                self.transport.close()  # type: ignore[union-attr]
                return
            if n - pos < length:
                break
            cmd = int.from_bytes(buf[pos + 5:pos + 8], "big")
            if cmd == 324 and buf[pos + 4] & 0x80:
                slen = int.from_bytes(buf[pos + 25:pos + 28], "big")
                sid = buf[pos + 20:pos + 20 + ((slen + 3) & ~3)] if buf[pos + 20:pos + 24] == b"\0\0\1\x07" else b""
                body_len = 20 + len(sid) + len(tail)
                out.append(pack(0x01000000 | body_len, 0x40000000 | 324, 16777252,
                                int.from_bytes(buf[pos + 12:pos + 16], "big"),
                                int.from_bytes(buf[pos + 16:pos + 20], "big")) + sid + tail)
                answered += 1
            else:
                out.append(self._control(buf[pos:pos + length]))
            pos += length
        self.buf = buf[pos:] if pos < n else b""
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        self.counter[0] += answered

    def _control(self, data: bytes) -> bytes:
        msg = decode_message(data)
        if not msg.is_request:
            return b""
        avps = [Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_SUCCESS)]
        if msg.command == 257:
            avps += list(self.caps.avps())
        else:
            avps += list(self.caps.node.origin_avps)
        if msg.command == 282:
            asyncio.get_running_loop().call_later(0.05, self.transport.close)  # type: ignore[union-attr]
        return encode_message(make_answer(msg, avps, error=False))


_HDR = struct.Struct(">IIIII")


async def serve_responder(cfg: ResponderConfig, *, reuse_port: bool = False,
                          stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> int:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT); returns the number of answers sent."""
    node_id = LocalNode(cfg.origin_host, cfg.realm)
    template = answer_template(node_id, cfg.status)
    render = template.render
    count = 0

    def handler(link: PeerLink, batch: list[Message]) -> None:
        nonlocal count
        answer = link.answer
        for req in batch:
            answer(render(req), req)
        count += len(batch)

    caps = Capabilities(node_id, host_ip_addresses=("127.0.0.1",), product_name="eirlab-responder",
                        vendor_applications=((s13.VENDOR_3GPP, s13.APPLICATION_ID),),
                        supported_vendors=(s13.VENDOR_3GPP,))
    node = DiameterNode(NodeConfig(PeerConfig(caps, S13_DICTIONARY, watchdog_interval=30.0),
                                   max_pending_requests=65536), handler)
    raw_server = None
    if cfg.full_stack or cfg.transport != "tcp":
        await node.listen(cfg.host, cfg.port, TransportKind(cfg.transport), reuse_port=reuse_port)
    else:
        counter = [0]
        tail = b"".join(encode_avp(a) for a in template.avps)
        raw_server = await asyncio.get_running_loop().create_server(
            lambda: _RawResponder(caps, tail, counter), cfg.host, cfg.port, reuse_port=reuse_port or None,
            reuse_address=True)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    if raw_server is not None:
        raw_server.close()
        return counter[0]
    await node.close(timeout=1.0)
    return count


def run_responder_process(cfg: ResponderConfig, workers: int = 1) -> None:
    """Blocking entry for the CLI: one process, or ``workers`` forked processes sharing the port."""
    children: list[int] = []
    if workers > 1:
        for _ in range(workers - 1):
            pid = os.fork()
            if pid == 0:
                _run_one(cfg, True)
                os._exit(0)
            children.append(pid)
    try:
        _run_one(cfg, workers > 1)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _run_one(cfg: ResponderConfig, reuse_port: bool) -> None:
    run_fast(serve_responder(cfg, reuse_port=reuse_port))


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed (TCP only: uvloop refuses SCTP sockets), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
