"""Real third-party servers started privately for the test session.

Every server here is started on a free loopback port or a private unix socket and stopped by its
pid; nothing touches the machine's own Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RedisCluster", "RedisServer", "free_port", "start_redis", "start_redis_cluster", "stop_pid", "stop_process",
           "wait_port"]


def free_port(below: int = 65536) -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (and is below ``below``)."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < below:
            return port
    raise RuntimeError(f"no free port below {below}")


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process we started, then SIGKILL it if it does not go."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port`` (fail early if ``proc`` exits)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM a process we started and reap it; SIGKILL it if it does not go within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class RedisServer:
    """A private redis-server process."""

    proc: subprocess.Popen[bytes]
    port: int
    unix_path: Path
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.unix_path}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM by pid, reap it (an unreaped child still answers kill(pid, 0)), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port and socket (data is not persisted)."""
        self.stop()
        self.proc = _spawn_redis(self.port, self.unix_path, self.workdir)


def _spawn_redis(port: int, unix_path: Path, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    proc = subprocess.Popen(
        [
            exe, "--port", str(port), "--bind", "127.0.0.1",
            "--unixsocket", str(unix_path), "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", str(workdir),
            "--daemonize", "no", "--logfile", str(workdir / "redis.log"), *extra,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, proc)
    return proc


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not answer within {timeout}s")


@contextlib.contextmanager
def start_redis(workdir: Path, *extra: str) -> Iterator[RedisServer]:
    """Run a private redis-server on a free port and a unix socket under *workdir*."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    unix_path = workdir / "redis.sock"
    server = RedisServer(_spawn_redis(port, unix_path, workdir, *extra), port, unix_path, workdir)
    try:
        yield server
    finally:
        server.stop()


def _cluster_port() -> int:
    """A free port p <= 55535 whose bus port p + 10000 is free too (redis-server cluster mode needs both)."""
    for _ in range(1000):
        port = free_port(below=55536)
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair (p, p + 10000) below 55536")


@dataclass
class RedisCluster:
    """A private 3-node Redis Cluster on loopback (no replicas)."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"


@contextlib.contextmanager
def start_redis_cluster(workdir: Path, size: int = 3) -> Iterator[RedisCluster]:
    """Start *size* cluster-enabled nodes and join them with ``redis-cli --cluster create``."""
    nodes: list[RedisServer] = []
    try:
        for i in range(size):
            d = workdir / f"node{i}"
            d.mkdir(parents=True, exist_ok=True)
            port = _cluster_port()
            proc = _spawn_redis(
                port, d / "redis.sock", d,
                "--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
                "--cluster-node-timeout", "5000",
            )
            nodes.append(RedisServer(proc, port, d / "redis.sock", d))
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )
        for n in nodes:  # every node must agree, or the first command may see "cluster is down"
            _wait_cluster_ok(n.port)
        yield RedisCluster(nodes)
    finally:
        for n in nodes:
            n.stop()


def _wait_cluster_ok(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=5
        ).stdout
        if "cluster_state:ok" in out:
            return
        time.sleep(0.1)
    raise RuntimeError("redis cluster did not reach cluster_state:ok")
