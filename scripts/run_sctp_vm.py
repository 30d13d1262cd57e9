#!/usr/bin/env python3
"""Run the kernel SCTP tests (tests/sctp/test_*.py, marker ``sctp``) where kernel SCTP exists.

Used by ``make test-sctp``. This host's kernel has no SCTP, so the tests run inside a throwaway QEMU
guest booted with virtme-ng (``vng``) on the newest Debian ``/boot/vmlinuz-*-amd64`` kernel (not
``-cloud-``, which lacks SCTP), without KVM (nested KVM hangs here). The guest sees the host
filesystem; the repository is given to it as a copy-on-write overlay (``--overlay-rwdir``) so
pytest and conftest writes land in guest memory and never in the host tree. Inside the guest:
``modprobe sctp`` then ``<repo>/.venv/bin/python -m pytest -q -m sctp tests/sctp -p no:cacheprovider``.

The guest output is streamed; the run is bounded by a hard timeout (the whole qemu process group is
killed). The exit status is pytest's exit status from inside the guest, and a zero status only
counts if the pytest summary line was seen with at least one passed test and no failures or errors
(so a guest that never ran pytest is not a success). If the host kernel itself has SCTP, pytest
runs directly on the host instead.

Usage: scripts/run_sctp_vm.py [--timeout SECONDS] [--kernel /boot/vmlinuz-...] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_DIR = "tests/sctp"
DEFAULT_TIMEOUT = 420.0
GUEST_TMP = "/tmp/eir-sctp"
IPPROTO_SCTP = 132
PREFIX = "run_sctp_vm:"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SUMMARY = re.compile(
    r"^=*\s*(?P<body>(?:\d+ \w+(?:, )?)+|no tests ran) in [\d.]+s(?: \([^)]*\))?\s*=*$"
)
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)")


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def host_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).name.removeprefix("vmlinuz-")
    return tuple(int(n) for n in re.findall(r"\d+", version))


def find_kernel() -> str:
    """The newest /boot/vmlinuz-*-amd64 (not -cloud-amd64: the cloud flavour has no SCTP module)."""
    candidates = [
        k for k in glob.glob("/boot/vmlinuz-*-amd64") if "-cloud-" not in k and os.access(k, os.R_OK)
    ]
    if not candidates:
        raise SystemExit(
            f"{PREFIX} no readable /boot/vmlinuz-*-amd64 kernel (apt-get install linux-image-amd64; "
            "make system-deps does it)"
        )
    return max(candidates, key=_version_key)


def check_kernel_modules(kernel: str) -> None:
    release = Path(kernel).name.removeprefix("vmlinuz-")
    moddir = Path("/lib/modules", release)
    if not any(moddir.glob("kernel/net/sctp/sctp.ko*")):
        raise SystemExit(f"{PREFIX} {moddir}/kernel/net/sctp/sctp.ko* not found: the guest cannot load sctp")


def test_files() -> list[Path]:
    files = sorted((REPO / TEST_DIR).glob("test_*.py"))
    if not files:
        raise SystemExit(f"{PREFIX} no {TEST_DIR}/test_*.py files to run")
    return files


def venv_python() -> Path:
    candidate = REPO / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def pytest_argv(python: Path, extra: list[str], basetemp: str) -> list[str]:
    return [
        str(python),
        "-m",
        "pytest",
        "-q",
        "-m",
        "sctp",
        TEST_DIR,
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp}",
        "--color=no",
        *extra,
    ]


@dataclass
class Outcome:
    returncode: int
    summary: str | None
    counts: dict[str, int]


def parse_summary(output: str) -> tuple[str | None, dict[str, int]]:
    """The last pytest summary line in ``output`` and its counts ({"passed": 17, "skipped": 1})."""
    summary: str | None = None
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).strip().strip("\r")
        if _SUMMARY.match(line):
            summary = line
    counts: dict[str, int] = {}
    if summary is not None:
        for number, word in _COUNT.findall(summary):
            key = {"error": "errors", "warning": "warnings"}.get(word, word)
            counts[key] = counts.get(key, 0) + int(number)
    return summary, counts


def run_streamed(argv: list[str], *, env: dict[str, str], timeout: float) -> Outcome:
    """Run ``argv`` in its own process group, stream its output, kill the group after ``timeout``."""
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    collected: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for chunk in iter(proc.stdout.readline, b""):
            text = chunk.decode("utf-8", errors="replace")
            collected.append(text)
            sys.stdout.write(text)
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        reader.join(5)
        raise SystemExit(
            f"{PREFIX} FAILED: timed out after {timeout:.0f} s; killed the qemu/vng process group "
            f"{proc.pid} (raise --timeout or EIR_SCTP_VM_TIMEOUT if the guest is just slow)"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    reader.join(10)
    summary, counts = parse_summary("".join(collected))
    return Outcome(returncode, summary, counts)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM then SIGKILL the process group we created for vng (qemu and its helpers are in it)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            # The leader is gone; make sure nothing else of the group survives.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def verdict(outcome: Outcome, where: str, elapsed: float) -> int:
    summary = outcome.summary or "(no pytest summary line seen)"
    failed = outcome.counts.get("failed", 0) + outcome.counts.get("errors", 0)
    passed = outcome.counts.get("passed", 0)
    if outcome.returncode != 0:
        say(f"FAILED ({where}, {elapsed:.1f} s): pytest exited {outcome.returncode}: {summary}")
        return outcome.returncode
    if outcome.summary is None or passed == 0 or failed:
        say(f"FAILED ({where}, {elapsed:.1f} s): exit 0 but no passing pytest run was seen: {summary}")
        return 1
    say(f"OK ({where}, {elapsed:.1f} s): {summary}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("EIR_SCTP_VM_TIMEOUT", DEFAULT_TIMEOUT)),
        help=f"hard limit in seconds for the whole run (default {DEFAULT_TIMEOUT:.0f}, env EIR_SCTP_VM_TIMEOUT)",
    )
    parser.add_argument("--kernel", default=os.environ.get("EIR_SCTP_KERNEL"), help="guest kernel image")
    parser.add_argument("--memory", default="1G")
    parser.add_argument("--force-vm", action="store_true", help="use the VM even if the host has SCTP")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()

    files = test_files()
    python = venv_python()
    started = time.monotonic()

    if host_has_sctp() and not args.force_vm:
        say(f"ran on the HOST: this kernel ({os.uname().release}) has SCTP; {len(files)} test file(s)")
        env = dict(os.environ, EIR_SCTP_REQUIRED="1")
        argv = pytest_argv(python, args.pytest_args, basetemp=f"/tmp/eir-sctp-{os.getpid()}")
        outcome = run_streamed(argv, env=env, timeout=args.timeout)
        return verdict(outcome, "host", time.monotonic() - started)

    kernel = args.kernel or find_kernel()
    check_kernel_modules(kernel)
    vng = REPO / ".venv" / "bin" / "vng"
    if not vng.exists():
        raise SystemExit(f"{PREFIX} {vng} missing: run make install (virtme-ng is a dev dependency)")
    guest_argv = pytest_argv(python, args.pytest_args, basetemp=f"{GUEST_TMP}/pytest")
    guest_script = " && ".join(
        [
            "{ modprobe sctp || { echo 'run_sctp_vm: modprobe sctp failed in the guest'; exit 97; }; }",
            f"mkdir -p {GUEST_TMP}",
            f"cd {shlex.quote(str(REPO))}",
            f"export EIR_SCTP_REQUIRED=1 PYTHONDONTWRITEBYTECODE=1 TMPDIR={GUEST_TMP}",
            "echo \"run_sctp_vm: guest kernel $(uname -r), sctp loaded: $(test -d /sys/module/sctp && echo yes)\"",
            "exec " + shlex.join(guest_argv),
        ]
    )
    argv = [
        str(vng),
        "--run",
        kernel,
        "--memory",
        args.memory,
        "--cpus",
        "1",
        "--disable-kvm",
        f"--overlay-rwdir={REPO}",
        "--cwd",
        str(REPO),
        "--exec",
        guest_script,
    ]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), "/usr/lib/qemu", env.get("PATH", "")])
    say(
        f"ran in a QEMU VM: host kernel {os.uname().release} has no SCTP; guest kernel {kernel} "
        f"(virtme-ng, --disable-kvm), {len(files)} test file(s) in {TEST_DIR}, timeout {args.timeout:.0f} s"
    )
    outcome = run_streamed(argv, env=env, timeout=args.timeout)
    return verdict(outcome, f"VM {Path(kernel).name}", time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
