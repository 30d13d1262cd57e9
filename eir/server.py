"""``eir serve``: the S13 EIR network function, assembled from its parts.

config -> store -> decision service -> S13 front end -> Diameter node -> listeners (+ admin API).
One process per worker; several workers share each listening port with SO_REUSEPORT. SIGTERM or
SIGINT shuts down gracefully: stop accepting, drain answers in flight, DPR to every peer, exit.
SIGHUP reloads the rule lists (ranges, TACs, SVN rules) from the store at once (they also follow
the store's change feed by themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eir.config import EirConfig
from eir.diameter.transport import DiameterNode, NodeConfig, TransportKind
from eir.metrics import EirMetrics
from eir.register import open_store
from eir.register.policy import Policy
from eir.register.service import EquipmentChecker
from eir.s13 import FailPolicy, S13Frontend, S13Settings
from protocols.diameter import Dictionary, LocalNode
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.duplicates import DuplicateCache
from protocols.diameter.events import PeerInfo
from protocols.diameter.peer import PeerConfig

__all__ = ["S13_DICTIONARY", "EirServer", "run", "run_workers"]

log = logging.getLogger("eir.server")

#: CPython's default GC thresholds (700, 10, 10) run a full collection every ~70k allocations; with a
#: warm decision cache (hundreds of thousands of entries) each one stalls the loop for 100+ ms. Measured
#: with bench/s13_server.py at 20k ECR/s: p50 111 ms / p99 1.2 s with the defaults, 2 ms / 89 ms with
#: these (BENCHMARKS.md). Nothing here builds reference cycles on the hot path, so collecting rarely is safe.
GC_THRESHOLDS = (100_000, 50, 1000)

#: The dictionary the EIR validates with: base protocol + S13 (TS 29.272).
S13_DICTIONARY = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)


@dataclass
class EirServer:
    """One worker's EIR: everything started by :meth:`start`, stopped by :meth:`stop`."""

    config: EirConfig
    worker: int = 0
    metrics: EirMetrics = field(default_factory=EirMetrics)
    node: DiameterNode | None = None
    checker: EquipmentChecker | None = None
    frontend: S13Frontend | None = None
    bound: list[tuple[str, int]] = field(default_factory=list)
    admin_bound: tuple[str, int] | None = None
    _admin_task: asyncio.Task[None] | None = None
    _admin_stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        cfg = self.config
        d = cfg.diameter
        store = open_store(cfg.store.url)
        self.checker = EquipmentChecker(
            store, Policy(unknown_status=cfg.policy.unknown_equipment), cache_size=cfg.store.cache_size,
            replica_max_entries=cfg.store.replica_max_entries, audit=cfg.store.audit,
        )
        await self.checker.start()
        local = LocalNode(d.origin_host, d.origin_realm, origin_state_id=int(time.time()) & 0xFFFFFFFF)
        caps = Capabilities(
            local, host_ip_addresses=d.advertised_addresses, product_name="eirlab",
            vendor_applications=((s13.VENDOR_3GPP, s13.APPLICATION_ID),), supported_vendors=(s13.VENDOR_3GPP,),
            auth_applications=frozenset({s13.APPLICATION_ID}),
        )
        self.frontend = S13Frontend(
            self.checker, local, S13_DICTIONARY,
            S13Settings(frozenset(cfg.realms), FailPolicy(cfg.policy.fail_status), cfg.policy.max_pending,
                        cfg.log_requests),
            self.metrics,
        )
        allow = d.allowed_peers
        peer_config = PeerConfig(caps, S13_DICTIONARY, watchdog_interval=d.watchdog_interval,
                                 duplicates=DuplicateCache())
        self.node = DiameterNode(
            NodeConfig(peer_config, max_pending_requests=d.max_pending_requests,
                       allowed_peers=(lambda info: allow.allows_host(info.host)) if allow.hosts else None,
                       allowed_addresses=allow.allows_address if allow.networks else None),
            self.frontend,
        )
        if cfg.admin.listen is not None:
            # Before the Diameter ports: starting the HTTP app (importing FastAPI) holds the loop for a second
            # or so, which must not happen to MMEs that are already connected and sending.
            await self._start_admin(store)
        kind = TransportKind(d.transport)
        for host, port in d.listen:
            server = await self.node.listen(host, port, kind, reuse_port=cfg.workers > 1)
            for sock in server.sockets:
                name = sock.getsockname()
                self.bound.append((str(name[0]), int(name[1])))
        log.info("worker=%d listening=%s transport=%s store=%s origin_host=%s", self.worker,
                 ",".join(f"{h}:{p}" for h, p in self.bound), d.transport, store.url, d.origin_host)

    async def _start_admin(self, store: object) -> None:
        from eir.admin import serve_admin

        host, port = self.config.admin.listen or ("127.0.0.1", 8080)
        port += self.worker  # each worker its own admin port (metrics are per process)
        ready: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        self._admin_task = asyncio.create_task(serve_admin(
            self, host, port, token=self.config.admin.token, stop=self._admin_stop, ready=ready))
        self.admin_bound = await ready

    def peers(self) -> list[dict[str, object]]:
        """The peer table, for the admin API and metrics."""
        out: list[dict[str, object]] = []
        if self.node is None:
            return out
        for link in self.node.links:
            peer: PeerInfo | None = link.peer
            out.append({"remote": link.peername, "transport": link.kind.value, "state": link.conn.state.value,
                        "watchdog": link.conn.watchdog.value, "host": peer.host if peer else None,
                        "realm": peer.realm if peer else None})
        return out

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Graceful: stop accepting, send the answers in flight, DPR to every peer, wait for the DPAs, then
        close the store. Answers go before the DPR: a peer closes the connection once it has answered our
        DPR, so an answer still waiting for the store would be lost."""
        if self.node is not None:
            self.node.stop_listening()
        if self.frontend is not None:
            deadline = time.monotonic() + drain_timeout
            while self.frontend.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        if self.node is not None:
            await self.node.close(base.DisconnectCause.REBOOTING, drain_timeout)
        self._admin_stop.set()
        if self._admin_task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._admin_task, drain_timeout)
        if self.checker is not None:
            await self.checker.stop()
            await self.checker.store.close()

    def reload(self) -> None:
        if self.checker is not None:
            asyncio.get_running_loop().create_task(self.checker._reload_rules())


async def _serve(config: EirConfig, worker: int, ready: Callable[[EirServer], None] | None) -> None:
    server = EirServer(config, worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    try:
        await server.start()
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()  # what start-up built (dictionaries, rule index, templates) is never garbage
        if ready is not None:
            ready(server)
        await stop.wait()
        log.info("worker=%d shutting down: DPR to %d peer(s)", worker, len(server.peers()))
    finally:
        await server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def run(config: EirConfig, worker: int = 0, ready: Callable[[EirServer], None] | None = None) -> None:
    """Run one worker until SIGTERM/SIGINT. TCP uses uvloop when installed; SCTP the stdlib loop."""
    if config.diameter.transport == "tcp":
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.run(_serve(config, worker, ready))
            return
    asyncio.run(_serve(config, worker, ready))


def run_workers(config: EirConfig, argv: list[str]) -> int:
    """Start ``config.workers`` worker processes sharing the ports (SO_REUSEPORT); wait; forward signals."""
    if not hasattr(socket, "SO_REUSEPORT"):
        print("eir serve: SO_REUSEPORT is not available here; use --workers 1", file=sys.stderr)
        return 2
    pids: list[int] = []
    for i in range(config.workers):
        pid = os.fork()
        if pid == 0:  # child: one worker, its own event loop
            code = 0
            try:
                run(config, worker=i)
            except BaseException:  # report and exit: a worker must never return into the parent's code
                logging.getLogger("eir.server").exception("worker %d failed", i)
                code = 1
            os._exit(code)
        pids.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    for p in pids:
        _, st = os.waitpid(p, 0)
        status = status or os.waitstatus_to_exitcode(st)
    return status
