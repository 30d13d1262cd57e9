"""The admin REST API of ``eir serve`` (issue 5 "Admin HTTP API and metrics"), a FastAPI app.

Built by :func:`build_app` around a running :class:`eir.server.EirServer`, it works on the same
store and the same decision service as the S13 front end, with the same validation and ownership
rules as the CLI (``eir list``, ``eir check``, ``eir audit``):

* ``/v1/entries/{imei,range,tac}/...``: add (POST), show (GET), remove (DELETE) entries;
* ``/v1/check/{imei}``: the decision and the entry that matched;
* ``/v1/import`` (CSV body) and ``/v1/export`` (CSV stream); ``/v1/audit`` (query), ``/v1/audit/export``;
* ``/v1/peers``: the Diameter peer table;
* ``/metrics`` (Prometheus text), ``/healthz`` (alive), ``/readyz`` (listening and store reachable);
* ``/openapi.json``, ``/docs``.

Every ``/v1/*`` route requires ``Authorization: Bearer <token>`` when a token is configured (401
otherwise); ``/metrics``, ``/healthz`` and ``/readyz`` stay open. Known conditions map onto status
codes, never 500: 400 bad input (with the reason), 401 token, 403 entry owned by another reporter,
404 not found, 503 store unavailable or server not ready.
"""

import asyncio
import contextlib
import csv
import hashlib
import hmac
import io
import os
import tempfile
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from eir.identity import ImeiError, parse_imei, parse_tac
from eir.register.audit import AUDIT_FIELDS, AuditRecord
from eir.register.csvio import CsvFormatError, format_time, parse_time, write_entries
from eir.register.decision import CheckRequest, Decision, Outcome
from eir.register.importer import ImportInterrupted, ImportReport, import_csv
from eir.register.model import Entry, EntryError, Granularity, Reason, Status, validate_imsi
from eir.register.selection import SelectionError, select_entry, validate_svn
from eir.register.service import EquipmentChecker
from eir.register.store import EntryNotFound, OwnershipError, Store, StoreUnavailable
from protocols.diameter.peer_state import State

if TYPE_CHECKING:
    from eir.server import EirServer

__all__ = [
    "AuditQuery",
    "DecisionOut",
    "EntryList",
    "EntryOut",
    "ErrorOut",
    "Health",
    "ImeiEntryIn",
    "ImportResult",
    "PeerOut",
    "RangeEntryIn",
    "RemoveResult",
    "TacEntryIn",
    "WriteResult",
    "build_app",
]

T = TypeVar("T")

#: The requester recorded in the audit trail for checks made through the API.
API_REQUESTER = "admin-api"
READY_PING_TIMEOUT = 2.0
AUDIT_LIMIT_MAX = 10_000


# ------------------------------------------------------------------------------------------ models
class ErrorOut(BaseModel):
    """Every error answer: a short machine-readable code and the reason in words."""

    error: str = Field(description="bad-request, unauthorized, forbidden, not-found, store-unavailable, "
                                   "not-ready, ...")
    detail: str = Field(description="What is wrong, e.g. the IMEI's bad check digit.")
    entry: "EntryOut | None" = Field(None, description="For 403: the existing entry and its reporter.")
    applied_through: int | None = Field(None, description="For an interrupted import: last CSV line applied.")


class EntryOut(BaseModel):
    """A list entry as stored."""

    ident: str = Field(description="The entry's identity: imei:KEY[:IMSI], range:FIRST:LAST or tac:TAC[:SVNS].")
    kind: str = Field(description="imei, imei+imsi, range, tac or tac+svn.")
    key: str = Field(description="14-digit IMEI key, first IMEI of a range, or the 8-digit TAC.")
    last: str | None = Field(None, description="Last IMEI of a range.")
    imsi: str | None = Field(None, description="IMSI of an IMEI+IMSI pairing.")
    svns: list[str] | None = Field(None, description="Software versions of a TAC+SVN rule.")
    status: Literal["white", "grey", "black"]
    equipment_status: int = Field(description="The TS 29.272 Equipment-Status code (0 white, 1 black, 2 grey).")
    reason: str
    reporter: str = Field(description="Reporting organisation: only it may change or remove the entry "
                                      "unless forced.")
    created: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SSZ.")
    expires: str | None = None
    description: str

    @classmethod
    def of(cls, e: Entry) -> "EntryOut":
        return cls(
            ident=e.ident, kind=e.granularity.value, key=e.key, last=e.last, imsi=e.imsi,
            svns=sorted(e.svns) if e.svns else None, status=_status_word(e.status),
            equipment_status=int(e.status), reason=e.reason.name.lower(), reporter=e.reporter,
            created=format_time(e.created), expires=format_time(e.expires) or None, description=e.describe(),
        )


