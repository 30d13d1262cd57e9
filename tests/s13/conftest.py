"""Fixtures for the end-to-end S13 tests (issue 5): a real ``eir serve``, a real Redis, a real client.

* :func:`start_eir` runs ``.venv/bin/eir serve`` as a subprocess on a free loopback port and waits
  until the port accepts and the log says ``listening=``; :meth:`EirProcess.stop` sends SIGTERM to its
  pid and returns the exit status (the ``eir_factory`` fixture asserts 0 for every server it started).
* :class:`ThreadedEir` runs the same :class:`eir.server.EirServer` in process, in a thread with its
  own event loop (fast; module-scoped servers need no module-scoped pytest event loop).
* :class:`S13Client` is an MME on our own Diameter stack (``DiameterNode``) that builds ECRs the way
  MMEs do and checks the shape every ECA must have (:func:`assert_eca_shape`).
* :func:`eir_cli` runs ``eir list add/import`` against the store in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eir.config import EirConfig, load_config
from eir.diameter.transport import DiameterNode, NodeConfig, PeerLink
from eir.server import EirServer
from protocols.diameter import Avp, Dictionary, LocalNode, Message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_PROXIABLE
from protocols.diameter.peer import PeerConfig
from tests.support.servers import RedisServer, free_port

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
S13 = s13.APPLICATION_ID
EIR_HOST, EIR_REALM = "eir.test", "test"
MME_HOST = "mme.test"
ROOT = Path(__file__).resolve().parents[2]
_seq = itertools.count(1)


def eir_exe() -> str:
    """The ``eir`` entry point of the virtualenv running the tests."""
    for cand in (Path(sys.executable).parent / "eir", ROOT / ".venv" / "bin" / "eir"):
        if cand.exists():
            return str(cand)
    found = shutil.which("eir")
    if found is None:
        pytest.skip("the eir entry point is not installed (.venv/bin/pip install -e '.[dev]')")
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EIR_CONFIG", "EIR_STORE", "EIR_ADMIN_TOKEN")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def unique_store_url(redis: RedisServer, *, timeout: float | None = None) -> str:
    """A store URL with a key prefix of its own on ``redis`` (small bucket count: quick to flush)."""
    url = f"{redis.url}?prefix=s13t{next(_seq)}x{os.getpid()}&buckets=1024"
    return url + (f"&timeout={timeout:g}" if timeout is not None else "")


# ------------------------------------------------------------------------------------------ eir CLI
def eir_cli(*args: str, store: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``eir ARGS --store STORE`` in another process (as an operator would run it)."""
    proc = subprocess.run([eir_exe(), *args, "--store", store], capture_output=True, text=True, timeout=60,
                          env=_env(), cwd=cwd or ROOT)
    if check:
        assert proc.returncode == 0, f"eir {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def import_csv(tmp: Path, rows: list[str], store: str) -> None:
    """``eir list import`` of ``rows`` (canonical header) from a file under ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"seed{next(_seq)}.csv"
    path.write_text("kind,imei,last,status,reason,reporter,imsi,svn,created,expires\n" + "\n".join(rows) + "\n")
    out = eir_cli("list", "import", str(path), "--no-progress", store=store)
    assert f"applied {len(rows)} of {len(rows)} rows" in out.stdout, out.stdout + out.stderr


# ------------------------------------------------------------------------------------------ eir serve
@dataclass
class EirProcess:
    """A running ``eir serve``: its process, port and log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log_file: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fail(self, what: str) -> AssertionError:
        state = "running" if self.proc.poll() is None else f"exited with {self.proc.returncode}"
        tail = "\n".join(self.log().splitlines()[-40:])
        return AssertionError(f"eir serve (pid {self.pid}, port {self.port}, {state}): {what}\n--- log ---\n{tail}")

    def terminate(self) -> None:
        """SIGTERM by pid (graceful shutdown: DPR to every peer), without waiting."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
            raise self.fail(f"did not exit within {timeout} s of SIGTERM (killed)") from None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return rc

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, return the exit status."""
        self.terminate()
        return self.wait(timeout)

    async def astop(self, timeout: float = 15.0) -> int:
        """:meth:`stop` without blocking the event loop (our client must answer the EIR's DPR)."""
        self.terminate()
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.wait(0.1 if self.proc.poll() is not None else 1.0)


