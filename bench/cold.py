#!/usr/bin/env python3
"""The cold converge of one host, the stand-in and the real release side by side.

  python3 bench/cold.py --package ../shared/opengram/opengramsh-opengram-0.2.1.tgz --rounds 2

What a user waits for on a new server (issue 15 item 3): site.yml on one fresh
systemd container from the bare base image (Debian 13, nothing cached), behind
Caddy with a certificate from Pebble. Each round converges a fresh host with the
offline stand-in and then a fresh host with the packed release of --package
(without --package: the stand-in only), so the two are measured under the same
load. Per run: wall time, changed tasks, the controller's and the host's CPU
seconds, and the time of the two steps that dominate (apt, the npm install with
the native build), from ansible.posix.profile_tasks.

Writes OUT/results.json (default docs/bench/cold) and prints a Markdown table.
Fixed container names (ogdbench-*): never beside another bench run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path

import topology  # first: it puts the repository on sys.path for tools.ogd
from measure import bench_session, cold_converge, playbook, run_record
from report import fmt, git_state, machine_info
from run import packed_release
from topology import (PEBBLE, ROOT, create_containers, ensure_bench_image,
                      ensure_network, say, write_inventory)
from tools.ogd.common import HostPrepError, cache_dir
from tools.ogd.env import ensure_all

# The steps of a cold converge worth naming, matched on profile_tasks' task
# names ("role : name"): apt (the index refresh, and the roles' package tasks
# in common/tasks/packages.yml, named after what they install) and the npm
# install with the native build (named "Install the npm package at version X"
# before the locks of f14edf2, "Install Opengram X as release Y" since).
STEPS = {"apt": ("opengram : Refresh the apt cache", "common : Install "),
         "npm install": ("opengram : Install the npm package", "opengram : Install Opengram ")}


def steps(profile: list[dict]) -> dict[str, float]:
    """Seconds per named step: the sum of the tasks whose name starts with it."""
    return {key: sum(t["seconds"] for t in profile if t["task"].startswith(prefixes))
            for key, prefixes in STEPS.items()}


def table(results: dict) -> str:
    rows = ["| run | package | wall s | changed | controller CPU s | CPU in the host s | apt s | npm install s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results["runs"]:
        rows.append(f"| {r['name']} | {r['package']} | {r['seconds']:.1f} | {r['changed']} | "
                    f"{fmt(r['controller_cpu'])} | {fmt(r['host_cpu'])} | "
                    f"{r['steps']['apt']:.1f} | {r['steps']['npm install']:.1f} |")
    for pkg, s in results["median"].items():
        rows.append(f"| median | {pkg} | {s['seconds']:.1f} |  |  |  | {s['apt']:.1f} | {s['npm install']:.1f} |")
    return "\n".join(rows)


def summary(head: dict, runs: list[dict], load: list[dict]) -> dict:
    """head (what the run is: start, machine, tree, rounds) + the runs so far and their medians."""
    median = {}
    for label in dict.fromkeys(r["package"] for r in runs):
        mine = [r for r in runs if r["package"] == label]
        median[label] = {"seconds": statistics.median(r["seconds"] for r in mine),
                         **{k: statistics.median(r["steps"][k] for r in mine) for k in STEPS}}
    return {**head, "runs": runs, "median": median, "load_samples": load}


def write(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cold.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", type=Path, metavar="PATH",
                        help="the packed real release, converged after the stand-in in every round")
    parser.add_argument("--rounds", type=int, default=2, metavar="N")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/bench/cold")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    packages: list[dict | None] = [None]
    if args.package:
        packages.append(packed_release(args.package))
    try:
        env = ensure_all()
    except HostPrepError as exc:
        print(f"bench/cold: preparing the machine failed: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, **env}
    work = cache_dir() / "bench-cold"
    work.mkdir(parents=True, exist_ok=True)
    head = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "tree": git_state(), "rounds": args.rounds}
    runs: list[dict] = []
    with bench_session("bench/cold") as session:
        say(f"bench image: {ensure_bench_image()}")  # Pebble runs from it
        ensure_network()
        create_containers([PEBBLE])
        playbook("prepare", "molecule/shared/prepare.yml", write_inventory(work, [PEBBLE]), env, work)
        for rnd in range(1, args.rounds + 1):
            for pkg in packages:
                topology.PACKAGE = pkg
                label = "stand-in" if pkg is None else f"{pkg['name']} {pkg['version']}"
                name = f"cold-{'standin' if pkg is None else 'real'}-round-{rnd}"
                r = cold_converge(name, [PEBBLE], env, work)
                runs.append({"name": name, "round": rnd, "package": label, **run_record(r),
                             "steps": steps(r.profile)})
                # after every run: an interrupted bench keeps what it measured
                write(args.out, summary(head, runs, session["sampler"].samples))
    if session["rc"]:
        return session["rc"]
    results = summary(head, runs, session["sampler"].samples)
    write(args.out, results)
    print(table(results))
    say(f"results: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
