"""The EIR a Python user would write without eirlab: python-diameter's node and one Redis GET per ECR.

Only a comparison point for ``bench/s13_server.py`` (issue 5: "the ratio ... to an EIR built naively on
python-diameter"). It answers 2001 + Equipment-Status from a plain ``GET eir:naive:<imei14>`` (value
"0"/"1"/"2"), else Experimental-Result 5422, like PyHSS does. Run:

    .venv/bin/python -m bench.naive_eir --port 3870 --redis redis://127.0.0.1:6379/0 --peer mme.localdomain
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

import redis
from diameter.message.avp.grouped import ExperimentalResult
from diameter.message.commands.me_identity_check import MeIdentityCheckRequest
from diameter.message.constants import APP_3GPP_S13_S13, E_RESULT_CODE_DIAMETER_SUCCESS, VENDOR_TGPP
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

EQUIPMENT_UNKNOWN = 5422


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=3870)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--peer", action="append", default=[], help="Origin-Host of an MME allowed to connect")
    ap.add_argument("--origin-host", default="naive-eir.localdomain")
    ap.add_argument("--realm", default="localdomain")
    args = ap.parse_args()
    r = redis.Redis.from_url(args.redis)

    def handle(app: SimpleThreadingApplication, request: Any) -> Any:
        answer = app.generate_answer(request)
        answer.auth_session_state = 1
        imei = request.terminal_information.imei[:14] if isinstance(request, MeIdentityCheckRequest) else ""
        status = r.get(f"eir:naive:{imei}")
        if status is None:
            answer.experimental_result = ExperimentalResult(vendor_id=VENDOR_TGPP,
                                                            experimental_result_code=EQUIPMENT_UNKNOWN)
        else:
            answer.result_code = E_RESULT_CODE_DIAMETER_SUCCESS
            answer.equipment_status = int(status)
        return answer

    node = Node(args.origin_host, args.realm, ip_addresses=["127.0.0.1"], tcp_port=args.port, vendor_ids=[VENDOR_TGPP])
    node.idle_timeout = 3600
    peers = [node.add_peer(f"aaa://{p}:3868", args.realm) for p in args.peer]
    app = SimpleThreadingApplication(APP_3GPP_S13_S13, is_auth_application=True, request_handler=handle)
    node.add_application(app, peers)
    node.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"naive-eir listening on 127.0.0.1:{args.port}", flush=True)
    stop.wait()
    node.stop(wait_timeout=2, force=True)


if __name__ == "__main__":
    main()