_STATUS_DOC = "white, grey or black (also gray, 0, 2, 1)"
_REASON_DOC = "stolen, lost, fraud, faulty, counterfeit, duplicate, test, other (or codes 1-7, 0)"
_EXPIRES_DOC = "YYYY-MM-DD, ISO 8601 date-time (UTC if no offset) or Unix seconds"


class _EntryFields(BaseModel):
    status: str = Field(description=_STATUS_DOC, examples=["black"])
    reason: str = Field("other", description=_REASON_DOC, examples=["stolen"])
    reporter: str = Field(description="Reporting organisation (owner of the entry).", examples=["operator-a"])
    expires: str | int | None = Field(None, description=_EXPIRES_DOC)


class ImeiEntryIn(_EntryFields):
    """An IMEI entry, or an IMEI+IMSI pairing when ``imsi`` is given."""

    imei: str = Field(description="14 digits, or 15 with a correct Luhn check digit.", examples=["35209900176148"])
    imsi: str | None = Field(None, description="Pair the entry with this IMSI (6-15 digits).")


class RangeEntryIn(_EntryFields):
    """An inclusive IMEI range."""

    first: str = Field(description="First IMEI (14 digits, or 15 with check digit).")
    last: str = Field(description="Last IMEI (14 digits, or 15 with check digit).")


class TacEntryIn(_EntryFields):
    """A TAC entry, or a TAC+SVN rule when ``svns`` is given."""

    tac: str = Field(description="Type Allocation Code, 8 digits.", examples=["35209900"])
    svns: list[str] = Field(default_factory=list, description="Software versions (2 digits each).")


class WriteResult(BaseModel):
    """The entry written and the one it replaced, if any."""

    action: Literal["added", "replaced"]
    entry: EntryOut
    replaced: EntryOut | None = None


class RemoveResult(BaseModel):
    removed: EntryOut


class EntryList(BaseModel):
    """Entries concerning one IMEI (its own, the ranges covering it, its TAC rules) or one TAC."""

    key: str
    entries: list[EntryOut]


class DecisionOut(BaseModel):
    """The register's decision for one check (as the S13 front end would get it)."""

    imei: str = Field(description="The 14-digit IMEI key decided on.")
    imsi: str | None = None
    svn: str | None = Field(None, description="The software version used (from sv, else from an IMEISV).")
    outcome: str = Field(description="white, grey, black, black-allowed-by-pairing or unknown.")
    status: Literal["white", "grey", "black"] | None = Field(
        None, description="The Equipment-Status to answer; null for unknown equipment (S13 answers 5422).")
    equipment_status: int | None = None
    matched: str | None = Field(None, description="The precedence level that decided (imei+imsi, imei, range, "
                                                  "tac+svn, tac, default).")
    reason: str | None = None
    detail: str
    entry: EntryOut | None = Field(None, description="The entry that decided.")


class RowErrorOut(BaseModel):
    line: int = Field(description="Line number in the CSV body (the header is line 1).")
    reason: str


class ImportResult(BaseModel):
    """What an import did: exactly what was applied, and every row that was not, with why."""

    ok: bool = Field(description="Every row applied.")
    rows: int
    applied: int
    applied_nothing: bool = Field(description="Bad rows were found and, without skip_bad, nothing was applied.")
    bad: list[RowErrorOut] = Field(description="Rows that could not be parsed.")
    conflicts: list[RowErrorOut] = Field(description="Rows refused: entry owned by another reporter.")

    @classmethod
    def of(cls, r: ImportReport) -> "ImportResult":
        return cls(ok=r.ok, rows=r.rows, applied=r.applied, applied_nothing=r.applied_nothing,
                   bad=[RowErrorOut(line=e.line, reason=e.reason) for e in r.bad],
                   conflicts=[RowErrorOut(line=e.line, reason=e.reason) for e in r.conflicts])


