"""The admin HTTP API and Prometheus metrics of ``eir serve`` (issue 5), in the EIR's own process.

:func:`build_app` builds the FastAPI app around an :class:`eir.server.EirServer`; :func:`serve_admin`
serves it with hypercorn on the EIR's event loop (``admin.listen`` in the configuration).
"""

from eir.admin.app import build_app
from eir.admin.server import serve_admin

__all__ = ["build_app", "serve_admin"]
