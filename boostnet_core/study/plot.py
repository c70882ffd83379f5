"""A study report as one figure (report.png): per recipe, anytime accuracy with its band over seeds, and the paired
differences with their intervals."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes


def plot(report: dict, path: Path) -> None:
    """One row per recipe: anytime accuracy (mean ± sd band over seeds) and the paired differences with intervals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recipes = report["recipes"]
    # One colour per variant and per comparison across every recipe of the report.
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    variant_names = sorted({name for rec in recipes for name in rec["variants"]})
    pair_names = sorted({(c["a"], c["b"]) for rec in recipes for c in rec["comparisons"]})
    fig, axes = plt.subplots(len(recipes), 2, figsize=(12, 4.2 * len(recipes)), dpi=110, squeeze=False)
    for row, rec in zip(axes, recipes):
        ax = row[0]
        for name, v in rec["variants"].items():
            x = np.array(v["macs"]) / 1e6
            m, s = np.array(v["top1_mean"]), np.nan_to_num(np.array(v["top1_sd"]))
            color = palette[variant_names.index(name) % len(palette)]
            ax.plot(x, m, "o-", color=color, label=f"{name} (n={len(v['seeds'])})")
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.2)
        ax.set_xlabel("MACs per image (millions)"); ax.set_ylabel("test top-1 (%)")
        ax.set_title(rec["recipe"], fontsize=9); ax.grid(alpha=0.3); ax.legend(fontsize=7)
        ax = row[1]
        comps = [c for c in rec["comparisons"] if c["seeds"]]
        width = 0.8 / max(len(comps), 1)
        for j, c in enumerate(comps):
            k = np.arange(len(c["exits"])) + 1 + (j - (len(comps) - 1) / 2) * width
            d = np.array([e["difference"] for e in c["exits"]])
            lo = np.array([e["low"] for e in c["exits"]]); hi = np.array([e["high"] for e in c["exits"]])
            ax.errorbar(k, d, yerr=[np.nan_to_num(d - lo), np.nan_to_num(hi - d)], fmt="o", capsize=3,
                        color=palette[pair_names.index((c["a"], c["b"])) % len(palette)],
                        label=f"{c['a']} − {c['b']} (n={len(c['seeds'])})")
        ax.axhline(0, color="black", lw=0.8)
        if comps:
            ax.set_xticks(range(1, len(comps[0]["exits"]) + 1))
        ax.set_xlabel("exit"); ax.set_ylabel(f"difference (points), {int(100 * report['level'])}% interval")
        ax.grid(alpha=0.3); ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
