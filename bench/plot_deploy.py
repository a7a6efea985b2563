#!/usr/bin/env python3
"""Plot the deployment cost of bench/run.py's results.json into one PNG (needs
matplotlib: run.py runs this with its bench-only venv).
   plot_deploy.py RESULTS.json OUT.png

The question it answers: what a deploy costs that the product controls. The
no-change series (1..N converged hosts) shows the controller's CPU time per
extra host next to the wall time, which on a few shared cores is bounded by
the cores (controller, docker engine and every host on the same CPUs); then
the cold converge of one fresh host and the no-change rerun of one host."""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = (("seconds", "wall time", "#d62728", "o", "-"),
          ("controller_cpu", "controller CPU (ansible-playbook + children)", "#1f77b4", "s", "-"),
          ("host_cpu", "CPU in the hosts (their cgroups)", "#2ca02c", "^", "-"),
          ("engine_cpu", "docker engine CPU (docker exec's far side)", "#9467bd", "v", "-"))


def fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def not_measured(ax, title: str, why: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def series_panel(ax, series: dict | None, cores: int) -> None:
    title = "No-change site.yml vs hosts in the run"
    if not series or len(series.get("by_hosts", {})) < 2:
        not_measured(ax, title, "one size only (smoke): no slope")
        return
    by = {int(n): v for n, v in series["by_hosts"].items()}
    ns = sorted(by)
    sc = series["scaling"]
    for key, label, color, marker, style in SERIES:
        ys = [by[n][key] for n in ns]
        if None in ys:
            continue
        slope = sc[key]["per_extra_host"]
        ax.plot(ns, ys, marker=marker, linestyle=style, color=color,
                label=f"{label}: +{fmt(slope)} s/extra host")
        pts = [p for p in series["points"] if p.get(key) is not None]
        ax.plot([p["hosts"] for p in pts], [p[key] for p in pts], marker=marker, linestyle="none",
                color=color, alpha=0.3, markersize=4)
    floor = [None if None in (by[n]["controller_cpu"], by[n]["host_cpu"], by[n]["engine_cpu"])
             else (by[n]["controller_cpu"] + by[n]["host_cpu"] + by[n]["engine_cpu"]) / cores for n in ns]
    if None not in floor:
        ax.plot(ns, floor, linestyle="--", color="#555555",
                label=f"all CPU / {cores} cores (least wall time these cores allow)")
    ax.set_xticks(ns)
    ax.set_xlabel("converged hosts in one no-change run (--limit)")
    ax.set_ylabel("seconds (median of rounds; faint: each round)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def per_host_panel(ax, series: dict | None, cores: int) -> None:
    title = "What one extra host costs (slope, smallest -> largest run)"
    if not series or len(series.get("by_hosts", {})) < 2:
        not_measured(ax, title, "one size only (smoke): no slope")
        return
    sc = series["scaling"]
    keys = [(k, label, color) for k, label, color, _, _ in SERIES if sc[k]["per_extra_host"] is not None]
    vals = [sc[k]["per_extra_host"] for k, _, _ in keys]
    bars = ax.bar(range(len(keys)), vals, color=[c for _, _, c in keys])
    for b, v in zip(bars, vals):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.2f} s", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([label.split(" (")[0].replace(" ", "\n", 1) for _, label, _ in keys], fontsize=7)
    ax.set_ylabel("seconds per extra host")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"wall time: every host's work on these {cores} shared cores;\n"
                  "controller CPU: the product's own cost, on one machine with any fleet", fontsize=7)


def cold_panel(ax, runs: dict) -> None:
    r = runs.get("cold-1")
    title = "Cold converge, 1 fresh host (bare base image)"
    if not r:
        not_measured(ax, title, "not measured (smoke)")
        return
    tasks = r["profile_top10"][:8][::-1]
    ax.barh(range(len(tasks)), [t["seconds"] for t in tasks], color="#1f77b4")
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([t["task"][:55] for t in tasks], fontsize=6)
    for i, t in enumerate(tasks):
        ax.text(t["seconds"], i, f" {t['seconds']:.1f}", va="center", fontsize=6)
    ax.set_xlabel("seconds (slowest tasks)")
    ax.set_title(f"{title}: {r['seconds']:.0f} s wall, changed={r['changed']},\n"
                 f"controller CPU {fmt(r.get('controller_cpu'), '.0f')} s, "
                 f"in the host {fmt(r.get('host_cpu'), '.0f')} s", fontsize=9)


def rerun_panel(ax, runs: dict) -> None:
    names = [n for n in ("no-change-1", "no-change-1-ssh") if n in runs]
    labels = {"no-change-1": "docker exec", "no-change-1-ssh": "SSH (production)"}
    ax.bar([labels[n] for n in names], [runs[n]["seconds"] for n in names], color="#d62728",
           label="wall time")
    ax.bar([labels[n] for n in names], [runs[n].get("controller_cpu") or 0 for n in names], width=0.4,
           color="#1f77b4", label="controller CPU")
    for i, n in enumerate(names):
        ax.text(i, runs[n]["seconds"], f"{runs[n]['seconds']:.1f} s", ha="center", va="bottom", fontsize=8)
    ax.axhline(10, color="#555555", linestyle="--", linewidth=1)
    ax.text(len(names) - 0.5, 10, "issue 12: 10 s per host", ha="right", va="bottom", fontsize=7)
    ax.set_ylabel("seconds")
    ax.set_title("No-change rerun, 1 converged host", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")


def main(src: str, dst: str) -> int:
    results = json.load(open(src))
    deploy = results["deploy"]
    machine = results["machine"]
    cores = machine["cores"]
    fig, grid = plt.subplots(2, 2, figsize=(13, 9))
    series = deploy.get("no_change_series")
    series_panel(grid[0][0], series, cores)
    per_host_panel(grid[0][1], series, cores)
    cold_panel(grid[1][0], deploy["runs"])
    rerun_panel(grid[1][1], deploy["runs"])
    fig.suptitle(f"opengram-deploy: deployment cost ({results['mode']}, {results['started']}) on "
                 f"{cores} cores {machine['cpu_model']}, {machine['ram_gib']} GiB, Docker "
                 f"{machine['docker_engine']}\ncontroller, docker engine and every host share these "
                 f"{cores} cores: wall time measures the cores, controller CPU per host the product",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
