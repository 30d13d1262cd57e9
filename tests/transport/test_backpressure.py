"""Back-pressure over real loopback TCP: nothing in the server grows without bound.

(a) a handler that never answers: after ``max_pending_requests`` the server stops reading; answering
resumes it. (b) a client that never reads its answers: the server's write buffer passes its
high-water mark, the server stops reading, and its buffer stays bounded.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from eir.diameter.transport import NodeConfig
from tests.peer.helpers import EIR

from .support import RawClient, Recorder, eventually, node_pair, peer_config, pipelined_ecrs, server_link

LIMIT = 32
N = 20_000  # ~3 MB of ECRs: far more than one read (256 KiB) or the loopback buffers hold


async def test_unanswered_requests_pause_reading_then_answers_resume_it() -> None:
    handler = Recorder(hold=True)
    cfg = NodeConfig(peer_config(EIR), max_pending_requests=LIMIT)
    async with node_pair(handler, server_cfg=cfg) as (server, _client, port):
        raw = await RawClient.connect(port)
        try:
            link = server_link(server)
            assert link.transport is not None
            blob = pipelined_ecrs(N)
            raw.writer.write(blob)
            await eventually(lambda: link._read_paused, "the server pauses reading")
            assert not link.transport.is_reading()
            got = handler.count
            # Bounded: one read's worth of requests past the limit at most, not the whole backlog.
            per_read = 256 * 1024 // (len(blob) // N) + 1
            assert LIMIT <= link.conn.incoming_pending <= LIMIT + per_read
            assert got < N  # the backlog waits in the socket buffers, not in the server
            # Nothing more is read while paused: yield to the loop a few times.
            for _ in range(20):
                await asyncio.sleep(0.005)
            assert handler.count == got and not link.transport.is_reading()

            # Answer everything from now on: reading resumes and every request gets its answer.
            reader_task = asyncio.ensure_future(read_answers(raw, N))
            handler.release()
            await eventually(lambda: (link.transport is not None and link.transport.is_reading()) or handler.count == N,
                             "reading resumes")
            await asyncio.wait_for(reader_task, 30)
            assert handler.count == N
            assert link.conn.incoming_pending == 0
            assert link.transport.is_reading()
        finally:
            await raw.close()


async def read_answers(raw: RawClient, n: int) -> None:
    hbhs = set()
    for _ in range(n):
        hbhs.add((await raw.read_message()).hop_by_hop)
    assert hbhs == set(range(1, n + 1))


async def test_client_that_never_reads_keeps_the_server_bounded() -> None:
    handler = Recorder()  # answers at once
    cfg = NodeConfig(peer_config(EIR), max_pending_requests=1024)
    async with node_pair(handler, server_cfg=cfg) as (server, _client, port):
        raw = await RawClient.connect(port, rcvbuf=4096)  # a tiny receive window, and it never reads
        link = server_link(server)
        assert link.transport is not None
        sock = link.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # Hand the raw socket to a writer thread: blocking sends of the whole backlog.
        rsock: socket.socket = raw.writer.transport.get_extra_info("socket")
        dup = socket.socket(fileno=__import__("os").dup(rsock.fileno()))
        dup.setblocking(True)
        dup.settimeout(30)
        blob = pipelined_ecrs(N)
        sent = [0]
        stop = threading.Event()

        def writer() -> None:
            view = memoryview(blob)
            try:
                while sent[0] < len(blob) and not stop.is_set():
                    sent[0] += dup.send(view[sent[0]:sent[0] + 65536])
            except OSError:
                pass

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            high = link.transport.get_write_buffer_limits()[1]
            peak = 0

            def watch() -> bool:
                nonlocal peak
                peak = max(peak, link.transport.get_write_buffer_size())  # type: ignore[union-attr]
                return link._read_paused and link._write_paused

            await eventually(watch, "write buffer over its high-water mark pauses reading")
            assert not link.transport.is_reading()
            for _ in range(40):  # stays paused and bounded while the client keeps not reading
                await asyncio.sleep(0.005)
                peak = max(peak, link.transport.get_write_buffer_size())
            count = handler.count
            per_read_answers = (256 * 1024 // (len(blob) // N) + 1) * 200  # answers to one read, generously
            assert peak <= high + per_read_answers
            assert peak < len(blob)  # not the whole backlog's answers
            assert count < N
            assert link.conn.incoming_pending == 0  # everything read was answered; only the socket waits
            assert not link.transport.is_reading()
        finally:
            stop.set()
            dup.close()
            await raw.close()
            thread.join(10)


def test_a_large_backlog_is_read_one_read_per_loop_iteration() -> None:
    """uvloop (the production loop) reads a readable socket up to 32 times in one callback; a peer far ahead
    of us must not hold the loop for its whole backlog: after a large read, reading waits for the next loop
    iteration, so timers and other connections get their turn at least every 256 KiB."""
    import uvloop

    async def main() -> tuple[int, int]:
        iteration = 0
        per_iteration: dict[int, int] = {}

        class Counting(Recorder):
            def __call__(self, link, batch):  # type: ignore[no-untyped-def]
                per_iteration[iteration] = per_iteration.get(iteration, 0) + len(batch)
                super().__call__(link, batch)

        async def tick() -> None:
            nonlocal iteration
            while True:
                await asyncio.sleep(0)
                iteration += 1

        handler = Counting()
        async with node_pair(handler) as (_server, _client, port):
            ticker = asyncio.ensure_future(tick())
            raw = await RawClient.connect(port)
            try:
                blob = pipelined_ecrs(N)
                raw.writer.write(blob)
                await asyncio.wait_for(read_answers(raw, N), 60)
            finally:
                ticker.cancel()
                await raw.close()
        return max(per_iteration.values()), len(blob) // N

    most, size = uvloop.run(main())
    assert most <= 256 * 1024 // size + 1, f"{most} requests handled in one loop iteration"