def start_eir(workdir: Path, store: str, *args: str, config: Path | None = None,
              origin_host: str = EIR_HOST, origin_realm: str = EIR_REALM, timeout: float = 20.0) -> EirProcess:
    """Start ``eir serve`` on a free port; return once the port accepts and the log says listening."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [eir_exe(), "serve", "--listen", f"127.0.0.1:{port}", "--store", store, "--origin-host", origin_host,
           "--origin-realm", origin_realm, *args]
    if config is not None:
        cmd += ["--config", str(config)]
    log_path = workdir / f"eir-{port}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                            env=_env())
    eir = EirProcess(proc, port, log_path, log_file)
    deadline = time.monotonic() + timeout
    listening = f"listening=127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise eir.fail("exited before listening")
        if listening in eir.log():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return eir
        if time.monotonic() >= deadline:
            eir.stop()
            raise eir.fail(f"no {listening!r} within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def eir_factory(tmp_path: Path) -> Iterator[Callable[..., EirProcess]]:
    """Start ``eir serve`` subprocesses; every one still running at the end is stopped and must exit 0."""
    started: list[EirProcess] = []

    def start(store: str, *args: str, **kw: Any) -> EirProcess:
        eir = start_eir(tmp_path / "eir", store, *args, **kw)
        started.append(eir)
        return eir

    yield start
    failures = []
    for eir in started:
        if eir.proc.poll() is None:
            rc = eir.stop()
            if rc != 0:
                failures.append(eir.fail(f"exit status {rc} after SIGTERM"))
    assert not failures, failures


# ------------------------------------------------------------------------------------------ in process
def server_config(store: str, port: int = 0, *, config: Path | None = None, **flags: Any) -> EirConfig:
    """The configuration ``eir serve`` would build from ``--config`` and these flags (dotted keys)."""
    return load_config(config).with_overrides(**{
        "diameter.listen": [f"127.0.0.1:{port}"], "store.url": store, "diameter.origin_host": EIR_HOST,
        "diameter.origin_realm": EIR_REALM, **flags,
    })


class ThreadedEir:
    """An in-process :class:`EirServer` on an event loop of its own thread (``start()``/``stop()``)."""

    def __init__(self, config: EirConfig) -> None:
        self.server = EirServer(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="eir-inprocess", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.bound[0][1]

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:  # reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self, timeout: float = 15.0) -> ThreadedEir:
        self._thread.start()
        assert self._ready.wait(timeout), "in-process EirServer did not start"
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self._error is None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.stop(2.0), self.loop).result(timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "in-process EirServer thread did not end"
        self.loop.close()


# ------------------------------------------------------------------------------------------ the client
class S13Client:
    """An MME on our Diameter stack: connects, builds ECRs, sends them, returns the ECAs."""

    def __init__(self, origin_host: str = MME_HOST, origin_realm: str = EIR_REALM) -> None:
        self.origin_host, self.origin_realm = origin_host, origin_realm
        caps = Capabilities(LocalNode(origin_host, origin_realm), vendor_applications=((s13.VENDOR_3GPP, S13),),
                            supported_vendors=(s13.VENDOR_3GPP,))
        self.node = DiameterNode(NodeConfig(PeerConfig(caps, DICT)))
        self.link: PeerLink | None = None
        self.sent = 0
        self.answered = 0

    async def connect(self, port: int, host: str = "127.0.0.1", peer_host: str | None = None) -> S13Client:
        self.link = await self.node.connect(host, port, peer_host=peer_host, timeout=10)
        return self

    def ecr(self, imei: str | None = None, *, sv: str | None = None, imsi: str | None = None,
            dest_realm: str | None = EIR_REALM, dest_host: str | None = None,
            proxy_info: tuple[tuple[str, bytes], ...] = (), route_record: tuple[str, ...] = (),
            terminal_information: bool = True, meid: bytes | None = None) -> Message:
        """An ECR as TS 29.272 §7.2.19 lays it out (End-to-End and Hop-by-Hop are left to the link)."""
        m = Message(324, S13, FLAG_PROXIABLE)
        m.add(base.SESSION_ID, f"{self.origin_host};{int(time.time())};{next(_seq)}")
        m.add(base.AUTH_SESSION_STATE, 1)
        m.add(base.ORIGIN_HOST, self.origin_host).add(base.ORIGIN_REALM, self.origin_realm)
        if dest_host is not None:
            m.add(base.DESTINATION_HOST, dest_host)
        if dest_realm is not None:
            m.add(base.DESTINATION_REALM, dest_realm)
        if terminal_information:
            ti = ([Avp.new(s13.IMEI, imei)] if imei is not None else []) + (
                [Avp.new(s13.MEID_3GPP2, meid)] if meid is not None else []) + (
                [Avp.new(s13.SOFTWARE_VERSION, sv)] if sv is not None else [])
            m.add(s13.TERMINAL_INFORMATION, ti)
        if imsi is not None:
            m.add(base.USER_NAME, imsi)
        for host, state in proxy_info:
            m.add(base.PROXY_INFO, [Avp.new(base.PROXY_HOST, host), Avp.new(base.PROXY_STATE, state)])
        for rr in route_record:
            m.add(base.ROUTE_RECORD, rr)
        return m

    async def send(self, req: Message, timeout: float = 10.0) -> Message:
        assert self.link is not None, "connect() first"
        self.sent += 1
        ans = await self.link.request(req, timeout=timeout)
        self.answered += 1
        return ans

    async def check(self, imei: str | None, **kw: Any) -> Message:
        """Send an ECR for ``imei``, check the ECA's shape, return it."""
        req = self.ecr(imei, **kw)
        ans = await self.send(req)
        assert_eca_shape(ans, req)
        return ans

    async def verdict(self, imei: str | None, **kw: Any) -> str:
        return verdict(await self.check(imei, **kw))

    async def close(self) -> None:
        await self.node.close(timeout=2)


