"""The admin API on the Redis store (readiness follows the store), and over a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from eir.identity import parse_imei
from eir.register.decision import CheckRequest
from eir.register.policy import Policy
from eir.register.redis_store import RedisStore
from eir.register.service import EquipmentChecker
from eir.server import EirServer
from tests.admin.conftest import TOKEN, S13Client, asgi_client, make_config, redis_url, sample, started, stop_quickly
from tests.support.servers import RedisServer, start_redis

IMEI = "35209900176148"
OTHER = "49015420323751"


def _body(**kw: object) -> dict[str, object]:
    return {"status": "black", "reason": "stolen", "reporter": "op-a"} | kw


@pytest.mark.redis
class TestRedisStore:
    @pytest.fixture
    async def redis_eir(self, redis_server: RedisServer) -> AsyncIterator[EirServer]:
        server = await started(make_config(redis_url(redis_server)))
        try:
            yield server
        finally:
            assert server.checker is not None
            store = server.checker.store
            assert isinstance(store, RedisStore)
            await store.flush_prefix()
            await server.stop(drain_timeout=2)

    async def test_crud_ownership_check_and_audit(self, redis_eir: EirServer) -> None:
        async with asgi_client(redis_eir) as c:
            r = await c.post("/v1/entries/imei", json=_body(imei=IMEI))
            assert r.status_code == 201, r.text
            assert (await c.post("/v1/entries/imei", json=_body(imei=IMEI, reporter="op-b"))).status_code == 403
            r = await c.post("/v1/entries/imei", params={"force": "1"}, json=_body(imei=IMEI, reporter="op-b"))
            assert r.status_code == 200 and r.json()["replaced"]["reporter"] == "op-a"
            assert (await c.delete(f"/v1/entries/imei/{IMEI}", params={"reporter": "op-a"})).status_code == 403
            r = await c.post("/v1/entries/tac", json=_body(tac="49015420", status="grey"))
            assert r.status_code == 201

            assert redis_eir.checker is not None
            async with EquipmentChecker(redis_eir.checker.store, Policy(), cache_size=0) as reference:
                for imei in (IMEI, OTHER, "12345678901234"):
                    got = (await c.get(f"/v1/check/{imei}")).json()
                    want = await reference.check(CheckRequest(parse_imei(imei)))
                    assert (got["outcome"], got["matched"]) == (
                        want.outcome.value, want.matched.value if want.matched else None)

            exported = (await c.get("/v1/export")).text
            assert len(exported.splitlines()) == 3 and "op-b" in exported
            r = await c.get("/v1/audit", params={"imei": IMEI})
            assert [x["outcome"] for x in r.json()["records"]] == ["black"]

            r = await c.delete(f"/v1/entries/imei/{IMEI}", params={"reporter": "op-b"})
            assert r.status_code == 200
            assert (await c.get(f"/v1/entries/imei/{IMEI}")).status_code == 404
            r = await c.post("/v1/import", params={"reporter": "op-a"},
                             content=f"imei,status\n{IMEI},black\n352099001761489,white\n")
            assert r.status_code == 400 and r.json()["bad"][0]["line"] == 3
            assert (await c.get(f"/v1/entries/imei/{IMEI}")).status_code == 404

    async def test_readiness_follows_the_store(self, tmp_path: Path) -> None:
        """503 (and 503 on the API, never 500) while the store is down; 200 once it is back."""
        with start_redis(tmp_path / "redis") as redis:
            server = await started(make_config(redis.url + "?prefix=ready&timeout=1"))
            try:
                async with asgi_client(server) as c:
                    r = await c.get("/readyz")
                    assert r.status_code == 200 and r.json()["checks"]["store"] is True
                    assert (await c.post("/v1/entries/imei", json=_body(imei=IMEI))).status_code == 201

                    stop_quickly(redis)
                    r = await c.get("/readyz")
                    assert r.status_code == 503 and r.json()["status"] == "not-ready"
                    assert r.json()["checks"] == {"listening": True, "store": False}
                    assert "store unavailable" in r.json()["detail"]
                    assert (await c.get("/healthz")).status_code == 200
                    assert sample((await c.get("/metrics")).text, "eir_store_up") == 0
                    for method, url, kw in (
                        ("POST", "/v1/entries/imei", {"json": _body(imei=OTHER)}),
                        ("DELETE", f"/v1/entries/imei/{IMEI}", {"params": {"reporter": "op-a"}}),
                        ("GET", f"/v1/entries/imei/{OTHER}", {}),
                        ("GET", f"/v1/check/{OTHER}", {}),
                        ("GET", "/v1/export", {}),
                        ("POST", "/v1/import", {"params": {"reporter": "a"}, "content": f"imei,status\n{OTHER},1\n"}),
                    ):
                        r = await c.request(method, url, **kw)
                        assert r.status_code == 503, (method, url, r.text)
                        assert r.json()["error"] == "store-unavailable"

                    redis.restart()
                    for _ in range(50):
                        r = await c.get("/readyz")
                        if r.status_code == 200:
                            break
                        await asyncio.sleep(0.1)
                    assert r.status_code == 200 and r.json()["status"] == "ready"
                    assert sample((await c.get("/metrics")).text, "eir_store_up") == 1
            finally:
                await server.stop(drain_timeout=1)
                stop_quickly(redis)


class TestRealSocket:
    async def test_serve_on_port_zero_and_scrape(self, tmp_path: Path) -> None:
        server = await started(make_config(f"memory://{tmp_path}/register.eir", admin_port=0, token=TOKEN))
        mme = S13Client()
        try:
            assert server.admin_bound is not None
            host, port = server.admin_bound
            assert host == "127.0.0.1" and port > 0
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as c:
                r = await c.get("/readyz")
                assert r.status_code == 200 and r.json()["status"] == "ready"
                assert (await c.get("/v1/peers")).status_code == 401
                auth = {"Authorization": f"Bearer {TOKEN}"}
                r = await c.post("/v1/entries/imei", json=_body(imei=IMEI), headers=auth)
                assert r.status_code == 201
                before = sample((await c.get("/metrics")).text, "eir_answers_total", outcome="black")
                await mme.connect(*server.bound[0])
                assert [await mme.ecr(IMEI) for _ in range(2)] == [(2001, 1), (2001, 1)]
                r = await c.get("/metrics")
                assert r.status_code == 200
                assert sample(r.text, "eir_answers_total", outcome="black") == before + 2
                assert sample(r.text, "eir_peers", state="open") == 1
                peers = (await c.get("/v1/peers", headers=auth)).json()
                assert [p["host"] for p in peers] == ["mme.localdomain"]
                assert (await c.get("/openapi.json")).json()["info"]["title"] == "eirlab EIR admin API"
        finally:
            await mme.close()
            await server.stop(drain_timeout=2)
        assert server._admin_task is not None and server._admin_task.done()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as c:
                await c.get(f"http://{host}:{port}/healthz")

    async def test_busy_port_fails_start(self, tmp_path: Path) -> None:
        first = await started(make_config(f"memory://{tmp_path}/a.eir", admin_port=0))
        try:
            assert first.admin_bound is not None
            second = EirServer(make_config(f"memory://{tmp_path}/b.eir", admin_port=first.admin_bound[1]))
            with pytest.raises(OSError, match="admin API cannot listen"):
                await second.start()
            await second.stop(drain_timeout=1)
        finally:
            await first.stop(drain_timeout=1)
