"""Fixtures for the admin API tests: a real EirServer (memory or Redis store), an ASGI client, an S13 client."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import EllipsisType
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eir.admin import build_app
from eir.config import AdminConfig, EirConfig, from_mapping
from eir.diameter import DiameterNode, NodeConfig, PeerLink
from eir.server import EirServer
from protocols.diameter import Avp, Dictionary, LocalNode, Message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_PROXIABLE
from protocols.diameter.peer import PeerConfig
from tests.support.servers import RedisServer, start_redis

TOKEN = "t0ken-for-tests"
_seq = itertools.count()


def make_config(store_url: str, *, audit: bool = True, admin_port: int | None = None, token: str | None = None,
                **policy: Any) -> EirConfig:
    """An EirConfig from a mapping, on free loopback ports (port 0, which the YAML parser refuses)."""
    cfg = from_mapping({"store": {"url": store_url, "audit": audit, "cache_size": 1000}, "policy": policy})
    return dataclasses.replace(
        cfg, diameter=dataclasses.replace(cfg.diameter, listen=(("127.0.0.1", 0),)),
        admin=AdminConfig(("127.0.0.1", admin_port) if admin_port is not None else None, token))


async def started(cfg: EirConfig) -> EirServer:
    server = EirServer(cfg)
    await server.start()
    return server


def asgi_client(server: EirServer, token: str | EllipsisType | None = None) -> httpx.AsyncClient:
    """A client of the server's admin app over ASGI (token ``...``: the configured one)."""
    app = build_app(server, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


# ---------------------------------------------------------------------------------------- S13 client
DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)


class S13Client:
    """A minimal MME: the project's Diameter node sending ECRs (as /tmp/t13.py and the interop tests)."""

    def __init__(self) -> None:
        caps = Capabilities(LocalNode("mme.localdomain", "localdomain"),
                            vendor_applications=((s13.VENDOR_3GPP, s13.APPLICATION_ID),),
                            supported_vendors=(s13.VENDOR_3GPP,))
        self.node = DiameterNode(NodeConfig(PeerConfig(caps, DICT)))
        self.link: PeerLink | None = None
        self._n = 0

    async def connect(self, host: str, port: int) -> None:
        self.link = await self.node.connect(host, port)

    async def ecr(self, imei: str, imsi: str | None = None) -> tuple[int | None, int | None]:
        """Send one ECR; return (Result-Code or Experimental-Result-Code, Equipment-Status)."""
        assert self.link is not None
        self._n += 1
        m = Message(324, s13.APPLICATION_ID, FLAG_PROXIABLE)
        m.add(base.SESSION_ID, f"mme.localdomain;1;{self._n}").add(base.AUTH_SESSION_STATE, 1)
        m.add(base.ORIGIN_HOST, "mme.localdomain").add(base.ORIGIN_REALM, "localdomain")
        m.add(base.DESTINATION_REALM, "localdomain")
        if imsi is not None:
            m.add(base.USER_NAME, imsi)
        m.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, imei)])
        a = await self.link.request(m, timeout=5)
        er = a.find(base.EXPERIMENTAL_RESULT)
        code = a.get(base.RESULT_CODE)
        if code is None and er is not None:
            inner = er.find(base.EXPERIMENTAL_RESULT_CODE)
            code = inner.value(base.EXPERIMENTAL_RESULT_CODE) if inner is not None else None
        return code, a.get(s13.EQUIPMENT_STATUS)

    async def close(self) -> None:
        await self.node.close(timeout=2)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture
async def memory_server(tmp_path: Path) -> AsyncIterator[EirServer]:
    """A started EIR on the embedded store (a file under tmp_path), audit on, no admin socket."""
    server = await started(make_config(f"memory://{tmp_path}/register.eir"))
    try:
        yield server
    finally:
        await server.stop(drain_timeout=2)


@pytest.fixture
async def client(memory_server: EirServer) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(memory_server) as c:
        yield c


@pytest.fixture
async def mme() -> AsyncIterator[S13Client]:
    c = S13Client()
    try:
        yield c
    finally:
        await c.close()


def stop_quickly(server: RedisServer) -> None:
    """Terminate and reap our redis-server (servers.stop_pid waits 10 s on an unreaped zombie)."""
    if server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session redis-server (as in tests/conftest.py), reaped quickly at the end."""
    with start_redis(tmp_path_factory.mktemp("redis-admin")) as server:
        yield server
        stop_quickly(server)


def redis_url(server: RedisServer) -> str:
    return f"{server.url}?prefix=adm{next(_seq)}x{id(object()) % 100000}"
