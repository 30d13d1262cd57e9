"""Shared setup for the kernel SCTP tests under tests/sctp.

On a kernel without SCTP (such as the development host) every test here is skipped with a reason
naming ``make test-sctp``, which runs them inside a throwaway QEMU guest (scripts/run_sctp_vm.py).
The runner sets ``EIR_SCTP_REQUIRED=1`` in the guest: there a missing SCTP is a failure, never a
silent skip.
"""

from __future__ import annotations

import os

import pytest

from eir.net.sctp import sctp_available

SCTP_REQUIRED = os.environ.get("EIR_SCTP_REQUIRED") == "1"
_SKIP_REASON = (
    "this kernel has no SCTP (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails): "
    "run `make test-sctp` to run tests/sctp inside a QEMU guest"
)


@pytest.fixture(autouse=True)
def _require_kernel_sctp() -> None:
    """Skip (or, under the VM runner, fail) any test in tests/sctp when the kernel has no SCTP."""
    if sctp_available():
        return
    if SCTP_REQUIRED:
        pytest.fail("EIR_SCTP_REQUIRED=1 but this kernel has no SCTP (did `modprobe sctp` fail?)")
    pytest.skip(_SKIP_REASON)
