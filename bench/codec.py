"""Diameter codec throughput on one core: ECR/ECA and CER/CEA (issue 3).

Prints operations per second for each step, and the headline figure: decode+validate of an ECR
(``Validator.decode_request``, the server's hot path) plus encoding of its ECA, per second. An MME's
ECRs share one layout (protocols/diameter/layout.py), so the headline decodes with the layout known;
the "layout not known" rows measure the one-pass checks that judge the first ECR of each layout.

    .venv/bin/python -m bench.codec [--seconds 1.0] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

from protocols.diameter import Avp, Dictionary, LocalNode, Message, Validator, decode_message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import AnswerTemplate, make_answer
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST

REALM = "epc.mnc001.mcc001.3gppnetwork.org"
MME = f"mme01.{REALM}"
EIR = f"eir01.{REALM}"
DICTIONARY = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
VALIDATOR = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}))
#: The one-pass checks alone: a validator that remembers no layouts (every ECR is judged AVP by AVP).
NO_LAYOUTS = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}), max_layouts=0)
NODE = LocalNode(EIR, REALM)


def build_ecr(i: int = 1) -> Message:
    """A realistic ECR (~300 bytes): what Open5GS's S13 client sends (peer-behaviours.md)."""
    msg = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 0x1000 + i, 0x2000 + i)
    msg.add(base.SESSION_ID, f"{MME};1700000000;{i}")
    msg.add(base.AUTH_SESSION_STATE, base.AuthSessionState.NO_STATE_MAINTAINED)
    msg.add(base.ORIGIN_HOST, MME).add(base.ORIGIN_REALM, REALM).add(base.DESTINATION_REALM, REALM)
    msg.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, "35209900176148"), Avp.new(s13.SOFTWARE_VERSION, "12")])
    msg.add(base.USER_NAME, "001010123456789")
    return msg


ECA_AVPS = (
    Avp.new(base.AUTH_SESSION_STATE, base.AuthSessionState.NO_STATE_MAINTAINED),
    *NODE.origin_avps,
    Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_SUCCESS),
    Avp.new(s13.EQUIPMENT_STATUS, s13.EquipmentStatus.WHITELISTED),
)
ECA_TEMPLATE = AnswerTemplate(ECA_AVPS)


def rate(fn: Callable[[], object], seconds: float, repeat: int) -> float:
    """Median operations per second over ``repeat`` runs of about ``seconds`` each."""
    n = 1000
    while True:  # calibrate a batch size worth ~0.05 s
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 2
    batch = max(1, int(n * seconds / dt))
    results = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        results.append(batch / (time.perf_counter() - t0))
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1.0, help="duration of one measured run")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is printed)")
    args = ap.parse_args(argv)

    ecr = build_ecr()
    ecr_bytes = encode_message(ecr)
    ecr_msg, _ = VALIDATOR.decode_request(ecr_bytes)
    eca_bytes = ECA_TEMPLATE.render(ecr_msg)
    caps = Capabilities(NODE, host_ip_addresses=("127.0.0.1",), vendor_applications=((10415, s13.APPLICATION_ID),),
                        supported_vendors=(10415,))
    cer = Message(257, 0, FLAG_REQUEST, 1, 1, list(caps.avps()))
    cer_bytes = encode_message(cer)
    cea_bytes = encode_message(make_answer(cer, [Avp.new(base.RESULT_CODE, 2001), *caps.avps()]))

    def decode_validate_and_answer() -> bytes:
        request, _ = VALIDATOR.decode_request(ecr_bytes)
        return ECA_TEMPLATE.render(request)

    def decode_validate_and_answer_no_layouts() -> bytes:
        request, _ = NO_LAYOUTS.decode_request(ecr_bytes)
        return ECA_TEMPLATE.render(request)

    def decode_validate_and_answer_generic() -> bytes:
        request, _ = VALIDATOR.decode_request(ecr_bytes)
        return encode_message(make_answer(request, ECA_AVPS))

    def decode_then_check() -> None:
        VALIDATOR.check_request(decode_message(ecr_bytes))

    rows = [
        (f"encode ECR ({len(ecr_bytes)} B)", lambda: encode_message(ecr)),
        ("decode ECR (decode_message)", lambda: decode_message(ecr_bytes)),
        ("decode + validate ECR, two steps", decode_then_check),
        ("decode + validate ECR, one pass, layout not known", lambda: NO_LAYOUTS.decode_request(ecr_bytes)),
        ("decode + validate ECR, one pass, known layout", lambda: VALIDATOR.decode_request(ecr_bytes)),
        (f"encode ECA, generic make_answer ({len(eca_bytes)} B)",
         lambda: encode_message(make_answer(ecr_msg, ECA_AVPS))),
        ("encode ECA, AnswerTemplate.render", lambda: ECA_TEMPLATE.render(ecr_msg)),
        ("decode ECA", lambda: decode_message(eca_bytes)),
        (f"encode CER ({len(cer_bytes)} B)", lambda: encode_message(cer)),
        ("decode CER", lambda: decode_message(cer_bytes)),
        ("decode CEA", lambda: decode_message(cea_bytes)),
        ("HEADLINE decode+validate ECR + encode ECA (template)", decode_validate_and_answer),
        ("decode+validate ECR + encode ECA (template), no layouts", decode_validate_and_answer_no_layouts),
        ("decode+validate ECR + encode ECA (generic)", decode_validate_and_answer_generic),
    ]
    print(f"# {platform.python_implementation()} {platform.python_version()} ({sys.executable}), "
          f"{platform.machine()}, one core; median of {args.repeat} x {args.seconds:g} s")
    for name, fn in rows:
        print(f"{name:58s} {rate(fn, args.seconds, args.repeat):>12,.0f} /s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
