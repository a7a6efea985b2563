#!/usr/bin/env python3
"""The cold converge of a fleet: N fresh hosts in one run, two commits side by side.

  python3 bench/cold_fleet.py --old HEAD~1 --new HEAD --hosts 4 --rounds 2 \\
      --package ../shared/opengram/opengramsh-opengram-0.2.1.tgz

What an operator waits for when provisioning N new servers with one
`ansible-playbook site.yml`: N fresh systemd containers from the bare base
image (Debian 13, nothing cached) behind Caddy, certificates from Pebble,
converged at once. Each round does that with the old and with the new commit,
in turns (round 1 old, new; round 2 new, old; ...: the machine's noise hits
both alike). Each commit's tree is exported with `git archive` (as
bench/nochange_ab.py does) and site.yml runs from it; the inventory is the
current tree's (bench/topology.py), so variables an older role does not know
(opengram_npm_locks_dir: the stand-in's lock) are simply ignored by it. The
stand-in and Pebble are prepared once, from the new commit's tree.

Per run: wall time of the whole run, changed tasks per host, CPU seconds of
the controller (ansible-playbook and its workers) and of the N containers,
the apt and npm install steps (bench/cold.py's STEPS) fleet-wide from
ansible.posix.profile_tasks (a task lasts until its slowest host is done),
and per host from Ansible's log with timestamps (ANSIBLE_LOG_PATH): from a
task's banner to the host's last result line in it, summed over the step.

Writes OUT/results.json after every run (default docs/bench/cold_fleet) and
prints a Markdown table. Without --package the offline stand-in is deployed.
Fixed container names (ogdbench-*): never beside another bench run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import topology  # first: it puts the repository on sys.path for tools.ogd
from cold import STEPS, steps, write
from measure import bench_session, cold_converge, median, playbook, run_record
from nochange_ab import export
from report import fmt, git_state, machine_info
from run import packed_release
from topology import (PEBBLE, ROOT, BenchError, create_containers, ensure_bench_image,
                      ensure_network, fleet_hosts, run, say, write_inventory)
from tools.ogd.common import HostPrepError, cache_dir
from tools.ogd.env import ensure_all

WHICH = ("old", "new")

# A line of Ansible's log (ANSIBLE_LOG_PATH): "2026-12-07 10:00:00,123 p=42
# u=root n=ansible INFO| changed: [host]"; the lines after the first of a
# multi-line message carry no stamp.
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) p=\d+ u=.*? n=\S+ \w+\| (.*)$")
_BANNER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<task>.*)\](?: \*+)?$")
_RESULT = re.compile(r"^(?:ok|changed|skipping|fatal|failed|unreachable|rescued|ignored): "
                     r"\[(?P<host>[^\]\s]+)")


def ab_order(rounds: int) -> list[tuple[int, str]]:
    """(round, old|new) in the order they run: old, new; new, old; ..."""
    return [(rnd, which) for rnd in range(1, rounds + 1)
            for which in (WHICH if rnd % 2 else WHICH[::-1])]


def host_steps(log: str) -> dict[str, dict[str, float]]:
    """Seconds per host in each of STEPS, from Ansible's log with timestamps:
    from a task's banner to the host's last result line (the last item of a
    loop) before the next banner, summed over the step's tasks."""
    out: dict[str, dict[str, float]] = {}
    step, start, last = None, 0.0, {}

    def close() -> None:
        for host, end in last.items():
            out.setdefault(host, dict.fromkeys(STEPS, 0.0))[step] += end - start

    for line in log.splitlines():
        m = _LOG_LINE.match(line)
        if not m:
            continue
        t = dt.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        banner = _BANNER.match(m[2])
        if banner or m[2].startswith("PLAY "):
            if step is not None:
                close()
            task = banner["task"] if banner else ""
            step = next((k for k, prefixes in STEPS.items() if banner and task.startswith(prefixes)), None)
            start, last = t, {}
        elif step is not None and (result := _RESULT.match(m[2])):
            last[result["host"]] = t
    if step is not None:
        close()
    return out


def per_host(recap: dict, log: str, names: list[str]) -> dict[str, dict]:
    """The fleet's hosts: seconds in each step (0 where a host has none) and changed tasks."""
    times = host_steps(log)
    return {h: {**times.get(h, dict.fromkeys(STEPS, 0.0)), "changed": recap[h]["changed"]}
            for h in names if h in recap}


def spread(values: list[float]) -> dict:
    return {"median": median(values), "max": max(values) if values else None}


def summarize(runs: list[dict]) -> dict:
    """Per commit: medians of the runs, and each step's median and max over every host of every run."""
    out = {}
    for which in dict.fromkeys(r["ref"] for r in runs):
        mine = [r for r in runs if r["ref"] == which]
        hosts = [h for r in mine for h in r["per_host"].values()]
        cpu = [r["controller_cpu"] + r["host_cpu"] for r in mine if r["host_cpu"] is not None]
        out[which] = {"commit": mine[0]["commit"], "runs": len(mine),
                      "seconds": median([r["seconds"] for r in mine]),
                      "controller_cpu": median([r["controller_cpu"] for r in mine]),
                      "host_cpu": median([r["host_cpu"] for r in mine if r["host_cpu"] is not None]),
                      "cpu": median(cpu) if len(cpu) == len(mine) else None,
                      "changed_per_host": spread([h["changed"] for h in hosts]),
                      "per_host": {k: spread([h[k] for h in hosts]) for k in STEPS},
                      "fleet_steps": {k: median([r["steps"][k] for r in mine]) for k in STEPS}}
    return out


