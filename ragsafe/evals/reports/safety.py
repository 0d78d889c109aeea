"""Text/Markdown tables of the summary's ``safety`` section: selective answering, net benefit, poisoning."""

from __future__ import annotations

from ragsafe.evals.metrics import metrics, select
from ragsafe.records import SafetySection, SummaryLike, as_summary


def _ci(e: dict | None, pct: bool = True) -> str:
    if not e:
        return "n/a"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.3f}")
    return f"{f(e['mean'])}{'%' if pct else ''} [{f(e['lo'])}, {f(e['hi'])}]"


def _cell(name: str, e: dict | None) -> str:
    """An estimate shown in its registered metric's unit."""
    return _ci(e, metrics.get(name).unit == "%")


def _section(summary: SummaryLike) -> SafetySection:
    return as_summary(summary).safety or SafetySection()


def safety_rows(summary: SummaryLike) -> dict[str, list[list[str]]]:
    """Rows of the three tables (header first), from the summary's ``safety``; columns, labels and
    units from the metrics registered ``over="safety"``."""
    s = _section(summary)
    x = s.settings.max_high_risk_pct
    sel_m = select(over="safety", group="selective")
    sel = [["graph", "confidence"] + [m.label.replace("X%", f"{x:g}%") for m in sel_m] + ["n"]]
    for arm, srcs in s.selective.items():
        for src, v in srcs.items():
            sel.append([arm, src] + [_cell(m.name, v.get(m.name)) for m in sel_m] + [str(v["n"])])
    costs = s.settings.costs
    nb = [["graph", f"{metrics.get('net_benefit').label} (w={costs.get('w', 3):g})", "abstentions", "nulls"]]
    for arm, v in s.net_benefit.items():
        nb.append([arm, _cell("net_benefit", v["estimate"]) if v["estimate"] else v["na"], str(v["abstentions"]),
                   str(v["nulls"])])
    po_m = select(over="safety", group="poison")
    po = [["graph"] + [m.label for m in po_m] + ["Δ accuracy vs clean", "Δ high-risk vs clean"]]
    pairs = {p["a"]: p for p in s.pairs if "poison" in p}
    for arm, v in s.poison.items():
        d = (pairs.get(arm) or {}).get("poison") or {}
        po.append([arm] + [_cell(m.name, v.get(m.name)) for m in po_m]
                  + [_ci(d.get("accuracy")), _ci(d.get("high_risk_error_rate"))])
    return {"selective": sel, "net_benefit": nb, "poison": po}


def _render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def safety_text(summary: SummaryLike) -> str:
    """The tables that have rows, as aligned text ('' when the summary has no safety section)."""
    out = []
    titles = {"selective": "Selective answering (abstain on the least confident first)",
              "net_benefit": "Net benefit (correct +1, abstain 0, null -1, wrong -1, high-risk/unsafe wrong -w)",
              "poison": "Poisoned corpus (paired against the same graph on the clean corpus)"}
    for key, rows in safety_rows(summary).items():
        if len(rows) > 1:
            out.append(f"{titles[key]}\n{_render(rows)}")
    maj = _section(summary).settings.sc_majority
    if maj and maj != "null-ballot":
        out.append(f"SC safety rates use the {maj} majority")
    return "\n\n".join(out)


def safety_markdown(summary: SummaryLike) -> str:
    out = []
    for key, rows in safety_rows(summary).items():
        if len(rows) > 1:
            out.append("\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
                                 + ["| " + " | ".join(r) + " |" for r in rows[1:]]))
    return "\n\n".join(out)


def risk_coverage_png(summary: SummaryLike) -> str | None:
    """Risk–coverage step curves (accuracy and high-risk error against coverage), one line per graph ×
    confidence source; None when no graph has a confidence source."""
    from ragsafe.evals.reports.figures import _figure, _png

    s = _section(summary)
    sel = s.selective
    lines = [(arm, src, v["curve"]) for arm, srcs in sel.items() for src, v in srcs.items() if v.get("curve")]
    if not lines:
        return None
    fig = _figure(11, 4.4)
    axes = [fig.add_subplot(1, 2, i) for i in (1, 2)]
    for j, (arm, src, pts) in enumerate(lines):
        cov = [0.0] + [p["coverage"] for p in pts]
        for ax, key in zip(axes, ("accuracy", "high_risk")):
            if pts[0].get(key) is None:
                continue
            ys = [pts[0][key]] + [p[key] for p in pts]
            ax.step(cov, ys, where="pre", color=f"C{j % 10}", label=f"{arm} · {src}")
    x = s.settings.max_high_risk_pct
    axes[1].axhline(x / 100, color="grey", lw=0.8, ls="--")
    for ax, title in zip(axes, ("selective accuracy", f"selective high-risk error (dashed: {x:g}%)")):
        ax.set_xlabel("coverage (answered share, most confident first)")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    return _png(fig)
