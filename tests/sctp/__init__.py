"""Kernel SCTP tests: skipped on a host without SCTP, run inside a throwaway QEMU guest by `make test-sctp`."""
