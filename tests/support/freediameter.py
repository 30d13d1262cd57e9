"""A private freeDiameterd (freeDiameter 1.2.1) for interop tests.

:func:`freediameter` writes a config into a directory of the test's own (identity, realm, a free
port, TLS off, Tc/Tw timers, extensions, ``ConnectPeer`` lines, an ``acl_wl`` allowlist and
``rt_default`` rules), starts ``freeDiameterd -c <conf>`` with its output in ``fd.log``, and stops it
by pid (SIGTERM, then SIGKILL). Waiting for a log line is bounded and a failure shows the log tail.

Known quirks of 1.2.1 that this helper works around (``/work/shared/reference/real-peers.md``):

- ``ListenOn`` is ignored and the daemon binds ``0.0.0.0:Port``: every instance gets its own free port.
- It finds its Host-IP-Address with getifaddrs() skipping loopback, so it refuses to start where only
  ``lo`` exists ("Unable to find the address(es) of the local system"): the failure says so.
- Its first connection to a ``ConnectPeer`` comes 0 to 4 s after start (a random delay: libfdcore's
  ``fd_psm_next_timeout(peer, 1, 0)``), so waits for STATE_OPEN allow 10 s.
- A command it has no dictionary entry for (S13's 324) is relayed unparsed: its log shows
  ``ERROR ... fd_dict_search ... Operation not supported`` and ``(not found in dictionary)`` dumps; harmless.
- On SIGTERM it sends DPR and waits for the DPA; if its peer vanished first it waits up to 16 s. Stop it
  *before* its peers, and from asyncio code with :meth:`FreeDiameter.astop` so the event loop that
  runs our node stays free to answer that DPR.

With ``dbg_msg_dumps`` loaded (the default) every message is dumped as a ``RCV from 'peer':`` or
``SND to 'peer':`` block; :meth:`FreeDiameter.messages` parses those blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.support.servers import free_port

__all__ = [
    "READY",
    "FdMessage",
    "FreeDiameter",
    "FreeDiameterError",
    "fd_config",
    "freediameter",
    "require_freediameterd",
    "start_freediameter",
]

EXTENSIONS_DIR = Path("/usr/lib/freeDiameter")
#: fd prints ``HH:MM:SS  LEVEL   text``; dumps of messages are indented further than top-level lines.
_LINE = re.compile(r"^\d\d:\d\d:\d\d\s+\S+\s{3}(?P<indent>\s*)(?P<text>.*)$")
_BLOCK_START = re.compile(r"^(?P<dir>RCV from|SND to) '(?P<peer>[^']*)':$")
#: Logged once the daemon has loaded its extensions and started its listener.
READY = r"freeDiameterd daemon initialized"
_COMMAND = re.compile(r"^'(?P<name>[A-Za-z-]+-(?:Request|Answer))'$")


class FreeDiameterError(AssertionError):
    """freeDiameterd did not start, exited, or never logged what a test waited for."""


def require_freediameterd() -> str:
    """The path of freeDiameterd, or skip the test (``make test`` installs it)."""
    exe = shutil.which("freeDiameterd")
    if exe is None:
        pytest.skip("freeDiameterd is not installed: `make test` installs it (scripts/ensure-system-deps.sh)")
    return exe


def _q(value: str) -> str:
    if '"' in value or "\n" in value:
        raise ValueError(f"cannot quote {value!r} in a freeDiameter config")
    return f'"{value}"'


def fd_config(
    identity: str,
    realm: str,
    port: int,
    *,
    tc_timer: int = 5,
    tw_timer: int = 6,
    extensions: Iterable[str | tuple[str, str]] = ("dbg_msg_dumps",),
    connect_peers: Iterable[tuple[str, str, int]] = (),
) -> str:
    """The text of a TCP-only, TLS-off freeDiameter config.

    ``extensions`` are names under /usr/lib/freeDiameter (``"acl_wl"``) or (name, config file) pairs;
    ``connect_peers`` are (Diameter identity, address, port) triples.
    """
    lines = [
        f"Identity = {_q(identity)};",
        f"Realm = {_q(realm)};",
        f"Port = {port};",
        "SecPort = 0;",  # TLS off: no TLS_Cred, no secure port
        "No_SCTP;",
        "No_IPv6;",
        "Prefer_TCP;",
        f"TcTimer = {tc_timer};",
        f"TwTimer = {tw_timer};",
    ]
    for ext in extensions:
        name, conf = (ext, None) if isinstance(ext, str) else ext
        path = _q(str(EXTENSIONS_DIR / f"{name}.fdx"))
        lines.append(f"LoadExtension = {path};" if conf is None else f"LoadExtension = {path} : {_q(conf)};")
    for peer, address, peer_port in connect_peers:
        lines.append(
            f"ConnectPeer = {_q(peer)} {{ ConnectTo = {_q(address)}; Port = {peer_port}; No_TLS; No_SCTP; No_IPv6; }};"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FdMessage:
    """One message as dbg_msg_dumps printed it.

    ``direction`` is ``RCV`` or ``SND``; ``name`` is fd's dictionary name of the command
    (``Device-Watchdog-Request``) or ``""`` when fd has no dictionary entry for it (S13's 324: fd then
    relays it without parsing its AVPs); ``lines`` are the dump's lines (header fields, AVPs).
    """

    direction: str
    peer: str
    name: str
    lines: tuple[str, ...]

    def header(self, field_name: str) -> str:
        """A header field as printed (``Flags`` -> ``0xC0 (RP--)``, ``Hop-by-Hop Identifier`` -> ``0x...``)."""
        for line in self.lines:
            if line.startswith(f"{field_name}:"):
                return line.split(":", 1)[1].strip()
        raise KeyError(f"{field_name!r} not in the dump of {self.direction} {self.peer} {self.name}")

    @property
    def code(self) -> int:
        return int(self.header("Command Code"))

    @property
    def flags(self) -> int:
        return int(self.header("Flags").split()[0], 16)

    @property
    def is_request(self) -> bool:
        return bool(self.flags & 0x80)

    @property
    def hop_by_hop(self) -> int:
        return int(self.header("Hop-by-Hop Identifier"), 16)

    @property
    def end_to_end(self) -> int:
        return int(self.header("End-to-End Identifier"), 16)

    def matches(self, direction: str, peer: str, command: str | tuple[int, bool]) -> bool:
        """``command`` is fd's name, or (code, is_request) for commands fd's dictionary lacks."""
        if (self.direction, self.peer) != (direction, peer):
            return False
        if isinstance(command, str):
            return self.name == command
        return (self.code, self.is_request) == command

    def avps(self, name: str) -> list[str]:
        """The ``val=`` texts (quotes kept) of every AVP fd named ``name``, nested ones included."""
        pattern = re.compile(rf"AVP: '{re.escape(name)}'\(\d+\) .*?val=(?P<val>.*)$")
        return [m.group("val") for m in map(pattern.search, self.lines) if m is not None]

    def avp(self, name: str) -> str | None:
        """The ``val=`` text of the first AVP fd named ``name``, or None."""
        found = self.avps(name)
        return found[0] if found else None


@dataclass
class FreeDiameter:
    """A running freeDiameterd: its process, files, identity and port."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    identity: str
    realm: str
    port: int
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def conf_path(self) -> Path:
        return self.workdir / "freeDiameter.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "fd.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def fail(self, what: str) -> FreeDiameterError:
        status = "running" if self.proc.poll() is None else f"exited with {self.proc.returncode}"
        hint = ""
        if "Unable to find the address(es) of the local system" in self.log():
            hint = (" (fd 1.2.1 skips loopback interfaces when it looks for its own Host-IP-Address: run it "
                    "where a non-loopback interface exists, e.g. a namespace with a veth; see real-peers.md)")
        return FreeDiameterError(
            f"freeDiameterd {self.identity} (pid {self.pid}, port {self.port}, {status}): {what}{hint}\n"
            f"--- {self.log_path} (tail) ---\n{self.tail()}"
        )

    # ------------------------------------------------------------------ waiting for log lines
    def _check(self, pattern: re.Pattern[str], start: int) -> re.Match[str] | None:
        return pattern.search(self.log(), start)

    def _compile(self, pattern: str | re.Pattern[str]) -> re.Pattern[str]:
        return re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0, *, start: int = 0) -> re.Match[str]:
        """Block until ``pattern`` (a regex) appears in the log after offset ``start``.

        Do not call this from a coroutine whose event loop runs a node fd talks to: use :meth:`await_log`.
        """
        rx = self._compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = self._check(rx, start)
            if m is not None:
                return m
            if self.proc.poll() is not None:
                raise self.fail(f"exited while waiting for {rx.pattern!r}")
            if time.monotonic() >= deadline:
                raise self.fail(f"no {rx.pattern!r} in its log within {timeout:g} s")
            time.sleep(0.05)

    async def await_log(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0, *, start: int = 0, allow_exit: bool = False
    ) -> re.Match[str]:
        """Like :meth:`wait_for`, polling with ``asyncio.sleep`` so the loop keeps serving our peers."""
        rx = self._compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = self._check(rx, start)
            if m is not None:
                return m
            if self.proc.poll() is not None and not allow_exit:
                raise self.fail(f"exited while waiting for {rx.pattern!r}")
            if time.monotonic() >= deadline:
                raise self.fail(f"no {rx.pattern!r} in its log within {timeout:g} s")
            await asyncio.sleep(0.05)

    @staticmethod
    def state_pattern(state: str, peer: str) -> str:
        """The PSM transition line, e.g. ``'STATE_WAITCEA' -> 'STATE_OPEN' 'eir.localdomain'``."""
        return rf"-> '{re.escape(state)}'\s+'{re.escape(peer)}'"

    async def await_open(self, peer: str, timeout: float = 10.0) -> re.Match[str]:
        return await self.await_log(self.state_pattern("STATE_OPEN", peer), timeout)

    async def await_message(
        self, direction: str, peer: str, command: str | tuple[int, bool], timeout: float = 10.0, *, index: int = 0
    ) -> FdMessage:
        """Wait for the ``index``-th (from 0) dumped message matching (direction, peer, command).

        ``direction`` is ``RCV``/``SND`` as seen by fd; ``command`` as in :meth:`FdMessage.matches`.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if m.matches(direction, peer, command)]
            if len(found) > index:
                return found[index]
            if self.proc.poll() is not None:
                raise self.fail(f"exited while waiting for {direction} {peer} {command}")
            if time.monotonic() >= deadline:
                raise self.fail(f"no {direction} {command} with {peer!r} (dbg_msg_dumps) within {timeout:g} s")
            await asyncio.sleep(0.05)

    def messages(self) -> list[FdMessage]:
        """Every message dbg_msg_dumps printed, in log order."""
        out: list[FdMessage] = []
        current: tuple[str, str] | None = None
        command = ""
        body: list[str] = []
        started = False

        def flush() -> None:
            if current is not None and started:
                out.append(FdMessage(current[0], current[1], command, tuple(body)))

        for raw in self.log().splitlines():
            m = _LINE.match(raw)
            if m is None:  # another level's line (``ERROR  ...``) ends a dump
                flush()
                current, command, body, started = None, "", [], False
                continue
            text, nested = m.group("text"), len(m.group("indent")) > 0
            start = _BLOCK_START.match(text) if not nested else None
            if start is not None:
                flush()
                current, command, body, started = (start.group("dir").split()[0], start.group("peer")), "", [], False
            elif current is not None and nested:
                if not started:
                    started = True
                    c = _COMMAND.match(text)
                    command = c.group("name") if c is not None else ""  # "(not found in dictionary)"
                else:
                    body.append(text)
            elif current is not None:
                flush()
                current, command, body, started = None, "", [], False
        flush()
        return out

    # ------------------------------------------------------------------ stopping
    def _kill_after(self, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)

    def terminate(self) -> None:
        """SIGTERM (fd sends DPR to its open peers) without waiting."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait up to ``timeout`` (fd waits up to 16 s for vanished peers), then SIGKILL."""
        self.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_after(timeout)
        self._close_log()
        return self.proc.returncode

    async def astop(self, timeout: float = 20.0) -> int:
        """:meth:`stop` without blocking the event loop (our node must answer fd's DPR)."""
        self.terminate()
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self._kill_after(timeout)
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        f = self._log_file
        if f is not None:
            f.close()
            self._log_file = None


