#!/usr/bin/env python3
"""Plot bench/run.py's results.json into one PNG per question (needs matplotlib:
run.py runs this with its bench-only venv).   plot.py RESULTS.json OUTDIR
The deployment cost has its own picture: bench/plot_deploy.py.

  throughput.png  how much of direct's throughput each path keeps (both endpoints)
  sse.png         how late SSE events arrive through each path

Every picture names the machine, the date and what Opengram was (the real
release or the stand-in)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Same hue per proxy software; the upstream guide's configs are light and hatched.
PATH_COLORS = {"direct": "#555555", "ours-caddy": "#1f77b4", "ours-nginx": "#2ca02c",
               "guide-caddy": "#9ec9ea", "guide-nginx": "#a6dba0", "ours-nginx+keepalive": "#9467bd",
               "ours-nginx-no-keepalive": "#9467bd", "ours-caddy-compressing": "#17becf",
               "ours-caddy+compression-off": "#17becf", "ceiling-caddy": "#d9d9d9",
               "ceiling-nginx": "#bdbdbd"}
# issue 15's goals at 8 connections (share of direct)
GOALS = {"ours-nginx": 0.85, "ours-caddy": 0.75}
ENDPOINT_TITLES = {"throughput": "GET /api/v1/health", "throughput_chats": "GET /api/v1/chats?limit=20 (authenticated)"}


def color(path: dict) -> str:
    return PATH_COLORS.get(path["name"], "#7f7f7f")


def caption(results: dict, question: str) -> str:
    m = results["machine"]
    package = results.get("package")
    app = (f"the real {package['name']} {package['version']}" if package
           else "the offline stand-in (proxy-only view, not the real app)")
    return (f"{question}\nOpengram: {app}.\nRun {results['started'][:16].replace('T', ' ')} UTC "
            f"({results['mode']}, {results['settings']['rounds']} rounds), commit "
            f"{results.get('tree', {}).get('commit')}\nMachine: {m['cores']} cores {m['cpu_model']}, "
            f"{m['ram_gib']} GiB, {m['os']}: client, proxies and app share these cores")


def throughput_figure(results: dict, dst: Path) -> None:
    proxy = results["proxy"]
    keys = [k for k in ENDPOINT_TITLES if proxy.get(k)]
    concs = [str(c) for c in results["settings"]["concurrencies"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(7.0 * len(keys), 5.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        thr = proxy[key]
        # The TLS-only ceilings (2-5x direct) are in the tables: here they would
        # squash every bar that answers the question.
        paths = [p for p in results["paths"] if p["name"] in thr and p["kind"] not in ("direct", "ceiling")]
        width = 0.8 / max(len(paths), 1)
        for i, p in enumerate(paths):
            t = thr[p["name"]]
            xs = [j + i * width for j in range(len(concs))]
            ys = [100 * (t[c].get("ratio_to_direct") or 0) for c in concs]
            bars = ax.bar(xs, ys, width, label=p["name"], color=color(p),
                          hatch="//" if p["kind"] == "guide" else None, edgecolor="white")
            for b, c in zip(bars, concs):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{t[c]['rps']:.0f}/s",
                        ha="center", va="bottom", fontsize=5.5, rotation=90)
        ax.axhline(100, color="#555555", linewidth=1)
        ax.text(len(concs) - 0.5, 101, "direct", fontsize=7, ha="right", va="bottom")
        if "8" in concs:
            j = concs.index("8")
            for name, goal in GOALS.items():
                if name in thr:
                    ax.hlines(100 * goal, j - 0.1, j + 0.9, colors=PATH_COLORS[name], linestyles="dashed")
                    ax.text(j + 0.9, 100 * goal, f"goal {name}", fontsize=6, va="bottom", ha="right")
        direct = thr.get("direct", {})
        ax.set_xticks([j + width * (len(paths) - 1) / 2 for j in range(len(concs))])
        ax.set_xticklabels([f"{c} conn.\n(direct {direct.get(c, {}).get('rps') or 0:.0f}/s)" for c in concs],
                           fontsize=8)
        ax.set_ylabel("% of direct's requests/s (median of rounds)")
        ax.set_title(ENDPOINT_TITLES[key], fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(caption(results, "Throughput through each proxy, as a share of direct to the app "
                                  "(keep-alive; bar label: requests/s; TLS-only ceilings: see the tables)"), fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    plt.close(fig)


def sse_figure(results: dict, dst: Path) -> None:
    proxy = results["proxy"]
    paths = [p for p in results["paths"] if proxy["sse"][p["name"]]["n"]]
    names = [p["name"] for p in paths]
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    med = [proxy["sse"][n]["delay_median_ms"] or 0 for n in names]
    p95 = [proxy["sse"][n]["delay_p95_ms"] or 0 for n in names]
    ax.bar(names, p95, color="#cccccc", label="p95")
    ax.bar(names, med, color=[color(p) for p in paths], label="median")
    for i, n in enumerate(names):
        ax.text(i, med[i], f"{med[i]:.2f}", ha="center", va="bottom", fontsize=7)
    direct = proxy["sse"].get("direct", {}).get("delay_median_ms") or 0
    ax.axhline(direct + 1.0, color="red", linestyle="dashed", linewidth=1)
    ax.text(len(names) - 0.5, direct + 1.0, "goal: direct's median + 1 ms", fontsize=7, ha="right",
            va="bottom", color="red")
    ax.set_ylabel("ms from the app's POST answer to the chat.created event")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(caption(results, "SSE: how late events arrive through each path"), fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    plt.close(fig)


def main(src: str, out_dir: str) -> int:
    results = json.load(open(src))
    out = Path(out_dir)
    if results.get("proxy"):
        throughput_figure(results, out / "throughput.png")
        sse_figure(results, out / "sse.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