def table(results: dict) -> str:
    def pair(s: dict, spec: str = ".1f") -> str:
        return f"{fmt(s['median'], spec)} / {fmt(s['max'], spec)}"

    rows = ["| run | commit | wall s | npm install per host s, median / max | apt per host s, median / max "
            "| changed per host, median / max | controller CPU s | containers CPU s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results["runs"]:
        hosts = list(r["per_host"].values())
        rows.append(f"| {r['name']} | {r['commit']} | {r['seconds']:.1f} | "
                    f"{pair(spread([h['npm install'] for h in hosts]))} | "
                    f"{pair(spread([h['apt'] for h in hosts]))} | "
                    f"{pair(spread([h['changed'] for h in hosts]), 'g')} | "
                    f"{fmt(r['controller_cpu'])} | {fmt(r['host_cpu'])} |")
    for which, s in results["summary"].items():
        rows.append(f"| **{which}**, median of {s['runs']} | {s['commit']} | {fmt(s['seconds'])} | "
                    f"{pair(s['per_host']['npm install'])} | {pair(s['per_host']['apt'])} | "
                    f"{pair(s['changed_per_host'], 'g')} | {fmt(s['controller_cpu'])} | "
                    f"{fmt(s['host_cpu'])} |")
    return "\n".join(rows)


def record(name: str, rnd: int, ref: str, commit: str, r, timed: Path, names: list[str]) -> dict:
    """One run as results.json keeps it."""
    return {"name": name, "round": rnd, "ref": ref, "commit": commit[:10], **run_record(r),
            "timed_log": str(timed), "steps": steps(r.profile),
            "per_host": per_host(r.recap, timed.read_text(errors="replace") if timed.exists() else "", names)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cold_fleet.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default="HEAD~1", metavar="REF", help="the commit before (default HEAD~1)")
    parser.add_argument("--new", default="HEAD", metavar="REF", help="the commit after (default HEAD)")
    parser.add_argument("--hosts", type=int, default=4, metavar="N", help="fresh hosts per run (default 4)")
    parser.add_argument("--rounds", type=int, default=1, metavar="R",
                        help="rounds, each one run per commit (default 1)")
    parser.add_argument("--package", type=Path, metavar="PATH",
                        help="the packed real release (default: the offline stand-in)")
    parser.add_argument("--joining", action="store_true",
                        help="after each run, one more fresh host with that run's build cache "
                             "(a host added to the fleet later; ref old-joining / new-joining)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/bench/cold_fleet")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.rounds < 1:
        parser.error("--hosts and --rounds must be at least 1")
    args.out = args.out.resolve()
    try:
        refs = {which: {"ref": ref, "commit": run(["git", "-C", str(ROOT), "rev-parse", "--verify",
                                                   f"{ref}^{{commit}}"]).stdout.strip()}
                for which, ref in zip(WHICH, (args.old, args.new))}
        topology.PACKAGE = packed_release(args.package) if args.package else None
        env = {**os.environ, **ensure_all()}
    except (BenchError, HostPrepError, OSError, KeyError) as exc:
        print(f"bench/cold_fleet: {exc}", file=sys.stderr)
        return 1
    pkg = topology.PACKAGE
    names = [h.name for h in fleet_hosts(args.hosts)]
    work = cache_dir() / "bench-cold-fleet"
    work.mkdir(parents=True, exist_ok=True)
    head = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "tree": git_state(), "refs": refs, "hosts": args.hosts,
            "rounds": args.rounds, "package": "stand-in" if pkg is None else f"{pkg['name']} {pkg['version']}"}
    runs: list[dict] = []
    with bench_session("bench/cold_fleet", errors=(OSError, subprocess.CalledProcessError)) as session, \
            tempfile.TemporaryDirectory(prefix="ogdbench-cold-fleet-") as tmp:
        trees = {which: export(refs[which]["commit"], Path(tmp) / which) for which in WHICH}
        say(f"bench image: {ensure_bench_image()}")  # Pebble runs from it
        ensure_network()
        create_containers([PEBBLE])
        playbook("prepare", "molecule/shared/prepare.yml", write_inventory(work, [PEBBLE]), env, work,
                 tree=trees["new"])
        for rnd, which in ab_order(args.rounds):
            name = f"cold-fleet-{args.hosts}-{which}-round-{rnd}"
            timed = work / "logs" / f"{name}.timed.log"
            timed.unlink(missing_ok=True)  # Ansible appends to its log
            r = cold_converge(name, [PEBBLE], {**env, "ANSIBLE_LOG_PATH": str(timed)}, work,
                              n=args.hosts, tree=trees[which])
            runs.append(record(name, rnd, which, refs[which]["commit"], r, timed, names))
            if args.joining:
                joined = timed.with_name(f"{name}-joining.timed.log")
                joined.unlink(missing_ok=True)
                r = cold_converge(f"{name}-joining", [PEBBLE], {**env, "ANSIBLE_LOG_PATH": str(joined)},
                                  work, n=1, tree=trees[which], build_cache=work / "builds" / name)
                runs.append(record(f"{name}-joining", rnd, f"{which}-joining", refs[which]["commit"], r,
                                   joined, names[:1]))
            # after every run: an interrupted bench keeps what it measured
            write(args.out, {**head, "runs": runs, "summary": summarize(runs),
                             "load_samples": session["sampler"].samples})
    if session["rc"]:
        return session["rc"]
    results = {**head, "runs": runs, "summary": summarize(runs), "load_samples": session["sampler"].samples}
    write(args.out, results)
    print(table(results))
    say(f"results: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
