"""The admin API against a real EirServer on the embedded store (ASGI transport, no socket)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from eir.identity import parse_imei
from eir.register.decision import CheckRequest
from eir.register.policy import Policy
from eir.register.service import EquipmentChecker
from eir.server import EirServer
from tests.admin.conftest import TOKEN, S13Client, asgi_client, make_config, sample, started

IMEI = "35209900176148"          # 14-digit key; 15-digit form with its check digit below
IMEI15 = "352099001761481"
OTHER = "49015420323751"
IMSI = "001010123456789"


def _imei(body: dict[str, object]) -> dict[str, object]:
    return {"status": "black", "reason": "stolen", "reporter": "op-a"} | body


class TestEntries:
    async def test_imei_crud_and_ownership(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/entries/imei", json=_imei({"imei": IMEI15}))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["action"] == "added" and body["entry"]["ident"] == f"imei:{IMEI}"
        assert body["entry"]["status"] == "black" and body["entry"]["equipment_status"] == 1
        assert body["entry"]["reporter"] == "op-a" and body["entry"]["reason"] == "stolen"

        r = await client.get(f"/v1/entries/imei/{IMEI}")
        assert r.status_code == 200 and [e["ident"] for e in r.json()["entries"]] == [f"imei:{IMEI}"]

        # Same reporter replaces its own entry.
        r = await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "status": "grey"}))
        assert r.status_code == 200 and r.json()["action"] == "replaced"
        assert r.json()["replaced"]["status"] == "black" and r.json()["entry"]["status"] == "grey"

        # Another organisation may not, unless forced (GSMA rule, as eir list add).
        r = await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "reporter": "op-b"}))
        assert r.status_code == 403
        assert r.json()["error"] == "forbidden" and r.json()["entry"]["reporter"] == "op-a"
        assert "op-a" in r.json()["detail"]
        r = await client.post("/v1/entries/imei", params={"force": "true"},
                              json=_imei({"imei": IMEI, "reporter": "op-b", "status": "white"}))
        assert r.status_code == 200 and r.json()["entry"]["reporter"] == "op-b"

        # Removal: only the reporter (now op-b) unless forced.
        r = await client.delete(f"/v1/entries/imei/{IMEI}", params={"reporter": "op-a"})
        assert r.status_code == 403
        r = await client.delete(f"/v1/entries/imei/{IMEI}", params={"reporter": "op-a", "force": "true"})
        assert r.status_code == 200 and r.json()["removed"]["reporter"] == "op-b"
        r = await client.delete(f"/v1/entries/imei/{IMEI}", params={"reporter": "op-a"})
        assert r.status_code == 404 and r.json()["error"] == "not-found"
        r = await client.get(f"/v1/entries/imei/{IMEI}")
        assert r.status_code == 404

    async def test_pairing_range_and_tac(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "imsi": IMSI, "status": "white"}))
        assert r.status_code == 201 and r.json()["entry"]["kind"] == "imei+imsi"
        r = await client.post("/v1/entries/range", json=_imei({"first": "35209900000000", "last": "35209900999999"}))
        assert r.status_code == 201 and r.json()["entry"]["last"] == "35209900999999"
        r = await client.post("/v1/entries/tac", json=_imei({"tac": "35209900", "status": "grey"}))
        assert r.status_code == 201
        r = await client.post("/v1/entries/tac", json=_imei({"tac": "35209900", "svns": ["01", "02"]}))
        assert r.status_code == 201 and r.json()["entry"]["ident"] == "tac:35209900:01 02"

        r = await client.get(f"/v1/entries/imei/{IMEI}")
        kinds = sorted(e["kind"] for e in r.json()["entries"])
        assert kinds == ["imei+imsi", "range", "tac", "tac+svn"]
        r = await client.get("/v1/entries/range/35209900000000/35209900999999")
        assert r.status_code == 200 and r.json()["kind"] == "range"
        r = await client.get("/v1/entries/tac/35209900")
        assert [e["kind"] for e in r.json()["entries"]] == ["tac", "tac+svn"]

        r = await client.delete("/v1/entries/tac/35209900", params={"reporter": "op-a", "sv": ["02", "01"]})
        assert r.status_code == 200 and r.json()["removed"]["svns"] == ["01", "02"]
        r = await client.delete("/v1/entries/tac/35209900", params={"reporter": "op-b"})
        assert r.status_code == 403
        r = await client.delete("/v1/entries/range/35209900000000/35209900999999", params={"reporter": "op-a"})
        assert r.status_code == 200
        r = await client.get("/v1/entries/range/35209900000000/35209900999999")
        assert r.status_code == 404
        r = await client.delete(f"/v1/entries/imei/{IMEI}", params={"reporter": "op-a", "imsi": IMSI})
        assert r.status_code == 200 and r.json()["removed"]["imsi"] == IMSI

    @pytest.mark.parametrize(("path", "body", "words"), [
        ("/v1/entries/imei", {"imei": "352099001761489"}, "check digit 9 is wrong"),
        ("/v1/entries/imei", {"imei": "3520990017614"}, "13 digits"),
        ("/v1/entries/imei", {"imei": IMEI, "imsi": "12ab"}, "IMSI '12ab'"),
        ("/v1/entries/imei", {"imei": IMEI, "status": "purple"}, "status 'purple'"),
        ("/v1/entries/imei", {"imei": IMEI, "reason": "borrowed"}, "reason 'borrowed'"),
        ("/v1/entries/imei", {"imei": IMEI, "expires": "next week"}, "time 'next week'"),
        ("/v1/entries/imei", {"imei": IMEI, "reporter": "a,b"}, "reporter 'a,b'"),
        ("/v1/entries/range", {"first": "35209900999999", "last": "35209900000000"}, "ends before it starts"),
        ("/v1/entries/tac", {"tac": "3520990"}, "8 decimal digits"),
        ("/v1/entries/tac", {"tac": "35209900", "svns": ["1"]}, "software version '1'"),
    ])
    async def test_bad_input_is_400_with_the_reason(self, client: httpx.AsyncClient, path: str,
                                                    body: dict[str, object], words: str) -> None:
        r = await client.post(path, json=_imei(body))
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "bad-request" and words in r.json()["detail"]

    async def test_missing_fields_are_400_not_422(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/entries/imei", json={"imei": IMEI, "status": "black"})
        assert r.status_code == 400 and "reporter" in r.json()["detail"]
        r = await client.delete(f"/v1/entries/imei/{IMEI}")
        assert r.status_code == 400 and "reporter" in r.json()["detail"]
        r = await client.get("/v1/entries/imei/12x45678901234")
        assert r.status_code == 400 and "non-digit" in r.json()["detail"]


class TestCheck:
    async def test_the_apis_own_writes_are_decided_on_at_once(self, memory_server: EirServer,
                                                              client: httpx.AsyncClient) -> None:
        """Read your writes: a check right after the API's own write (entry or rule, added or removed) sees it,
        without waiting for the change feed. The feed is stopped here, so only the write path can make it so."""
        checker = memory_server.checker
        assert checker is not None and checker._watch_task is not None
        checker._watch_task.cancel()

        async def outcome() -> str:
            r = await client.get(f"/v1/check/{OTHER}")
            assert r.status_code == 200, r.text
            return str(r.json()["outcome"])

        assert await outcome() == "unknown"  # and now in the cache
        await client.post("/v1/entries/imei", json=_imei({"imei": OTHER, "status": "white"}))
        assert await outcome() == "white"
        assert (await client.delete(f"/v1/entries/imei/{OTHER}", params={"reporter": "op-a"})).status_code == 200
        assert await outcome() == "unknown"
        await client.post("/v1/entries/tac", json=_imei({"tac": OTHER[:8], "status": "grey", "reason": "other"}))
        assert await outcome() == "grey"
        assert (await client.delete(f"/v1/entries/tac/{OTHER[:8]}", params={"reporter": "op-a"})).status_code == 200
        assert await outcome() == "unknown"
        r = await client.post("/v1/import", params={"reporter": "op-a"}, content=f"imei,status\n{OTHER},black\n")
        assert r.status_code == 200 and r.json()["applied"] == 1, r.text
        assert await outcome() == "black"

    async def test_same_decision_as_the_equipment_checker(self, memory_server: EirServer,
                                                           client: httpx.AsyncClient) -> None:
        await client.post("/v1/entries/range", json=_imei({"first": "35209900000000", "last": "35209900999999"}))
        await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "imsi": IMSI, "status": "white"}))
        await client.post("/v1/entries/tac", json=_imei({"tac": "49015420", "status": "grey", "reason": "other"}))
        await client.post("/v1/entries/tac", json=_imei({"tac": "49015420", "svns": ["07"], "status": "black"}))
        assert memory_server.checker is not None
        cases = [(IMEI, None, None), (IMEI, IMSI, None), (OTHER, None, None), (OTHER, None, "07"),
                 (OTHER + "07", None, None), ("12345678901234", None, None)]
        async with EquipmentChecker(memory_server.checker.store, Policy(), cache_size=0) as reference:
            for imei, imsi, sv in cases:
                params = {k: v for k, v in (("imsi", imsi), ("sv", sv)) if v is not None}
                r = await client.get(f"/v1/check/{imei}", params=params)
                assert r.status_code == 200, r.text
                got = r.json()
                want = await reference.check(CheckRequest(parse_imei(imei), imsi, sv))
                assert got["outcome"] == want.outcome.value, (imei, imsi, sv)
                assert got["equipment_status"] == (None if want.status is None else int(want.status))
                assert got["matched"] == (want.matched.value if want.matched else None)
                assert (got["entry"] or {}).get("ident") == (want.entry.ident if want.entry else None)
                assert got["detail"] == want.detail
                assert got["reason"] == (want.reason.name.lower() if want.reason is not None else None)
        r = await client.get(f"/v1/check/{IMEI}", params={"imsi": IMSI})
        assert r.json()["outcome"] == "black-allowed-by-pairing" and r.json()["status"] == "white"
        r = await client.get("/v1/check/12345678901234")
        assert r.json()["outcome"] == "unknown" and r.json()["status"] is None

    @pytest.mark.parametrize(("url", "words"), [
        ("/v1/check/1234", "4 digits"), (f"/v1/check/{IMEI}?imsi=1", "IMSI '1'"),
        (f"/v1/check/{IMEI}?sv=123", "software version '123'"),
    ])
    async def test_bad_check_is_400(self, client: httpx.AsyncClient, url: str, words: str) -> None:
        r = await client.get(url)
        assert r.status_code == 400 and words in r.json()["detail"]


class TestImportExport:
    async def test_bad_row_reports_its_line_and_applies_nothing(self, client: httpx.AsyncClient) -> None:
        body = ("kind,imei,last,status,reason,reporter,imsi,svn,created,expires\n"
                f"imei,{IMEI},,black,stolen,,,,,\n"
                "imei,352099001761489,,black,,,,,,\n"       # line 3: wrong check digit
                f"imei,{OTHER},,purple,,,,,,\n")            # line 4: bad status
        r = await client.post("/v1/import", params={"reporter": "op-a"}, content=body,
                              headers={"content-type": "text/csv"})
        assert r.status_code == 400, r.text
        rep = r.json()
        assert rep["applied_nothing"] and rep["applied"] == 0 and not rep["ok"]
        assert [(b["line"], "check digit" in b["reason"] or "status" in b["reason"]) for b in rep["bad"]] == [
            (3, True), (4, True)]
        assert (await client.get(f"/v1/entries/imei/{IMEI}")).status_code == 404

        r = await client.post("/v1/import", params={"reporter": "op-a", "skip_bad": "true"}, content=body)
        assert r.status_code == 200 and r.json()["applied"] == 1 and [b["line"] for b in r.json()["bad"]] == [3, 4]
        assert (await client.get(f"/v1/entries/imei/{IMEI}")).json()["entries"][0]["reporter"] == "op-a"

    async def test_conflicts_and_bad_header(self, client: httpx.AsyncClient) -> None:
        await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "reporter": "op-b"}))
        body = f"imei,status\n{IMEI},white\n{OTHER},white\n"
        r = await client.post("/v1/import", params={"reporter": "op-a"}, content=body)
        assert r.status_code == 200 and r.json()["applied"] == 1 and not r.json()["ok"]
        assert r.json()["conflicts"][0]["line"] == 2 and "op-b" in r.json()["conflicts"][0]["reason"]
        r = await client.post("/v1/import", params={"reporter": "op-a"}, content="colour,imei\nred,1\n")
        assert r.status_code == 400 and "unknown column" in r.json()["detail"]
        r = await client.post("/v1/import", params={"reporter": "op-a"}, content="")
        assert r.status_code == 400 and "empty" in r.json()["detail"]
        r = await client.post("/v1/import", params={"reporter": "op-a", "status": "blue"}, content=body)
        assert r.status_code == 400 and "status 'blue'" in r.json()["detail"]

    async def test_export_round_trips(self, client: httpx.AsyncClient, tmp_path: Path) -> None:
        await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "expires": "2099-01-01"}))
        await client.post("/v1/entries/imei", json=_imei({"imei": IMEI, "imsi": IMSI, "status": "white"}))
        await client.post("/v1/entries/range", json=_imei({"first": "35209900000000", "last": "35209900000099",
                                                           "reporter": "op-b"}))
        await client.post("/v1/entries/tac", json=_imei({"tac": "49015420", "svns": ["07", "08"]}))
        r = await client.get("/v1/export")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        exported = r.text
        rows = list(csv.DictReader(io.StringIO(exported)))
        assert len(rows) == 4 and {x["reporter"] for x in rows} == {"op-a", "op-b"}

        other = await started(make_config(f"memory://{tmp_path}/second.eir"))
        try:
            async with asgi_client(other) as c2:
                r = await c2.post("/v1/import", params={"reporter": "nobody"}, content=exported)
                assert r.status_code == 200 and r.json()["applied"] == 4, r.text
                again = (await c2.get("/v1/export")).text
        finally:
            await other.stop(drain_timeout=1)
        assert sorted(again.splitlines()) == sorted(exported.splitlines())


class TestAudit:
    async def test_audit_query_returns_recorded_decisions(self, memory_server: EirServer, client: httpx.AsyncClient,
                                                          mme: S13Client) -> None:
        await client.post("/v1/entries/imei", json=_imei({"imei": IMEI}))
        await mme.connect(*memory_server.bound[0])
        assert await mme.ecr(IMEI) == (2001, 1)
        assert await mme.ecr(OTHER) == (5422, None)
        assert (await client.get(f"/v1/check/{IMEI}")).status_code == 200
        r = await client.get("/v1/audit", params={"imei": IMEI15})
        assert r.status_code == 200 and r.json()["enabled"]
        recs = r.json()["records"]
        assert [(x["requester"], x["outcome"], x["entry"]) for x in recs] == [
            ("mme.localdomain", "black", f"imei:{IMEI}"), ("admin-api", "black", f"imei:{IMEI}")]
        r = await client.get("/v1/audit", params={"outcome": "unknown"})
        assert [x["imei"] for x in r.json()["records"]] == [OTHER]
        r = await client.get("/v1/audit", params={"limit": 1})
        assert r.json()["count"] == 1 and r.json()["records"][0]["requester"] == "admin-api"
        r = await client.get("/v1/audit", params={"since": "2099-01-01"})
        assert r.json()["count"] == 0
        r = await client.get("/v1/audit", params={"since": "yesterday"})
        assert r.status_code == 400
        r = await client.get("/v1/audit", params={"limit": 0})
        assert r.status_code == 400
        r = await client.get("/v1/audit/export")
        assert r.status_code == 200 and r.text.splitlines()[0].startswith("time,imei,imsi")
        assert len(r.text.splitlines()) == 4


class TestAuthMetricsHealth:
    async def test_token_required_on_v1_only(self, memory_server: EirServer) -> None:
        async with asgi_client(memory_server, token=TOKEN) as c:
            for url in ("/v1/peers", f"/v1/check/{IMEI}", "/v1/export", "/v1/audit"):
                r = await c.get(url)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), url
            r = await c.get("/v1/peers", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401 and r.json()["error"] == "unauthorized"
            r = await c.get("/v1/peers", headers={"Authorization": f"Basic {TOKEN}"})
            assert r.status_code == 401
            r = await c.post("/v1/entries/imei", json=_imei({"imei": IMEI}))
            assert r.status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert (await c.get("/v1/peers", headers=auth)).status_code == 200
            assert (await c.post("/v1/entries/imei", json=_imei({"imei": IMEI}), headers=auth)).status_code == 201
            for url in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
                assert (await c.get(url)).status_code == 200, url

    async def test_token_from_config(self, tmp_path: Path) -> None:
        server = await started(make_config(f"memory://{tmp_path}/r.eir", token=TOKEN))
        try:
            async with asgi_client(server, token=...) as c:
                assert (await c.get("/v1/peers")).status_code == 401
                assert (await c.get("/v1/peers", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        finally:
            await server.stop(drain_timeout=1)

    async def test_metrics_count_answers_and_peers(self, memory_server: EirServer, client: httpx.AsyncClient,
                                                   mme: S13Client) -> None:
        await client.post("/v1/entries/imei", json=_imei({"imei": IMEI}))
        await client.post("/v1/entries/imei", json=_imei({"imei": OTHER, "status": "white"}))
        text = (await client.get("/metrics")).text
        black0 = sample(text, "eir_answers_total", outcome="black")
        await mme.connect(*memory_server.bound[0])
        for _ in range(3):
            assert await mme.ecr(IMEI) == (2001, 1)
        assert await mme.ecr(OTHER) == (2001, 0)
        assert await mme.ecr("12345678901234") == (5422, None)
        r = await client.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert sample(text, "eir_answers_total", outcome="black") == black0 + 3
        assert sample(text, "eir_answers_total", outcome="white") == 1
        assert sample(text, "eir_answers_total", outcome="unknown") == 1
        assert sample(text, "eir_results_total", code="2001") == 4
        assert sample(text, "eir_results_total", code="5422") == 1
        assert sample(text, "eir_requests_total", interface="s13") == 5
        assert sample(text, "eir_request_latency_seconds_count") == 5
        assert sample(text, "eir_peers", state="open") == 1
        assert sample(text, "eir_peer_info", host="mme.localdomain", state="open", watchdog="okay") == 1
        assert sample(text, "eir_store_round_trips_total") >= 1
        hits, misses = sample(text, "eir_cache_hits_total"), sample(text, "eir_cache_misses_total")
        assert hits + misses == 5 and hits >= 1  # the repeated IMEI is served from the cache
        assert sample(text, "eir_cache_hit_ratio") == pytest.approx(hits / (hits + misses))
        peers = (await client.get("/v1/peers")).json()
        assert [(p["host"], p["realm"], p["state"], p["transport"]) for p in peers] == [
            ("mme.localdomain", "localdomain", "open", "tcp")]

    async def test_health_ready_and_openapi(self, memory_server: EirServer, client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json()["status"] == "alive"
        r = await client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {"listening": True, "store": True}
        doc = (await client.get("/openapi.json")).json()
        for path in ("/v1/entries/imei", "/v1/entries/imei/{imei}", "/v1/entries/range/{first}/{last}",
                     "/v1/entries/tac/{tac}", "/v1/check/{imei}", "/v1/import", "/v1/export", "/v1/audit",
                     "/v1/peers", "/metrics", "/healthz", "/readyz"):
            assert path in doc["paths"], path
        assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        assert "ErrorOut" in doc["components"]["schemas"]
        assert (await client.get("/docs")).status_code == 200
        r = await client.get("/v1/nothing-here")
        assert r.status_code == 404 and r.json()["error"] == "not-found"

    async def test_not_ready_before_start(self, tmp_path: Path) -> None:
        server = EirServer(make_config(f"memory://{tmp_path}/r.eir"))
        async with asgi_client(server) as c:
            r = await c.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "not-ready"
            r = await c.get(f"/v1/check/{IMEI}")
            assert r.status_code == 503 and r.json()["error"] == "not-ready"
            assert (await c.get("/healthz")).status_code == 200