class AuditRecordOut(BaseModel):
    """One recorded decision."""

    time: float = Field(description="Unix time of the decision.")
    imei: str
    imsi: str
    svn: str
    requester: str = Field(description="Origin-Host of the MME, or admin-api.")
    outcome: str
    status: str
    matched: str
    entry: str = Field(description="Identity of the deciding entry.")
    reporter: str

    @classmethod
    def of(cls, r: AuditRecord) -> "AuditRecordOut":
        d: dict[str, Any] = r.as_dict()
        d["time"] = _record_time(r)
        return cls(**d)


class AuditQuery(BaseModel):
    enabled: bool = Field(description="Decisions are being recorded (store.audit).")
    count: int
    records: list[AuditRecordOut] = Field(description="Matching records, oldest first (the most recent `limit`).")


class PeerOut(BaseModel):
    """One Diameter connection."""

    remote: str | None
    transport: str
    state: str
    watchdog: str
    host: str | None
    realm: str | None


class Health(BaseModel):
    status: Literal["alive", "ready", "not-ready"]
    checks: dict[str, bool] = Field(default_factory=dict)
    detail: str = ""


ErrorOut.model_rebuild()


def _status_word(s: Status) -> Literal["white", "grey", "black"]:
    return "white" if s is Status.WHITE else "grey" if s is Status.GREY else "black"


def _record_time(r: AuditRecord) -> float:
    try:
        return float(r.time)
    except ValueError:
        return 0.0


