"""Fixtures for the register tests: stores over the embedded store, real Redis and a real cluster."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from eir.register import open_store
from eir.register.redis_store import RedisStore
from eir.register.store import Store
from tests.support.servers import RedisCluster, RedisServer

_seq = itertools.count()


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
