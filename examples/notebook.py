"""From a notebook: two runs side by side (the README's "From a notebook" section, as a script).

    python examples/notebook.py RUN_A RUN_B [--png accuracy_vs_high_risk.png] [--graph closed_book]

Plots every graph variant of both runs as accuracy against high-risk error, each with its 95%
bootstrap interval, and lists the questions where one graph's answer changed between the runs.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import ragsafe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs=2, help="two run folders")
    ap.add_argument("--png", default="accuracy_vs_high_risk.png", help="where to save the figure")
    ap.add_argument("--graph", default="closed_book", help="the variant whose changed answers to list")
    a = ap.parse_args(argv)

    runs = ragsafe.load_run(a.runs)
    s = runs.summary_df()
    y = "high_risk_error_rate"
    if y not in set(s.metric):  # a benchmark without option labels: no high-risk axis, say so and plot nulls
        print("high-risk error is n/a for these runs (the benchmark has no option labels); plotting the null rate")
        y = "null_rate"
    wide = s[s.metric.isin(["accuracy", y])].pivot_table(
        index=["run", "variant"], columns="metric", values=["mean", "lo", "hi"])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for (run, variant), r in wide.iterrows():
        xv, yv = r[("mean", "accuracy")], r[("mean", y)]
        ax.errorbar(xv, yv, xerr=[[xv - r[("lo", "accuracy")]], [r[("hi", "accuracy")] - xv]],
                    yerr=[[yv - r[("lo", y)]], [r[("hi", y)] - yv]], fmt="o", capsize=3, label=f"{variant} ({run})")
    ax.set_xlabel("accuracy (95% CI)")
    ax.set_ylabel(("high-risk error" if y == "high_risk_error_rate" else "null rate") + " (95% CI)")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)
    print(f"wrote {a.png}")

    df = runs.samples_df()
    d = df[df.variant == a.graph].assign(letter=lambda x: x.letter.fillna("null"))
    g = d.pivot_table(index="question_id", columns="run", values="letter", aggfunc="first").dropna()
    changed = g[g.nunique(axis=1) > 1]  # only questions both runs answered
    print(f"{len(changed)} of {len(g)} questions changed their {a.graph} answer between the runs:")
    print(changed.to_string() if len(changed) else "(none)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
