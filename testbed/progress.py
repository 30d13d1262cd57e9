"""Live progress in the terminal (rich) and the final summary tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["attach_line", "load_line", "summary_table", "verdict_table"]


def _lat(lat: dict[str, float]) -> str:
    if not lat or not lat.get("count"):
        return "-"
    return f"p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f} ms"


def attach_line(p: dict[str, Any]) -> str:
    rate = p["done"] / p["elapsed"] if p["elapsed"] > 0 else 0.0
    answers = " ".join(f"{k}={v}" for k, v in sorted(p["answers"].items()))
    return (f"[bold]{p['done']}/{p['total']}[/] procedures  {rate:,.0f}/s  ok={p['ok']} "
            f"[{'red' if p['wrong'] else 'green'}]wrong={p['wrong']}[/]  {_lat(p['latency'])}  {answers}")


def load_line(snaps: dict[int, dict[str, Any]]) -> str:
    sent = sum(s["sent"] for s in snaps.values())
    answered = sum(s["answered"] for s in snaps.values())
    t = max((s["t"] for s in snaps.values()), default=0.0)
    inflight = sum(s["in_flight"] for s in snaps.values())
    answers: dict[str, int] = {}
    for s in snaps.values():
        for k, v in s["answers"].items():
            answers[k] = answers.get(k, 0) + v
    lat: dict[str, float] = next((s["latency"] for s in snaps.values() if s.get("latency")), {})
    rate = answered / t if t else 0.0
    return (f"t={t:5.1f}s sent={sent:,} answered={answered:,} ({rate:,.0f}/s) in-flight={inflight:,} "
            f"{_lat(lat)} " + " ".join(f"{k}={v:,}" for k, v in sorted(answers.items())))


def verdict_table(verdict: dict[str, Any], title: str = "Verdict by category") -> Table:
    from testbed.verdict import KINDS

    short = {"ok": "ok", "wrongly_accepted": "wrong accept", "wrongly_rejected": "wrong reject",
             "wrong_cause": "cause", "wrong_status": "status", "error": "error", "timeout": "timeout"}
    t = Table(title=title)
    t.add_column("category", no_wrap=True)
    t.add_column("total", justify="right")
    for k in KINDS:
        t.add_column(short[k], justify="right")
    for row in verdict["rows"]:
        style = "bold" if row["category"] == "TOTAL" else None
        cells = [row["category"], str(row["total"])]
        for k in KINDS:
            n = row[k]
            cells.append(f"[red]{n}[/]" if n and k != "ok" else str(n))
        t.add_row(*cells, style=style)
    return t


def summary_table(result: dict[str, Any]) -> Table:
    lat = result["latency_ms"]
    t = Table(title="Summary")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key in ("sent", "answered", "completed", "events", "timeouts", "throughput_per_s", "sustained_per_s",
                "elapsed_s", "reconnects"):
        if key in result:
            t.add_row(key, f"{result[key]:,}" if isinstance(result[key], int) else str(result[key]))
    for k in ("p50", "p90", "p99", "p99.9", "max"):
        t.add_row(f"latency {k} (ms)", f"{lat[k]:.3f}")
    for k, v in sorted(result.get("answers", {}).items()):
        t.add_row(f"answers {k}", f"{v:,}")
    return t


def mme_table(result: dict[str, Any]) -> Table:
    """Per simulated MME: its profile and how its procedures ended (accept / reject with EMM cause)."""
    t = Table(title="Outcomes by MME (TS 24.301 EMM causes)")
    for col in ("MME", "profile", "IMEI digits", "outcomes"):
        t.add_column(col)
    for m in result.get("mmes", []):
        outcomes = ", ".join(f"{k}: {v:,}" for k, v in sorted(m["outcomes"].items(), key=lambda kv: -kv[1]))
        t.add_row(m["name"], m["profile"], str(m["imei_digits"]), outcomes)
    return t


def wide_console() -> Console:
    """A console at least 120 columns wide (tables stay readable when the output is a pipe or a file)."""
    return Console(width=max(Console().width, 120))
