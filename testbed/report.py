"""Reports: ``result.json``, PNG figures (matplotlib, Agg) and ``report.html`` embedding them.

Figures: latency percentiles over time (p50/p90/p99/max per second), throughput over time
(sent and completed per second), and the outcome table by category (stacked bars of every verdict
kind). The PNGs are 150 dpi, usable in slides; the HTML embeds them and links the files.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _plots(result: dict[str, Any], out: Path) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: list[tuple[str, Path]] = []
    tl = [r for r in result.get("timeline", []) if r.get("count")]
    if tl:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ts = [r["t"] for r in tl]
        for key, style in (("p50", "-"), ("p90", "-"), ("p99", "-"), ("p99.9", "--"), ("max", ":")):
            ax.plot(ts, [r[key] for r in tl], style, label=key, linewidth=1.6)
        ax.set_yscale("log")
        ax.set_xlabel("time into the run (s)")
        ax.set_ylabel("latency from intended send (ms)")
        ax.set_title("Latency percentiles over time")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(ncol=5, fontsize=8)
        p = out / "latency.png"
        fig.tight_layout()
        fig.savefig(p, dpi=150)
        plt.close(fig)
        figs.append(("Latency percentiles over time", p))
    rows = result.get("timeline", [])
    if rows:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ts = [r["t"] for r in rows]
        if any("sent" in r for r in rows):
            ax.plot(ts, [r.get("sent", 0) for r in rows], label="sent / s", linewidth=1.6)
        ax.plot(ts, [r.get("completed", 0) for r in rows], label="completed / s", linewidth=1.6)
        ax.set_xlabel("time into the run (s)")
        ax.set_ylabel("per second")
        ax.set_ylim(bottom=0)
        ax.set_title("Throughput over time")
        ax.grid(True, alpha=0.3)
        ax.legend()
        p = out / "throughput.png"
        fig.tight_layout()
        fig.savefig(p, dpi=150)
        plt.close(fig)
        figs.append(("Throughput over time", p))
    verdict = result.get("verdict")
    if verdict:
        from testbed.verdict import KINDS

        vrows = [r for r in verdict["rows"] if r["category"] != "TOTAL"]
        fig, ax = plt.subplots(figsize=(9, max(3.0, 0.35 * len(vrows) + 1.2)))
        left = [0] * len(vrows)
        colours = {"ok": "#4caf50", "wrongly_accepted": "#d32f2f", "wrongly_rejected": "#ff9800",
                   "wrong_cause": "#9c27b0", "wrong_status": "#795548", "error": "#607d8b", "timeout": "#212121"}
        names = [r["category"] for r in vrows]
        for k in KINDS:
            vals = [r[k] for r in vrows]
            if any(vals):
                ax.barh(names, vals, left=left, label=k.replace("_", " "), color=colours[k])
                left = [a + b for a, b in zip(left, vals, strict=True)]
        ax.invert_yaxis()
        ax.set_xlabel("procedures")
        ax.set_title("Outcome by category (" + ("PASS" if verdict["passed"] else "FAIL") + ")")
        ax.legend(fontsize=8, loc="lower right")
        p = out / "outcomes.png"
        fig.tight_layout()
        fig.savefig(p, dpi=150)
        plt.close(fig)
        figs.append(("Outcome by category", p))
    return figs


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.bad{color:#c62828;font-weight:bold}.pass{color:#2e7d32}
.fail{color:#c62828}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f4f4f4}"""


def _table(rows: list[dict[str, Any]], cols: list[str], bad: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cls = ' class="bad"' if c in bad and v else ""
            cells.append(f"<td{cls}>{html.escape(f'{v:,}' if isinstance(v, int) else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_report(result: dict[str, Any], out_dir: str | Path, *, pcap: str | None = None) -> dict[str, Path]:
    """Write result.json, the PNGs and report.html into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if pcap:
        result = {**result, "pcap": pcap}
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    figs = _plots(result, out)
    parts = [f"<h1>eirlab testbed: {html.escape(str(result.get('scenario', result.get('kind', 'run'))))}</h1>"]
    verdict = result.get("verdict")
    if verdict is not None:
        ok = verdict["passed"]
        parts.append(f"<h2 class=\"{'pass' if ok else 'fail'}\">{'PASS' if ok else 'FAIL'}: "
                     f"{verdict['wrong']:,} wrong outcomes</h2>")
    lat = result.get("latency_ms", {})
    summary = [{"metric": k, "value": result[k]} for k in ("events", "completed", "sent", "answered", "timeouts",
                                                            "throughput_per_s", "sustained_per_s", "elapsed_s",
                                                            "reconnects")
               if k in result]
    summary += [{"metric": f"latency {k} (ms)", "value": f"{v:.3f}"} for k, v in lat.items() if k != "count"]
    parts.append("<h2>Summary</h2>" + _table(summary, ["metric", "value"]))
    for title, p in figs:
        b64 = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(title)}</h2><a href=\"{p.name}\"><img alt=\"{html.escape(title)}\" "
                     f"src=\"data:image/png;base64,{b64}\"></a>")
    if verdict is not None:
        from testbed.verdict import KINDS

        parts.append("<h2>Outcome table by category</h2>"
                     + _table(verdict["rows"], ["category", "total", *KINDS], set(KINDS) - {"ok"}))
        if verdict.get("examples"):
            cols = list(verdict["examples"][0].keys())
            parts.append("<h2>Wrong outcomes (first examples)</h2>" + _table(verdict["examples"], cols))
    if result.get("mmes"):
        parts.append("<h2>MMEs</h2>" + _table([{**m, "outcomes": ", ".join(f"{k}: {v}" for k, v in
                                                                          m["outcomes"].items())}
                                               for m in result["mmes"]],
                                              ["name", "origin_host", "profile", "imei_digits", "outcomes"]))
    if result.get("answers"):
        parts.append("<h2>EIR answers</h2>" + _table([{"answer": k, "count": v} for k, v in
                                                      sorted(result["answers"].items())], ["answer", "count"]))
    if pcap:
        parts.append(f"<p>Trace: <code>{html.escape(pcap)}</code> (tshark -r FILE -d tcp.port==PORT,diameter)</p>")
    parts.append('<p>Raw data: <a href="result.json">result.json</a></p>')
    page = f"<!doctype html><html><head><meta charset=\"utf-8\"><title>eirlab testbed report</title>" \
           f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>"
    (out / "report.html").write_text(page)
    return {"json": out / "result.json", "html": out / "report.html", **{p.stem: p for _, p in figs}}