def experimental_code(ans: Message) -> int | None:
    er = ans.find(base.EXPERIMENTAL_RESULT)
    if er is None:
        return None
    vendor = er.find(base.VENDOR_ID)
    assert vendor is not None and vendor.value(base.VENDOR_ID) == s13.VENDOR_3GPP
    code = er.find(base.EXPERIMENTAL_RESULT_CODE)
    assert code is not None
    return int(code.value(base.EXPERIMENTAL_RESULT_CODE))


_COLOURS = {0: "white", 1: "black", 2: "grey"}


def verdict(ans: Message) -> str:
    """``white``/``black``/``grey`` (2001 + Equipment-Status), ``unknown`` (5422, no status), else the code.

    Also checks the pairing of Result-Code and Equipment-Status: a status only with 2001, and 2001 only
    with a status (an MME leaves the attach hanging on an ECA without one).
    """
    rc = ans.get(base.RESULT_CODE)
    es = ans.get(s13.EQUIPMENT_STATUS)
    exp = experimental_code(ans)
    if exp is not None:
        assert rc is None and es is None, f"Experimental-Result {exp} with Result-Code {rc} / status {es}"
        return "unknown" if exp == s13.ExperimentalResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN else f"exp{exp}"
    if rc == base.ResultCode.DIAMETER_SUCCESS:
        assert es is not None, "2001 without Equipment-Status"
        return _COLOURS[int(es)]
    assert es is None, f"Result-Code {rc} with Equipment-Status {es}"
    return str(rc)


