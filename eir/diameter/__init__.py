"""The Diameter node: asyncio transports (TCP, SCTP) around the sans-I/O peer state machine."""

from .transport import DiameterNode, LinkClosed, NodeConfig, PeerLink, RequestHandler, RequestTimeout, TransportKind

__all__ = ["DiameterNode", "LinkClosed", "NodeConfig", "PeerLink", "RequestHandler", "RequestTimeout", "TransportKind"]