def start_freediameter(
    workdir: Path,
    identity: str,
    realm: str,
    *,
    port: int | None = None,
    tc_timer: int = 5,
    tw_timer: int = 6,
    extensions: Iterable[str | tuple[str, str]] = ("dbg_msg_dumps",),
    connect_peers: Iterable[tuple[str, str, int]] = (),
    acl_wl: Iterable[str] = (),
    rt_default: Iterable[str] = (),
) -> FreeDiameter:
    """Write the config and start freeDiameterd (not yet waited for: see :data:`READY`); stop it yourself."""
    exe = require_freediameterd()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    exts: list[str | tuple[str, str]] = list(extensions)
    allow = list(acl_wl)
    if allow:
        # "ALLOW_IPSEC host..." admits these peers without TLS and without a ConnectPeer line.
        (workdir / "acl_wl.conf").write_text("".join(f"ALLOW_IPSEC {h}\n" for h in allow))
        exts.append(("acl_wl", str(workdir / "acl_wl.conf")))
    rules = list(rt_default)
    if rules:
        (workdir / "rt_default.conf").write_text("".join(f"{r}\n" for r in rules))
        exts.append(("rt_default", str(workdir / "rt_default.conf")))
    conf = workdir / "freeDiameter.conf"
    conf.write_text(fd_config(identity, realm, port, tc_timer=tc_timer, tw_timer=tw_timer, extensions=exts,
                              connect_peers=connect_peers))
    log_file = (workdir / "fd.log").open("wb")
    proc = subprocess.Popen([exe, "-c", str(conf)], cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    return FreeDiameter(proc, workdir, identity, realm, port, log_file)


@contextlib.asynccontextmanager
async def freediameter(
    workdir: Path,
    identity: str,
    realm: str,
    *,
    port: int | None = None,
    tc_timer: int = 5,
    tw_timer: int = 6,
    extensions: Iterable[str | tuple[str, str]] = ("dbg_msg_dumps",),
    connect_peers: Iterable[tuple[str, str, int]] = (),
    acl_wl: Iterable[str] = (),
    rt_default: Iterable[str] = (),
    ready_timeout: float = 10.0,
) -> AsyncIterator[FreeDiameter]:
    """Run a private freeDiameterd until the block ends (then stop it by pid, without blocking the loop).

    Waits for "freeDiameterd daemon initialized" (its listener is up) before yielding.
    """
    fd = start_freediameter(workdir, identity, realm, port=port, tc_timer=tc_timer, tw_timer=tw_timer,
                            extensions=extensions, connect_peers=connect_peers, acl_wl=acl_wl, rt_default=rt_default)
    try:
        await fd.await_log(READY, ready_timeout)
        yield fd
    finally:
        await fd.astop()