# ------------------------------------------------------------------------------------------ errors
class ApiError(Exception):
    """A known condition with its HTTP status."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
           **extra: Any) -> JSONResponse:
    body = ErrorOut(error=code, detail=detail, **extra).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.code, exc.detail, exc.headers)

    async def ownership(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OwnershipError)
        return _error(403, "forbidden", str(exc), entry=EntryOut.of(exc.existing))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, "not-found", str(exc))

    async def interrupted(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ImportInterrupted)
        return _error(503, "store-unavailable", str(exc), applied_through=exc.applied_through)

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return _error(503, "store-unavailable", f"store unavailable, nothing more was written: {exc}")

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return _error(400, "bad-request", "; ".join(parts) or "invalid request")

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers) if exc.headers else None)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(OwnershipError, ownership)
    app.add_exception_handler(EntryNotFound, not_found)
    app.add_exception_handler(ImportInterrupted, interrupted)
    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _bad(fn: Callable[[], T]) -> T:
    """Run a validation step; its ImeiError/EntryError (the CLI's validation) becomes a 400."""
    try:
        return fn()
    except (ImeiError, EntryError) as exc:
        raise ApiError(400, "bad-request", str(exc)) from exc


def _imsi(text: str | None) -> str | None:
    """An optional IMSI, validated (6-15 digits)."""
    if text is None:
        return None
    return _bad(lambda: validate_imsi(text))


def _entry_kw(body: _EntryFields) -> dict[str, Any]:
    """Status, reason, reporter and expiry of a request body, validated as the CLI does."""
    def parse() -> dict[str, Any]:
        expires = parse_time(str(body.expires)) if body.expires not in (None, "") else None
        return {"status": Status.parse(body.status), "reason": Reason.parse(body.reason),
                "reporter": body.reporter, "expires": expires}
    return _bad(parse)


def _select(status: Status, **kw: Any) -> Entry:
    try:
        return select_entry(status, **kw)
    except SelectionError as exc:
        raise ApiError(400, "bad-request", str(exc)) from exc
    except (ImeiError, EntryError) as exc:
        raise ApiError(400, "bad-request", str(exc)) from exc


# ------------------------------------------------------------------------------------------ metrics
class _AdminGauges:
    """Gauges computed at scrape time that EirMetrics does not hold, registered once per registry."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.cache_entries = Gauge("eir_cache_entries", "IMEIs held in the in-process cache", registry=r)
        self.replica_complete = Gauge("eir_replica_complete", "1 while the in-process replica holds every listed "
                                      "IMEI (store.replica_max_entries)", registry=r)
        self.replica_unsure = Gauge("eir_replica_unsure", "IMEIs changed since the replica was loaded and not "
                                    "fetched again yet", registry=r)
        self.pending = Gauge("eir_pending_decisions", "Decisions waiting for the store", registry=r)
        self.peer = Gauge("eir_peer_info", "One per Diameter connection (value 1) with its states",
                          ["remote", "transport", "host", "realm", "state", "watchdog"], registry=r)


_GAUGES: "weakref.WeakKeyDictionary[CollectorRegistry, _AdminGauges]" = weakref.WeakKeyDictionary()


def _gauges(r: CollectorRegistry) -> _AdminGauges:
    g = _GAUGES.get(r)
    if g is None:
        g = _GAUGES[r] = _AdminGauges(r)
    return g


def _update_scrape_gauges(server: "EirServer") -> None:
    """Peers by state (and one info sample per connection), cache hit ratio and size, decisions waiting."""
    m = server.metrics
    g = _gauges(m.registry)
    counts = {s.value: 0 for s in State}
    g.peer.clear()
    for p in server.peers():
        state = str(p["state"])
        counts[state] = counts.get(state, 0) + 1
        g.peer.labels(str(p["remote"]), str(p["transport"]), str(p["host"] or ""), str(p["realm"] or ""), state,
                      str(p["watchdog"])).set(1)
    for state, n in counts.items():
        m.peers.labels(state).set(n)
    m.update_ratio()
    if server.checker is not None:
        g.cache_entries.set(len(server.checker.cache))
        replica = server.checker.replica
        g.replica_complete.set(1 if replica is not None and replica.complete else 0)
        g.replica_unsure.set(replica.unsure_count if replica is not None else 0)
    g.pending.set(server.frontend.pending if server.frontend is not None else 0)


# ------------------------------------------------------------------------------------------ the app
_TOKEN_FROM_CONFIG: EllipsisType = ...


def build_app(server: "EirServer", *, token: str | EllipsisType | None = _TOKEN_FROM_CONFIG,
              stopping: asyncio.Event | None = None) -> FastAPI:
    """The admin API of ``server`` (started or not: routes needing it answer 503 until it is).

    ``token``: the bearer token every ``/v1/*`` route requires (default: ``server.config.admin.token``;
    None: no token). ``stopping``: once set, ``/readyz`` answers 503 (the server is shutting down).
    """
    required = server.config.admin.token if isinstance(token, EllipsisType) else token
    token_digest = hashlib.sha256(required.encode()).digest() if required else None
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <admin token> "
                        "(admin.token / admin.token_env / --admin-token)")

    async def authorize(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        if token_digest is None:
            return
        given = hashlib.sha256(credentials.credentials.encode()).digest() if credentials is not None else b""
        if not hmac.compare_digest(given, token_digest):  # constant time
            raise ApiError(401, "unauthorized", "missing or wrong bearer token",
                           {"WWW-Authenticate": 'Bearer realm="eir-admin"'})

    def checker() -> EquipmentChecker:
        c = server.checker
        if c is None:
            raise ApiError(503, "not-ready", "the EIR is not started")
        return c

    def store() -> Store:
        return checker().store

    app = FastAPI(
        title="eirlab EIR admin API",
        version="1",
        description=__doc__ or "",
        responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    )
    _install_error_handlers(app)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])
    errs: dict[int | str, dict[str, Any]] = {403: {"model": ErrorOut}, 404: {"model": ErrorOut}}

    # ---- entries -------------------------------------------------------------------------------
    async def write(entry: Entry, force: bool, response: Response) -> WriteResult:
        replaced = await store().put(entry, force=force)
        await checker().wrote(entry)
        response.status_code = 200 if replaced is not None else 201
        return WriteResult(action="replaced" if replaced is not None else "added", entry=EntryOut.of(entry),
                           replaced=EntryOut.of(replaced) if replaced is not None else None)

    async def remove(sel: Entry, reporter: str, force: bool) -> RemoveResult:
        removed = await store().remove(sel.ident, reporter=reporter, force=force)
        await checker().wrote(removed)
        return RemoveResult(removed=EntryOut.of(removed))

    force_q = Query(False, description="Replace or remove an entry reported by another organisation.")
    reporter_q = Query(description="The reporting organisation asking (only the entry's reporter may remove it "
                                   "unless force).")

    @v1.post("/entries/imei", status_code=201, response_model=WriteResult, responses=errs, tags=["entries"],
             summary="Add or replace an IMEI entry (or IMEI+IMSI pairing)")
    async def add_imei(body: ImeiEntryIn, response: Response, force: bool = force_q) -> WriteResult:
        imsi = _imsi(body.imsi)
        return await write(_select(imei=body.imei, imsi=imsi, **_entry_kw(body)), force, response)

    @v1.post("/entries/range", status_code=201, response_model=WriteResult, responses=errs, tags=["entries"],
             summary="Add or replace an IMEI range")
    async def add_range(body: RangeEntryIn, response: Response, force: bool = force_q) -> WriteResult:
        return await write(_select(rng=(body.first, body.last), **_entry_kw(body)), force, response)

    @v1.post("/entries/tac", status_code=201, response_model=WriteResult, responses=errs, tags=["entries"],
             summary="Add or replace a TAC entry (or TAC+SVN rule)")
    async def add_tac(body: TacEntryIn, response: Response, force: bool = force_q) -> WriteResult:
        return await write(_select(tac=body.tac, svns=body.svns, **_entry_kw(body)), force, response)

    @v1.get("/entries/imei/{imei}", response_model=EntryList, responses=errs, tags=["entries"],
            summary="Every entry concerning an IMEI: its own, the ranges covering it, its TAC rules")
    async def show_imei(imei: str) -> EntryList:
        key = _bad(lambda: parse_imei(imei).key)
        entries = await store().entries_for(key)
        if not entries:
            raise ApiError(404, "not-found", f"no entry concerns IMEI {key}")
        return EntryList(key=key, entries=[EntryOut.of(e) for e in entries])

    @v1.get("/entries/range/{first}/{last}", response_model=EntryOut, responses=errs, tags=["entries"],
            summary="One IMEI range")
    async def show_range(first: str, last: str) -> EntryOut:
        ident = _select(Status.WHITE, rng=(first, last)).ident
        for e in await store().rules():
            if e.ident == ident:
                return EntryOut.of(e)
        raise EntryNotFound(ident)

    @v1.get("/entries/tac/{tac}", response_model=EntryList, responses=errs, tags=["entries"],
            summary="The TAC entry and TAC+SVN rules of a TAC")
    async def show_tac(tac: str) -> EntryList:
        t = _bad(lambda: parse_tac(tac))
        found = [e for e in await store().rules()
                 if e.granularity in (Granularity.TAC, Granularity.TAC_SVN) and e.key == t]
        if not found:
            raise ApiError(404, "not-found", f"no entry for TAC {t}")
        return EntryList(key=t, entries=[EntryOut.of(e) for e in sorted(found, key=lambda e: e.ident)])

    @v1.delete("/entries/imei/{imei}", response_model=RemoveResult, responses=errs, tags=["entries"],
               summary="Remove an IMEI entry (or, with imsi, an IMEI+IMSI pairing)")
    async def remove_imei(imei: str, reporter: str = reporter_q, force: bool = force_q,
                          imsi: str | None = Query(None, description="Remove the pairing with this IMSI.")
                          ) -> RemoveResult:
        imsi_v = _imsi(imsi)
        return await remove(_select(Status.WHITE, imei=imei, imsi=imsi_v), reporter, force)

    @v1.delete("/entries/range/{first}/{last}", response_model=RemoveResult, responses=errs, tags=["entries"],
               summary="Remove an IMEI range")
    async def remove_range(first: str, last: str, reporter: str = reporter_q, force: bool = force_q
                           ) -> RemoveResult:
        return await remove(_select(Status.WHITE, rng=(first, last)), reporter, force)

    @v1.delete("/entries/tac/{tac}", response_model=RemoveResult, responses=errs, tags=["entries"],
               summary="Remove a TAC entry (or, with sv, a TAC+SVN rule)")
    async def remove_tac(tac: str, reporter: str = reporter_q, force: bool = force_q,
                         sv: Annotated[list[str] | None, Query(description="The rule's software versions.")] = None
                         ) -> RemoveResult:
        return await remove(_select(Status.WHITE, tac=tac, svns=sv or ()), reporter, force)

    # ---- check ---------------------------------------------------------------------------------
    @v1.get("/check/{imei}", response_model=DecisionOut, tags=["check"],
            summary="Decide for an IMEI as the S13 front end would (same decision service and cache)")
    async def check(imei: str, imsi: str | None = Query(None, description="The subscriber's IMSI (pairings)."),
                    sv: str | None = Query(None, description="Software version, 2 digits.")) -> DecisionOut:
        parsed = _bad(lambda: parse_imei(imei))
        imsi_v = _imsi(imsi)
        sv_v = _bad(lambda: validate_svn(sv)) if sv is not None else None
        request = CheckRequest(parsed, imsi_v, sv_v, API_REQUESTER)
        d: Decision = await checker().check(request)
        if d.outcome is Outcome.STORE_UNAVAILABLE:
            raise ApiError(503, "store-unavailable", d.detail or "store unavailable")
        return DecisionOut(
            imei=parsed.key, imsi=imsi_v, svn=request.software_version, outcome=d.outcome.value,
            status=_status_word(d.status) if d.status is not None else None,
            equipment_status=int(d.status) if d.status is not None else None,
            matched=d.matched.value if d.matched is not None else None,
            reason=d.reason.name.lower() if d.reason is not None else None,
            detail=d.detail, entry=EntryOut.of(d.entry) if d.entry is not None else None)

    # ---- import / export -----------------------------------------------------------------------
    @v1.post("/import", response_model=ImportResult, tags=["import/export"],
             responses={400: {"model": ImportResult, "description": "Bad rows (nothing applied) or a bad header"}},
             summary="Import a CSV body (kind,imei,last,status,reason,reporter,imsi,svn,created,expires)",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                 "type": "string"}}}}})
    async def import_(request: Request, response: Response,
                      reporter: str = Query(description="Importing organisation (rows with an empty reporter)."),
                      status: str | None = Query(None, description="Status of rows with an empty status column."),
                      force: bool = force_q,
                      skip_bad: bool = Query(False, description="Apply the good rows even if some are bad "
                                             "(default: apply nothing if any row is bad).")) -> ImportResult:
        default_status = _bad(lambda: Status.parse(status)) if status else None
        s = store()
        fd, name = tempfile.mkstemp(prefix="eir-import-", suffix=".csv")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    f.write(chunk)
            try:
                report = await import_csv(s, path, reporter=reporter, status=default_status, force=force,
                                          strict=not skip_bad)
            except (CsvFormatError, UnicodeDecodeError) as exc:
                raise ApiError(400, "bad-request", f"CSV body: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        if report.applied_nothing:
            response.status_code = 400
        elif report.applied:
            await checker().wrote(None)
        return ImportResult.of(report)

    @v1.get("/export", tags=["import/export"], response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "Every entry, rules first"}},
            summary="Export every entry as CSV (the format /v1/import and eir list import read)")
    async def export() -> StreamingResponse:
        chunks = store().export()
        try:  # the first chunk before the headers: an unreachable store still gets a 503
            first = await anext(chunks)
        except StopAsyncIteration:
            first = []

        async def body() -> AsyncIterator[str]:
            try:
                yield _csv_entries([first], header=True)
                async for chunk in chunks:
                    yield _csv_entries([chunk], header=False)
            finally:
                await _aclose(chunks)

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="register.csv"'})

    # ---- audit ---------------------------------------------------------------------------------
    async def audit_records() -> AsyncGenerator[AuditRecord, None]:
        c = checker()
        if c.audit:
            await c.flush_audit()  # decisions still buffered are part of the answer
        async for r in c.store.audit_export():
            yield r

    @v1.get("/audit", response_model=AuditQuery, tags=["audit"], summary="Query the decision audit trail")
    async def audit(imei: str | None = Query(None, description="Only this IMEI (any accepted form)."),
                    since: str | None = Query(None, description="Only decisions at or after this time: "
                                              + _EXPIRES_DOC),
                    outcome: str | None = Query(None, description="Only this outcome (white, grey, black, ...)."),
                    limit: int = Query(100, ge=1, le=AUDIT_LIMIT_MAX, description="At most this many, the "
                                       "most recent.")) -> AuditQuery:
        key = _bad(lambda: parse_imei(imei).key) if imei else None
        t0 = _bad(lambda: parse_time(since)) if since else None
        kept: deque[AuditRecord] = deque(maxlen=limit)
        async for r in audit_records():
            if (key is None or r.imei == key) and (t0 is None or _record_time(r) >= t0) and (
                    outcome is None or r.outcome == outcome):
                kept.append(r)
        return AuditQuery(enabled=checker().audit, count=len(kept), records=[AuditRecordOut.of(r) for r in kept])

    @v1.get("/audit/export", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}}, summary="The whole audit trail as CSV")
    async def audit_export() -> StreamingResponse:
        records = audit_records()
        try:
            first: list[AuditRecord] = [await anext(records)]
        except StopAsyncIteration:
            first = []

        async def body() -> AsyncIterator[str]:
            try:
                yield _csv_rows([AUDIT_FIELDS, *(_audit_row(r) for r in first)])
                batch: list[list[str]] = []
                async for r in records:
                    batch.append(_audit_row(r))
                    if len(batch) >= 1000:
                        yield _csv_rows(batch)
                        batch = []
                if batch:
                    yield _csv_rows(batch)
            finally:
                await records.aclose()

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="audit.csv"'})

    # ---- peers ---------------------------------------------------------------------------------
    @v1.get("/peers", response_model=list[PeerOut], tags=["peers"], summary="The Diameter peer table")
    async def peers() -> list[PeerOut]:
        return [PeerOut(remote=_opt(p["remote"]), transport=str(p["transport"]), state=str(p["state"]),
                        watchdog=str(p["watchdog"]), host=_opt(p["host"]), realm=_opt(p["realm"]))
                for p in server.peers()]

    app.include_router(v1)

    # ---- open routes ---------------------------------------------------------------------------
    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}}, summary="Prometheus metrics")
    async def metrics() -> Response:
        _update_scrape_gauges(server)
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="alive")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["operations"],
             summary="Ready: Diameter listeners up and the store answering (503 otherwise)")
    async def readyz(response: Response) -> Health:
        listening = bool(server.bound) and server.node is not None and not (stopping and stopping.is_set())
        store_ok, detail = False, ""
        if server.checker is None:
            detail = "not started"
        else:
            try:
                await asyncio.wait_for(server.checker.store.ping(), READY_PING_TIMEOUT)
                store_ok = True
            except StoreUnavailable as exc:
                detail = f"store unavailable: {exc}"
            except TimeoutError:
                detail = f"store did not answer within {READY_PING_TIMEOUT}s"
            server.metrics.store_up.set(1 if store_ok else 0)
        if not listening:
            detail = detail or "not listening (starting or shutting down)"
        ready = listening and store_ok
        response.status_code = 200 if ready else 503
        return Health(status="ready" if ready else "not-ready", checks={"listening": listening, "store": store_ok},
                      detail=detail)

    return app


async def _aclose(it: AsyncIterator[Any]) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


def _opt(v: object) -> str | None:
    return None if v is None else str(v)


def _csv_entries(chunks: Iterable[Iterable[Entry]], *, header: bool) -> str:
    buf = io.StringIO()
    write_entries(buf, chunks, header=header)
    return buf.getvalue()


def _audit_row(r: AuditRecord) -> list[str]:
    return [getattr(r, k) for k in AUDIT_FIELDS]


def _csv_rows(rows: Iterable[Iterable[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()

