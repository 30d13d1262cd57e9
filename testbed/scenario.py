"""Scenario files (YAML under config/scenarios/, documented in config/scenarios/README.md).

A scenario names the simulated MMEs and their policies, a population of subscribers and devices in
categories (:data:`testbed.population.CATEGORIES`), the arrival process and the bounds of the run.
:func:`load_scenario` validates it (every error names the key and the reason); :meth:`Scenario.build`
generates the population, the list entries and the procedure events, deterministically from the seed,
and computes each event's expected EIR answer and MME outcome without asking the EIR.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.arrivals import Arrivals, arrivals_from_mapping
from testbed.eca import EirAnswer
from testbed.population import CATEGORIES, Device, ListEntry, Lists, expected_answer, read_list_csv
from testbed.profiles import MmeOutcome, Procedure, Profile, profile_from_mapping

__all__ = ["Event", "MmeSpec", "Plan", "Scenario", "ScenarioError", "load_scenario", "parse_scenario"]


class ScenarioError(ValueError):
    """A scenario that cannot run; the message starts with the offending key."""


@dataclass(frozen=True, slots=True)
class MmeSpec:
    """One simulated MME/SGSN: its Diameter identity, connections and policy profile."""

    name: str
    origin_host: str
    realm: str
    profile: Profile
    connections: int = 1
    transport: str = "tcp"


@dataclass(frozen=True, slots=True)
class Event:
    """One procedure of one UE at one MME, intended to start ``at`` seconds into the run."""

    at: float
    device: int
    mme: int
    procedure: Procedure
    expected_answer: EirAnswer | None  # None: this procedure sends no ECR
    expected: MmeOutcome


@dataclass
class Plan:
    """A built scenario: devices, the lists to seed, and the events in time order."""

    devices: list[Device]
    entries: list[ListEntry]
    events: list[Event]
    lists: Lists

    def category_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.devices:
            out[d.category] = out.get(d.category, 0) + 1
        return out


@dataclass(frozen=True)
class Scenario:
    """A validated scenario (see config/scenarios/README.md for every key)."""

    name: str
    seed: int
    mmes: tuple[MmeSpec, ...]
    subscribers: int
    mix: dict[str, float]
    arrivals: Arrivals
    duration: float
    timeout: float = 2.0
    realm: str = "localdomain"
    destination_host: str | None = None
    unknown: str = "unknown"
    list_file: str | None = None
    mcc: str = "001"
    mnc: str = "01"
    tac_prefix: str = "35"
    movers: float = 0.0
    tau: float = 0.0
    range_width: int = 100
    per_range: int = 10
    per_tac: int = 500
    description: str = ""
    base_dir: Path = field(default=Path("."), compare=False)

    # ------------------------------------------------------------------ generation
    def build(self) -> Plan:
        """Devices, entries and events; the same seed gives the same plan."""
        rng = random.Random(self.seed)
        counts = _apportion(self.subscribers, self.mix)
        order = [c for c in CATEGORIES for _ in range(counts.get(c, 0))]
        rng.shuffle(order)
        per_cat: dict[str, int] = {}
        devices: list[Device] = []
        entries: list[ListEntry] = []
        n_mmes = len(self.mmes)
        for index, cat in enumerate(order):
            k = per_cat.get(cat, 0)
            per_cat[cat] = k + 1
            imsi = f"{self.mcc}{self.mnc}{index:0{15 - len(self.mcc) - len(self.mnc)}d}"
            imei = self._imei(cat, k, rng)
            svn = f"{rng.randrange(100):02d}"
            home = index % n_mmes
            mover = None
            if n_mmes > 1 and cat not in ("emergency_black", "malformed") and rng.random() < self.movers:
                mover = (home + 1) % n_mmes
            devices.append(Device(index, imsi, imei, svn, cat, home, mover))
            entries.extend(self._entries_for(cat, k, imei, imsi))
        if self.list_file is not None:
            path = Path(self.list_file)
            if not path.is_absolute():
                path = self.base_dir / path
            with open(path, newline="") as f:
                lists = Lists(list(read_list_csv(f)))
        else:
            lists = Lists(entries)
        events = self._events(devices, lists, rng)
        return Plan(devices, entries, events, lists)

    def _imei(self, cat: str, k: int, rng: random.Random) -> str:
        ci = CATEGORIES.index(cat)
        if cat == "malformed":
            forms = (f"{k:013d}", f"{k:017d}", f"35{ci:02d}A{k:09d}")
            return forms[k % 3]
        tac_base = f"{self.tac_prefix}{ci:02d}"
        if cat.endswith("_range"):
            r, pos = divmod(k, self.per_range)
            step = max(1, self.range_width // self.per_range)
            snr_global = r * 2 * self.range_width + pos * step + rng.randrange(step)
        elif cat.endswith("_tac"):
            block, pos = divmod(k, self.per_tac)
            return f"{tac_base}{block:04d}{pos:06d}"
        else:
            snr_global = k
        block, snr = divmod(snr_global, 1_000_000)
        return f"{tac_base}{block:04d}{snr:06d}"

    def _entries_for(self, cat: str, k: int, imei: str, imsi: str) -> list[ListEntry]:
        colour = cat.split("_", 1)[0]
        if cat in ("white_imei", "grey_imei", "black_imei"):
            return [ListEntry("imei", imei, colour)]
        if cat == "emergency_black":
            return [ListEntry("imei", imei, "black")]
        if cat == "paired":
            return [ListEntry("imei", imei, "black"), ListEntry("imei", imei, "white", imsi=imsi)]
        if cat == "paired_other_imsi":
            other = imsi[:-1] + str((int(imsi[-1]) + 5) % 10) if imsi else imsi
            other = other[:5] + "9" + other[6:]  # an MSIN no scenario device has
            return [ListEntry("imei", imei, "black"), ListEntry("imei", imei, "white", imsi=other)]
        if cat.endswith("_range") and k % self.per_range == 0:
            r = k // self.per_range
            first = r * 2 * self.range_width
            lo, hi = divmod(first, 1_000_000), divmod(first + self.range_width - 1, 1_000_000)
            base = imei[:4]
            return [ListEntry("range", f"{base}{lo[0]:04d}{lo[1]:06d}", colour, last=f"{base}{hi[0]:04d}{hi[1]:06d}")]
        if cat.endswith("_tac") and k % self.per_tac == 0:
            return [ListEntry("tac", imei[:8], colour)]
        return []

    def _events(self, devices: list[Device], lists: Lists, rng: random.Random) -> list[Event]:
        plan: list[tuple[int, int, Procedure]] = []
        for d in devices:
            plan.append((d.index, d.home, Procedure.EMERGENCY if d.category == "emergency_black"
                         else Procedure.ATTACH))
        follow: list[tuple[int, int, Procedure]] = []
        for d in devices:
            if d.mover_to is not None:
                follow.append((d.index, d.mover_to, Procedure.ATTACH))
            if d.category != "emergency_black" and rng.random() < self.tau:
                follow.append((d.index, d.mover_to if d.mover_to is not None else d.home, Procedure.TAU))
        rng.shuffle(follow)
        plan.extend(follow)
        times = list(self.arrivals.times(len(plan), self.duration, self.seed))
        events = []
        for at, (di, mi, proc) in zip(times, plan, strict=False):
            d, prof = devices[di], self.mmes[mi].profile
            exp_answer = expected_answer(d, lists, self.unknown) if prof.sends_check(proc) else None
            events.append(Event(at, di, mi, proc, exp_answer, prof.outcome(exp_answer, proc)))
        return events


def _apportion(total: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` by weights; every category with weight > 0 gets at least 1."""
    s = sum(mix.values())
    raw = {k: total * w / s for k, w in mix.items() if w > 0}
    out = {k: max(1, int(v)) for k, v in raw.items()}
    rest = total - sum(out.values())
    for k in sorted(raw, key=lambda k: raw[k] - int(raw[k]), reverse=True):
        if rest <= 0:
            break
        out[k] += 1
        rest -= 1
    return out