def assert_eca_shape(ans: Message, req: Message) -> None:
    """RFC 6733 §6.2 and TS 29.272 §7.2.20 for every answer to an ECR."""
    assert not ans.is_request and ans.command == 324 and ans.application == S13
    assert ans.hop_by_hop == req.hop_by_hop and ans.end_to_end == req.end_to_end
    assert ans.is_proxiable == req.is_proxiable
    assert ans.avps and ans.avps[0].code == base.SESSION_ID.code and not ans.avps[0].vendor, "Session-Id first"
    assert ans.get(base.SESSION_ID) == req.get(base.SESSION_ID)
    assert ans.get(base.ORIGIN_HOST) == EIR_HOST and ans.get(base.ORIGIN_REALM) == EIR_REALM
    assert ans.find(base.DESTINATION_HOST) is None and ans.find(base.DESTINATION_REALM) is None
    rc = ans.get(base.RESULT_CODE)
    assert ans.is_error == (rc is not None and 3000 <= rc < 4000), f"E bit {ans.is_error} with Result-Code {rc}"
    if not ans.is_error:
        assert ans.get(base.AUTH_SESSION_STATE) == 1
    assert [p.data for p in ans.find_all(base.PROXY_INFO)] == [p.data for p in req.find_all(base.PROXY_INFO)]


@pytest.fixture
async def client_factory() -> Any:
    """Connect :class:`S13Client` instances; all are closed at the end."""
    clients: list[S13Client] = []

    async def connect(port: int, origin_host: str = MME_HOST, **kw: Any) -> S13Client:
        c = S13Client(origin_host, **kw)
        clients.append(c)
        return await c.connect(port)

    yield connect
    for c in clients:
        await c.close()


async def poll_until(fn: Callable[[], Any], deadline_s: float, what: str, interval: float = 0.02) -> Any:
    """Await ``fn()`` until it returns something truthy (returns it) or fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what}: not within {deadline_s} s (last: {last!r})")


# ------------------------------------------------------------------------------------------ redis
def stop_redis_quickly(server: RedisServer) -> None:
    """SIGTERM our redis-server by pid and reap it (RedisServer.stop() polls kill(pid, 0), which succeeds on
    an unreaped zombie, so it always waits its full 10 s)."""
    if server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(timeout=10)


def restart_redis_quickly(server: RedisServer) -> None:
    """Start it again on the same port and socket (persistence is off: the data is gone)."""
    from tests.support.servers import _spawn_redis

    stop_redis_quickly(server)
    server.proc = _spawn_redis(server.port, server.unix_path, server.workdir)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session redis-server (as in tests/conftest.py), reaped quickly at the end."""
    from tests.support.servers import start_redis

    with start_redis(tmp_path_factory.mktemp("redis-s13")) as server:
        yield server
        stop_redis_quickly(server)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A function-scoped redis-server the test may stop and restart."""
    from tests.support.servers import start_redis

    with start_redis(tmp_path / "redis") as server:
        yield server
        stop_redis_quickly(server)


def redis_cli(server: RedisServer, *args: str) -> str:
    out = subprocess.run(["redis-cli", "-p", str(server.port), *args], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout


def held_lookups(server: RedisServer) -> int:
    """Clients whose EVALSHA (the EIR's batch lookup) Redis is holding (``CLIENT PAUSE ... WRITE``)."""
    lines = redis_cli(server, "CLIENT", "LIST").splitlines()
    return sum(1 for ln in lines if " cmd=evalsha " in f"{ln} " and " flags=b" in ln)


# ------------------------------------------------------------------------------------------ raw sockets
def recv_message(sock: socket.socket) -> bytes:
    """One whole Diameter message from a blocking socket (b"" if the peer closed first)."""
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return b""
        head += chunk
    length = int.from_bytes(head[1:4], "big")
    body = head
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "connection closed in the middle of a message"
        body += chunk
    return body


class RawPeer:
    """A blocking TCP client that sends bytes built by anyone and records every message both ways."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.server_port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.client_port = int(self.sock.getsockname()[1])
        #: (sent by us?, message bytes), in order
        self.frames: list[tuple[bool, bytes]] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.frames.append((True, data))

    def recv(self) -> bytes:
        data = recv_message(self.sock)
        assert data, "the EIR closed the connection"
        self.frames.append((False, data))
        return data

    def exchange(self, data: bytes) -> bytes:
        self.send(data)
        return self.recv()

    def close(self) -> None:
        self.sock.close()
