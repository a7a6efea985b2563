#!/usr/bin/env python3
"""Plot bench/run.py's results.json into a PNG (needs matplotlib: run.py runs
this with its bench-only venv).   plot.py RESULTS.json OUT.png"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Same hue per proxy software; the upstream guide's configs are light and hatched.
PATH_COLORS = {"direct": "#555555", "ours-caddy": "#1f77b4", "ours-nginx": "#2ca02c",
               "guide-caddy": "#9ec9ea", "guide-nginx": "#a6dba0", "ours-nginx+keepalive": "#9467bd",
               "ours-nginx-no-keepalive": "#9467bd"}


def color(path: dict) -> str:
    return PATH_COLORS.get(path["name"], "#7f7f7f")


def main(src: str, dst: str) -> int:
    results = json.load(open(src))
    proxy = results.get("proxy")
    # The deployment cost has its own picture (plot_deploy.py).
    panels = 3 if proxy else 0
    cols = 2 if panels > 1 else 1
    rows = (panels + 1) // 2 if panels > 1 else 1
    fig, grid = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.4 * rows), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    machine = results["machine"]
    fig.suptitle(f"opengram-deploy bench ({results['mode']}, {results['started']}) on "
                 f"{machine['cores']} cores {machine['cpu_model']}: client, proxies and app share them",
                 fontsize=9)
    if proxy:
        paths = results["paths"]
        concs = [str(c) for c in results["settings"]["concurrencies"]]
        ax = axes.pop(0)
        width = 0.8 / len(paths)
        for i, p in enumerate(paths):
            t = proxy["throughput"][p["name"]]
            xs = [j + i * width for j in range(len(concs))]
            ys = [t[c]["rps"] or 0 for c in concs]
            bars = ax.bar(xs, ys, width, label=p["name"], color=color(p),
                          hatch="//" if p["kind"] == "guide" else None, edgecolor="white")
            for b, c in zip(bars, concs):
                r = t[c].get("ratio_to_direct")
                if r is not None and p["kind"] != "direct":
                    ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r:.0%}",
                            ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xticks([j + width * (len(paths) - 1) / 2 for j in range(len(concs))])
        ax.set_xticklabels([f"{c} conn." for c in concs])
        ax.set_ylabel("requests/s (GET /api/v1/health)")
        ax.set_title("Throughput (label: % of direct)", fontsize=10)
        ax.legend(fontsize=7)

        ax = axes.pop(0)
        c = "8" if "8" in concs else concs[0]
        names = [p["name"] for p in paths]
        for k, (key, marker) in enumerate((("p50_ms", "o"), ("p90_ms", "s"), ("p99_ms", "^"))):
            ax.plot(names, [proxy["throughput"][n][c][key] for n in names], marker=marker,
                    linestyle="none", label=key.replace("_ms", ""))
        ax.set_ylabel("ms (log scale)")
        ax.set_yscale("log")
        ax.set_title(f"Latency at {c} connections (median of rounds)", fontsize=10)
        ax.tick_params(axis="x", rotation=35, labelsize=7)
        ax.legend(fontsize=7)

        ax = axes.pop(0)
        med = [proxy["sse"][n]["delay_median_ms"] or 0 for n in names]
        p95 = [proxy["sse"][n]["delay_p95_ms"] or 0 for n in names]
        ax.bar(names, p95, color="#cccccc", label="p95")
        ax.bar(names, med, color=[color(p) for p in paths], label="median")
        ax.plot(names, [proxy["sse"][n]["created_median_ms"] or 0 for n in names], "kx",
                linestyle="none", label="median from createdAt\n(incl. app's fsync)")
        ax.set_ylabel("ms, event after the app's POST answer")
        ax.set_title("SSE event delay", fontsize=10)
        ax.tick_params(axis="x", rotation=35, labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
