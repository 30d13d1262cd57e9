"""Unit tests of the testbed: scenarios, expectations, arrivals, HDR merge, verdict."""

from __future__ import annotations

import io

import pytest

from testbed.arrivals import Arrivals
from testbed.eca import EirAnswer
from testbed.emm import EmmCause
from testbed.latency import LatencyRecorder, summarize
from testbed.population import CATEGORIES, Lists, expected_answer, luhn_digit, read_list_csv, write_list_csv
from testbed.profiles import PROFILES, MmeOutcome, Procedure
from testbed.scenario import ScenarioError, parse_scenario
from testbed.verdict import Verdict, judge

ALL = {c: 1 for c in CATEGORIES}


def scen(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "t", "seed": 3,
        "mmes": [{"name": "a", "profile": "open5gs"}, {"name": "b", "profile": "vectorcore"}],
        "population": {"subscribers": 700, "movers": 0.1, "tau": 0.1, "mix": ALL},
        "arrivals": {"rate": 1000},
    }
    base.update(over)
    return base


@pytest.mark.parametrize(("data", "needle"), [
    ({"bogus": 1}, "bogus: unknown key"),
    ({"population": {"subscribers": "many"}}, "population.subscribers: expected an integer"),
    ({"population": {"mix": {"purple": 1}}}, "population.mix.purple: unknown category"),
    ({"mmes": [{"name": "a", "profile": "nokia"}]}, "mmes[0].profile"),
    ({"mmes": [{"name": "a", "policy": {"black": "accept"}}]}, "mmes[0].policy.black"),
    ({"mmes": [{"name": "a", "policy": {"grey": 99}}]}, "mmes[0].policy.grey"),
    ({"mmes": [{"name": "a"}], "population": {"movers": 0.5}}, "population.movers"),
    ({"arrivals": {"process": "zigzag"}}, "arrivals.process"),
    ({"eir": {"unknown": "pink"}}, "eir.unknown"),
    ({"mmes": [{"name": "a", "transport": "udp"}]}, "mmes[0].transport"),
])
def test_validation_errors_name_the_key(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(scen(**data))
    assert needle in str(e.value)


def test_population_is_deterministic_and_covers_every_category() -> None:
    a, b = parse_scenario(scen()).build(), parse_scenario(scen()).build()
    assert a.devices == b.devices and a.entries == b.entries and a.events == b.events
    assert set(a.category_counts()) == set(CATEGORIES)
    assert len(a.devices) == 700
    c = parse_scenario(scen(seed=4)).build()
    assert c.devices != a.devices
    assert any(d.mover_to is not None for d in a.devices)


def test_expected_outcomes_per_profile() -> None:
    plan = parse_scenario(scen()).build()
    want = {"white_imei": EirAnswer.WHITE, "grey_range": EirAnswer.GREY, "black_tac": EirAnswer.BLACK,
            "paired": EirAnswer.WHITE, "paired_other_imsi": EirAnswer.BLACK, "unknown": EirAnswer.UNKNOWN,
            "malformed": EirAnswer.INVALID, "black_range": EirAnswer.BLACK, "white_tac": EirAnswer.WHITE}
    for d in plan.devices:
        if d.category in want:
            assert expected_answer(d, plan.lists) is want[d.category], d
    for ev in plan.events:
        d = plan.devices[ev.device]
        if ev.procedure is Procedure.EMERGENCY:
            assert ev.expected.accepted  # TS 22.016
        elif ev.expected_answer is EirAnswer.BLACK:
            cause = EmmCause.ILLEGAL_ME if ev.mme == 0 else EmmCause.IMEI_NOT_ACCEPTED
            assert ev.expected == MmeOutcome(False, cause), d
        elif ev.procedure is Procedure.TAU and ev.mme == 0:
            assert ev.expected_answer is None  # open5gs does not check on TAU


def test_profiles_match_reference() -> None:
    assert PROFILES["open5gs"].outcome(EirAnswer.UNKNOWN).cause is EmmCause.SEVERE_NETWORK_FAILURE
    assert PROFILES["osmocom"].outcome(EirAnswer.BLACK).cause is EmmCause.ILLEGAL_ME
    assert PROFILES["magma"].outcome(EirAnswer.UNKNOWN).accepted
    assert PROFILES["vectorcore"].outcome(EirAnswer.TIMEOUT).cause is EmmCause.NETWORK_FAILURE
    assert PROFILES["vectorcore"].imei_digits == 15
    assert PROFILES["open5gs"].outcome(EirAnswer.BLACK, Procedure.EMERGENCY).accepted


def test_list_file_round_trip_gives_the_same_expectations() -> None:
    plan = parse_scenario(scen()).build()
    buf = io.StringIO()
    write_list_csv(buf, plan.entries)
    buf.seek(0)
    lists = Lists(list(read_list_csv(buf)))
    for d in plan.devices:
        assert expected_answer(d, lists) is expected_answer(d, plan.lists)


def test_scenario_reads_expectations_from_a_list_file(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    plan = parse_scenario(scen()).build()
    # The list file says every listed IMEI is grey: expectations follow the file, not the scenario's lists.
    (tmp_path / "lists.csv").write_text("kind,imei,last,status,imsi\n" + "".join(
        f"imei,{e.key},,grey,\n" for e in plan.entries if e.kind == "imei" and not e.imsi))
    other = parse_scenario({**scen(), "eir": {"list_file": "lists.csv"}}, base_dir=tmp_path).build()
    assert other.devices == plan.devices
    by_cat = {plan.devices[e.device].category: e.expected_answer for e in other.events
              if e.procedure is Procedure.ATTACH and e.expected_answer is not None}
    assert by_cat["black_imei"] is EirAnswer.GREY and by_cat["paired"] is EirAnswer.GREY
    assert by_cat["black_tac"] is EirAnswer.UNKNOWN  # no TAC entry in the file


def test_fifteen_digit_imei_has_luhn() -> None:
    assert luhn_digit("49015420323751") == "8"  # TS 23.003 Annex B example 49015420323751-8
    plan = parse_scenario(scen()).build()
    d = next(d for d in plan.devices if d.well_formed)
    assert d.imei_as_sent(15) == d.imei + luhn_digit(d.imei)


@pytest.mark.parametrize("kind", ["constant", "ramp", "burst", "poisson"])
def test_arrivals_bounded_and_ordered(kind: str) -> None:
    a = Arrivals(kind, rate=200, start_rate=20, burst_size=30, burst_every=0.5)
    times = list(a.times(10_000, 3.0, seed=1))
    assert times and all(0 <= t < 3.0 for t in times)
    assert times == sorted(times)
    assert len(list(a.times(50, 3.0))) == 50
    if kind == "constant":
        assert len(times) == 600
    if kind == "burst":
        assert len(times) == 600 + 6 * 30


def test_hdr_merge_across_workers() -> None:
    a, b = LatencyRecorder(), LatencyRecorder()
    for i in range(1, 1001):
        a.record(0, i)
        b.record(1, 1000 + i)
    merged = LatencyRecorder.decode(a.encode())
    merged.merge(LatencyRecorder.decode(b.encode()))
    s = summarize(merged.total)
    assert s["count"] == 2000
    assert 0.99 <= s["p50"] <= 1.01 and s["max"] == pytest.approx(2.0, rel=0.01)
    assert sorted(merged.per_second) == [0, 1]


def test_verdict_logic() -> None:
    rej6 = MmeOutcome(False, EmmCause.ILLEGAL_ME)
    acc = MmeOutcome(True)
    assert judge(EirAnswer.BLACK, rej6, EirAnswer.BLACK, rej6) == "ok"
    assert judge(EirAnswer.BLACK, rej6, EirAnswer.WHITE, acc) == "wrongly_accepted"
    assert judge(EirAnswer.WHITE, acc, EirAnswer.BLACK, rej6) == "wrongly_rejected"
    assert judge(EirAnswer.GREY, acc, EirAnswer.WHITE, acc) == "wrong_status"
    assert judge(EirAnswer.WHITE, acc, EirAnswer.TIMEOUT, MmeOutcome(False, EmmCause.NETWORK_FAILURE)) == "timeout"
    assert judge(EirAnswer.WHITE, acc, EirAnswer.UNABLE, MmeOutcome(False, EmmCause.NETWORK_FAILURE)) == "error"
    assert judge(EirAnswer.BLACK, rej6, EirAnswer.BLACK, MmeOutcome(False, EmmCause.IMEI_NOT_ACCEPTED)) \
        == "wrong_cause"
    v = Verdict()
    v.add("white_imei", "ok")
    assert v.passed
    v.add("black_imei", "wrongly_accepted", {"x": 1})
    assert not v.passed and v.wrong == 1 and v.rows()[-1]["wrongly_accepted"] == 1
