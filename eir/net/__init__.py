"""Network helpers for the EIR's Diameter transports (RFC 6733 §2.1: TCP or SCTP)."""