# ---------------------------------------------------------------------- parsing and validation
_TOP = {"name", "description", "seed", "eir", "mmes", "population", "arrivals", "duration", "timeout"}


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ScenarioError(f"{p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{p}: not valid YAML: {e}") from None
    return parse_scenario(data, base_dir=p.parent)


def _map(data: Any, where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping, got {type(data).__name__}")
    return data


def _keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ScenarioError(f"{where}{key}: unknown key (expected one of {', '.join(sorted(allowed))})")


def _num(data: Mapping[str, Any], key: str, default: Any, where: str, *, lo: float = 0.0, hi: float = float("inf"),
         integer: bool = False) -> Any:
    v = data.get(key, default)
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise ScenarioError(f"{where}{key}: expected {kind}, got {v!r}")
    if not lo <= v <= hi:
        raise ScenarioError(f"{where}{key}: {v} is outside {lo:g}..{hi:g}")
    return v


def parse_scenario(data: Any, base_dir: Path = Path(".")) -> Scenario:
    """Validate a scenario mapping (as read from YAML)."""
    top = _map(data, "scenario")
    _keys(top, _TOP, "")
    name = str(top.get("name", "scenario"))
    seed = _num(top, "seed", 1, "", integer=True)
    eir = _map(top.get("eir"), "eir")
    _keys(eir, {"realm", "destination_host", "unknown", "list_file"}, "eir.")
    unknown = eir.get("unknown", "unknown")
    if unknown not in ("unknown", "white", "grey", "black"):
        raise ScenarioError(f"eir.unknown: {unknown!r} is not one of unknown, white, grey, black")
    mmes_raw = top.get("mmes") or [{"name": "mme1", "profile": "open5gs"}]
    if not isinstance(mmes_raw, list) or not mmes_raw:
        raise ScenarioError("mmes: expected a non-empty list of MMEs")
    mmes = []
    for i, m in enumerate(mmes_raw):
        where = f"mmes[{i}]"
        m = _map(m, where)
        _keys(m, {"name", "profile", "origin_host", "realm", "connections", "transport", "policy"}, where + ".")
        mname = str(m.get("name", f"mme{i + 1}"))
        transport = m.get("transport", "tcp")
        if transport not in ("tcp", "sctp"):
            raise ScenarioError(f"{where}.transport: {transport!r} is not tcp or sctp")
        try:
            prof = profile_from_mapping(str(m.get("profile", "open5gs")), _map(m.get("policy"), where + ".policy"),
                                        where + ".policy")
        except ValueError as e:
            msg = str(e)
            raise ScenarioError(msg.replace(f"{where}.policy.profile", f"{where}.profile")) from None
        realm = str(m.get("realm", "epc.mnc001.mcc001.3gppnetwork.org"))
        mmes.append(MmeSpec(mname, str(m.get("origin_host", f"{mname}.{realm}")), realm, prof,
                            _num(m, "connections", 1, where + ".", lo=1, hi=64, integer=True), transport))
    if len({m.origin_host for m in mmes}) != len(mmes):
        raise ScenarioError("mmes: every MME needs its own origin_host")
    pop = _map(top.get("population"), "population")
    _keys(pop, {"subscribers", "mcc", "mnc", "mix", "movers", "tau", "tac_prefix", "range_width", "per_range",
                "per_tac"}, "population.")
    subscribers = _num(pop, "subscribers", 1000, "population.", lo=1, hi=10_000_000, integer=True)
    mix_raw = _map(pop.get("mix") or {"white_imei": 1}, "population.mix")
    mix: dict[str, float] = {}
    for cat in mix_raw:
        if cat not in CATEGORIES:
            raise ScenarioError(f"population.mix.{cat}: unknown category (expected one of {', '.join(CATEGORIES)})")
        mix[cat] = float(_num(mix_raw, cat, 0, "population.mix."))
    if sum(mix.values()) <= 0:
        raise ScenarioError("population.mix: at least one category needs a positive share")
    if sum(1 for w in mix.values() if w > 0) > subscribers:
        raise ScenarioError("population.subscribers: fewer subscribers than categories in the mix")
    mcc, mnc = str(pop.get("mcc", "001")), str(pop.get("mnc", "01"))
    if not (len(mcc) == 3 and mcc.isdigit() and len(mnc) in (2, 3) and mnc.isdigit()):
        raise ScenarioError("population.mcc/mnc: MCC is 3 digits and MNC 2 or 3 (TS 23.003 §2.2)")
    movers = float(_num(pop, "movers", 0.0, "population.", hi=1.0))
    if movers > 0 and len(mmes) < 2:
        raise ScenarioError("population.movers: devices moving between MMEs need at least 2 MMEs")
    tac_prefix = str(pop.get("tac_prefix", "35"))
    if len(tac_prefix) != 2 or not tac_prefix.isdigit():
        raise ScenarioError("population.tac_prefix: expected 2 digits")
    range_width = _num(pop, "range_width", 100, "population.", lo=1, hi=100_000, integer=True)
    per_range = _num(pop, "per_range", 10, "population.", lo=1, hi=100_000, integer=True)
    if per_range > range_width:
        raise ScenarioError("population.per_range: more devices per range than the range width")
    try:
        arrivals = arrivals_from_mapping(_map(top.get("arrivals") or {"rate": 1000}, "arrivals"))
    except ValueError as e:
        raise ScenarioError(str(e)) from None
    duration = float(_num(top, "duration", 600, "", lo=0.001, hi=3600))
    list_file = eir.get("list_file")
    return Scenario(
        name=name, seed=seed, mmes=tuple(mmes), subscribers=subscribers, mix=mix, arrivals=arrivals,
        duration=duration, timeout=float(_num(top, "timeout", 2.0, "", lo=0.01, hi=60)),
        realm=str(eir.get("realm", "localdomain")), destination_host=eir.get("destination_host"),
        unknown=unknown, list_file=str(list_file) if list_file else None, mcc=mcc, mnc=mnc,
        tac_prefix=tac_prefix, movers=movers, tau=float(_num(pop, "tau", 0.0, "population.", hi=1.0)),
        range_width=range_width, per_range=per_range,
        per_tac=_num(pop, "per_tac", 500, "population.", lo=1, hi=999_999, integer=True),
        description=str(top.get("description", "")), base_dir=base_dir,
    )
