"""The forest plot: every claim's statistic with its 95% interval against its margin, one panel
per claim, each protocol of a scale one row in it (small-v2 beside small v3), so a reader sees at
a glance which verdicts moved between protocols and how far each interval sits from its margin.

Each claim's statistic has its own unit (mAP points, % of a gain), so each panel has its own
x-axis; the margin is the dashed line, half and twice the margin the dotted ones (the verdicts
at those are in every report). A protocol without all of a claim's results shows "not run".
The plotted numbers are written beside the figure as CSV (`dvc plots show` reads it).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from itl import paths  # noqa: E402

COLOURS = {"reproduced": "tab:green", "not reproduced": "tab:red",
           "inconclusive": "tab:grey", "untestable at this scale": "tab:purple"}
FIELDS = ["claim", "protocol", "mean", "lo", "hi", "n", "margin", "direction", "verdict"]


def rows(protocols: dict[str, list[dict]],
         complete: Callable[[dict], bool] = lambda s: True) -> list[dict]:
    """One row per (claim, protocol) from {protocol label: report sections}; claims in the order
    of the newest protocol (the last one given); a section without results, or not `complete`
    (some condition or seed missing: a grid in progress), marked "not run"."""
    order: list[str] = []
    for sections in reversed(protocols.values()):
        order += [s["claim"].id for s in sections if s["claim"].id not in order]
    out = []
    for cid in order:
        for label, sections in protocols.items():
            s = next((s for s in sections if s["claim"].id == cid), None)
            if s is None:
                continue
            e, c = s["estimate"], s["claim"]
            ran = e.n > 0 and not math.isnan(e.mean) and complete(s)
            out.append({"claim": cid, "protocol": label, "mean": e.mean if ran else math.nan,
                        "lo": e.lo, "hi": e.hi, "n": e.n, "margin": c.margin,
                        "direction": c.direction,
                        "verdict": s["verdict"] if ran else "not run"})
    return out


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    w.writeheader()
    for r in table:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def plot(table: list[dict], path: Path, title: str) -> None:
    """The figure at `path` (PNG), one panel per claim of `table` (from `rows`)."""
    claims = list(dict.fromkeys(r["claim"] for r in table))
    labels = list(dict.fromkeys(r["protocol"] for r in table))
    fig, axes = plt.subplots(len(claims), 1, figsize=(7.5, 1.0 + 0.32 * len(labels) * len(claims)
                                                      + 0.35 * len(claims)), squeeze=False)
    for ax, cid in zip(axes[:, 0], claims):
        mine = [r for r in table if r["claim"] == cid]
        xs = [0.0]
        for i, r in enumerate(mine):
            y = len(mine) - 1 - i
            m = r["margin"]  # per row: a protocol may have moved it (claims v3's NEAR 20)
            for f, style in ((1.0, "--"), (0.5, ":"), (2.0, ":")):
                ax.vlines(m * f, y - 0.4, y + 0.4, color="black", linestyle=style,
                          linewidth=1.0 if f == 1 else 0.6)
            xs += [m * 0.5, m * 2]
            if r["verdict"] == "not run":
                ax.text(1.01, (y + 0.5) / len(mine), "not run", transform=ax.transAxes,
                        fontsize=7, va="center", color="tab:grey")
                continue
            lo, hi = (r["lo"], r["hi"]) if r["n"] >= 2 else (r["mean"], r["mean"])
            colour = COLOURS.get(r["verdict"], "black")
            ax.errorbar([r["mean"]], [y], xerr=[[r["mean"] - lo], [hi - r["mean"]]], fmt="o",
                        color=colour, capsize=3, markersize=4)
            ax.text(1.01, (y + 0.5) / len(mine), r["verdict"], transform=ax.transAxes,
                    fontsize=7, va="center", color=colour)
            xs += [lo, hi]
        xs = [x for x in xs if not math.isnan(x)]
        pad = 0.08 * (max(xs) - min(xs) or 1.0)
        ax.set_xlim(min(xs) - pad, max(xs) + pad)
        ax.set_ylim(-0.5, len(mine) - 0.5)
        ax.set_yticks(range(len(mine)),
                      [f"{r['protocol']} ({'>' if r['direction'] == 'above' else '<'} "
                       f"{r['margin']:g})" for r in reversed(mine)], fontsize=7)
        ax.set_title(f"{cid}: statistic, 95% interval; the claim holds when the interval lies "
                     "past the margin (dashed; half and twice it dotted)", fontsize=7, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    png = io.BytesIO()  # rendered first, then written whole (a killed writer leaves no half file)
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    paths.atomic_write_bytes(path, png.getvalue())
