"""Fixtures for the register tests: stores over the embedded store, real Redis and a real cluster."""

from __future__ import annotations

import itertools
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest

import tests.support.servers as servers
from eir.register import open_store
from eir.register.redis_store import RedisStore
from eir.register.store import Store
from tests.support.servers import RedisCluster, RedisServer, start_redis, start_redis_cluster

_seq = itertools.count()


def _cluster_safe_port() -> int:
    """A free loopback port <= 55535: a cluster node also listens on port + 10000."""
    rnd = random.Random()
    for _ in range(200):
        port = rnd.randrange(20000, 55535)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, socket.socket() as bus:
            try:
                s.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair (p, p + 10000) below 55535")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """The session cluster, but on ports a cluster accepts.

    tests.support.servers.free_port() may return ports above 55535, where redis-server refuses cluster
    mode (the bus port is port + 10000); until that helper is fixed, pick ports here.
    """
    mp = pytest.MonkeyPatch()
    mp.setattr(servers, "free_port", _cluster_safe_port)
    try:
        with start_redis_cluster(tmp_path_factory.mktemp("redis-cluster-register")) as cluster:
            _wait_all_nodes_ok(cluster)
            yield cluster
            for node in cluster.nodes:
                _stop_quickly(node)
    finally:
        mp.undo()


def _wait_all_nodes_ok(cluster: RedisCluster, timeout: float = 30.0) -> None:
    """start_redis_cluster waits for node 0 only; the others may still say "cluster is down"."""
    deadline = time.monotonic() + timeout
    for node in cluster.nodes:
        while True:
            out = subprocess.run(["redis-cli", "-p", str(node.port), "cluster", "info"], capture_output=True,
                                 text=True, timeout=5).stdout
            if "cluster_state:ok" in out:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {node.port} not ok: {out[:200]}")
            time.sleep(0.05)


def _stop_quickly(server: RedisServer) -> None:
    """Terminate and reap our redis-server: servers.stop_pid() polls with kill(pid, 0), which succeeds on
    an unreaped zombie, so it always waits its full 10 s timeout."""
    if server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session redis-server (as in tests/conftest.py), reaped quickly at the end."""
    with start_redis(tmp_path_factory.mktemp("redis-register")) as server:
        yield server
        _stop_quickly(server)


def unique_prefix() -> str:
    return f"t{next(_seq)}x{id(object()) % 100000}"


@pytest.fixture(params=["memory", "redis", "redis-unix"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The contract store: the embedded store, and a real Redis over TCP and over a unix socket."""
    if request.param == "memory":
        s: Store = open_store("memory://")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        base = server.url if request.param == "redis" else server.unix_url
        sep = "&" if "?" in base else "?"
        s = open_store(f"{base}{sep}prefix={unique_prefix()}&buckets=4096")
    try:
        yield s
    finally:
        if isinstance(s, RedisStore):
            await s.flush_prefix()
        await s.close()


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    s = RedisStore(f"{redis_server.url}?prefix={unique_prefix()}&buckets=4096")
    try:
        yield s
    finally:
        await s.flush_prefix()
        await s.close()


@pytest.fixture
async def cluster_store(redis_cluster: RedisCluster) -> AsyncIterator[RedisStore]:
    s = RedisStore(f"{redis_cluster.url}?prefix={unique_prefix()}&buckets=1024")
    try:
        yield s
    finally:
        await s.flush_prefix()
        await s.close()
