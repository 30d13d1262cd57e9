"""AnswerTemplate renders exactly the bytes of the generic answer path (RFC 6733 §6.2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter import Avp, LocalNode, Message, encode_message, make_answer
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import AnswerTemplate
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST

NODE = LocalNode("eir.example", "example")
ECA_BLACK = (Avp.new(base.AUTH_SESSION_STATE, 1), *NODE.origin_avps, Avp.new(base.RESULT_CODE, 2001),
             Avp.new(s13.EQUIPMENT_STATUS, s13.EquipmentStatus.BLACKLISTED))


def proxy_info(host: str, state: bytes) -> Avp:
    return Avp.new(base.PROXY_INFO, [Avp.new(base.PROXY_HOST, host), Avp.new(base.PROXY_STATE, state)])


@settings(max_examples=200, deadline=None)
@given(
    hbh=st.integers(0, 2**32 - 1), e2e=st.integers(0, 2**32 - 1), proxiable=st.booleans(),
    session=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    proxies=st.lists(st.tuples(st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True), st.binary(max_size=9)),
                     max_size=3),
)
def test_render_equals_generic_answer(hbh: int, e2e: int, proxiable: bool, session: str | None,
                                      proxies: list[tuple[str, bytes]]) -> None:
    req = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | (FLAG_PROXIABLE if proxiable else 0), hbh, e2e)
    if session is not None:
        req.add(base.SESSION_ID, session)
    req.add(base.ORIGIN_HOST, "mme.example").add(base.DESTINATION_REALM, "example")
    req.avps += [proxy_info(h, s) for h, s in proxies]
    req.add(base.ROUTE_RECORD, "dra.example")
    expected = encode_message(make_answer(req, ECA_BLACK))
    assert AnswerTemplate(ECA_BLACK).render(req) == expected


def test_error_template_sets_the_e_bit() -> None:
    req = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 1, 2).add(base.SESSION_ID, "s;1")
    out = AnswerTemplate((*NODE.origin_avps, Avp.new(base.RESULT_CODE, 3004)), error=True).render(req)
    assert out[4] == 0x60  # P copied, E set, R clear
    assert out == encode_message(make_answer(req, (*NODE.origin_avps, Avp.new(base.RESULT_CODE, 3004)), error=True))
