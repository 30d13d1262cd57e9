"""Helpers to decode pcaps with tshark (Wireshark 4.0) in tests; no capture privileges needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["expert_warnings", "fields", "require_tshark", "tshark"]


def require_tshark() -> str:
    """Path of tshark, or skip the test with the reason (``make test`` installs it)."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (apt-get install tshark; make test installs it)")
    return path


def tshark(pcap: Path, *args: str, port: int = 3868) -> str:
    """Run tshark on ``pcap`` decoding tcp ``port`` as Diameter, with checksum validation on."""
    cmd = [
        require_tshark(), "-n", "-r", str(pcap), "-d", f"tcp.port=={port},diameter",
        "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def fields(pcap: Path, names: list[str], *, display_filter: str = "diameter", port: int = 3868) -> list[list[str]]:
    """One row per packet matching ``display_filter``: each field's values joined by ``|``."""
    args = ["-Y", display_filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
            "-E", "aggregator=|"]
    for name in names:
        args += ["-e", name]
    text = tshark(pcap, *args, port=port)
    return [line.split("\t") for line in text.splitlines()]


def expert_warnings(pcap: Path, *, port: int = 3868) -> list[str]:
    """Packets carrying an expert item of severity warning or error (a clean capture has none)."""
    text = tshark(pcap, "-Y", '_ws.expert.severity >= "warning"', "-T", "fields",
                  "-e", "frame.number", "-e", "_ws.expert.message", port=port)
    return [line for line in text.splitlines() if line.strip()]
