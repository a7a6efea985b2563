#!/usr/bin/env python3
"""The no-change run of two commits, side by side on one converged host (interleaved A/B).

  python3 tools/sandbox.py up --standin          # a converged host (ogd-sandbox, Caddy)
  python3 bench/nochange_ab.py --old cc1c329 --new HEAD [--rounds 4]
  python3 bench/nochange_ab.py --old REF --inventory INV --host NAME   # another converged host,
      e.g. the bench's nginx host: python3 bench/run.py --smoke --keep, then its inventory
      (bench/results/smoke/work/inventory.yml) and --host ogdbench-ours-nginx

Each commit's tree is exported (git archive) to a temporary directory; the
two then rerun `site.yml` on the sandbox host in turns (old, new, new, old,
...), so machine noise hits both alike. Per commit: the module runs on the
host (`EXEC` lines of one -vvv run), the tasks that ran (not skipped), the
median wall time and CPU (the controller's, the host container's) and the
ratios new/old: on a busy machine the CPU is the steadier of the two. A run
that changes anything or fails stops the measurement: a no-change run is
what is measured. Prints a table and writes bench/results/nochange_ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from measure import container_cpu_files, containers_cpu  # noqa: E402  (bench/: the bench's cgroup reading)
from ogd.common import cache_dir, run_captured  # noqa: E402

HOST = "ogd-sandbox"


class ABError(Exception):
    pass


def recap(stdout: str) -> dict[str, int]:
    """The PLAY RECAP counters of the host."""
    match = re.search(r"^%s\s*:\s*(.*)$" % re.escape(HOST), stdout, re.M)
    if not match:
        raise ABError("no PLAY RECAP line for %s" % HOST)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def module_runs(verbose_stdout: str) -> int:
    """Commands sent to the host (one per module run, more for action plugins that copy files)."""
    return len(re.findall(r"^<%s> EXEC " % re.escape(HOST), verbose_stdout, re.M))


def export(ref: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cpu_seconds(files: list[Path] | None) -> tuple[float, float | None]:
    """(controller CPU of every child process so far, the host container's CPU so far: None where unreadable)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, containers_cpu(files)


INVENTORY: Path | None = None  # --inventory: another converged host than the sandbox


def playbook(tree: Path, *extra: str) -> tuple[float, str, float, float | None]:
    """One no-change run of site.yml from `tree`: (seconds, output, the CPU seconds of the
    controller (ansible-playbook and its workers) and of the host container (None where unreadable))."""
    if INVENTORY is not None:
        cmd = ["ansible-playbook", "site.yml", "-i", str(INVENTORY), "--limit", HOST, *extra]
    else:
        state = cache_dir() / "sandbox"
        tarball = next(state.glob("opengramsh-opengram-*.tgz"), None)
        if tarball is None or not (state / "access.yml").exists():
            raise ABError("no sandbox: run python3 tools/sandbox.py up --standin first")
        cmd = ["ansible-playbook", "site.yml", "-i", "inventories/sandbox/hosts.yml",
               "-e", json.dumps({"opengram_npm_tarball": str(tarball), "opengram_npm_locks_dir": str(state / "locks")}), "-e", "@%s" % (state / "access.yml"), *extra]
    files = container_cpu_files([HOST])
    start = time.monotonic()
    controller0, host0 = cpu_seconds(files)
    env = dict(os.environ, MOLECULE_PROJECT_DIRECTORY=str(tree))
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False, env=env)
    seconds = time.monotonic() - start
    controller1, host1 = cpu_seconds(files)
    counters = recap(proc.stdout) if proc.returncode == 0 else {}
    if proc.returncode != 0 or counters.get("changed") or counters.get("failed"):
        raise ABError("not a no-change run in %s (exit %d, %s):\n%s" % (tree, proc.returncode, counters,
                                                                        proc.stdout[-3000:]))
    return seconds, proc.stdout, controller1 - controller0, None if None in (host0, host1) else host1 - host0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git ref of the commit before")
    parser.add_argument("--new", default="HEAD", help="git ref of the commit after (default HEAD)")
    parser.add_argument("--rounds", type=int, default=4, help="timed runs per commit (default 4)")
    parser.add_argument("--inventory", type=Path, help="an inventory with another converged host (default: the sandbox)")
    parser.add_argument("--host", default="ogd-sandbox", help="the host (its container's name) with --inventory")
    args = parser.parse_args()
    global INVENTORY, HOST
    INVENTORY, HOST = (args.inventory.resolve() if args.inventory else None), args.host
    refs = {"old": args.old, "new": args.new}
    shas = {name: run_captured(["git", "-C", str(ROOT), "rev-parse", "--short", ref], error=ABError).stdout.strip()
            for name, ref in refs.items()}
    with tempfile.TemporaryDirectory(prefix="ogd-nochange-ab-") as tmp:
        trees = {name: export(ref, Path(tmp) / name) for name, ref in refs.items()}
        result = {}
        for name, tree in trees.items():
            _, verbose, _, _ = playbook(tree, "-vvv")
            counters = recap(verbose)
            result[name] = {"ref": refs[name], "commit": shas[name], "module_runs": module_runs(verbose),
                            "tasks_run": counters["ok"] + counters.get("changed", 0), "seconds": [],
                            "controller_cpu_seconds": [], "host_cpu_seconds": []}
        order = ["old", "new"]
        for round_ in range(args.rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                seconds, _, controller_cpu, host_cpu = playbook(trees[name])
                result[name]["seconds"].append(round(seconds, 2))
                result[name]["controller_cpu_seconds"].append(round(controller_cpu, 2))
                if host_cpu is not None:
                    result[name]["host_cpu_seconds"].append(round(host_cpu, 2))
                print("round %d %s %.1f s (CPU: controller %.1f s, host %s s)" % (
                    round_ + 1, name, seconds, controller_cpu, "-" if host_cpu is None else "%.1f" % host_cpu),
                      flush=True)
    for entry in result.values():
        for key in ("seconds", "controller_cpu_seconds", "host_cpu_seconds"):
            entry["median_" + key] = round(statistics.median(entry[key]), 2) if entry[key] else None
    ratio = result["new"]["median_seconds"] / result["old"]["median_seconds"]
    load = Path("/proc/loadavg").read_text().split()[0]
    print("\n| commit | module runs on the host | tasks run | no-change run, median s | CPU, controller / host, "
          "median s | runs (s) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in ("old", "new"):
        entry = result[name]
        host = entry["median_host_cpu_seconds"]
        print("| %s (%s) | %d | %d | %.1f | %.1f / %s | %s |" % (
            entry["commit"], name, entry["module_runs"], entry["tasks_run"], entry["median_seconds"],
            entry["median_controller_cpu_seconds"], "-" if host is None else "%.1f" % host,
            ", ".join(map(str, entry["seconds"]))))
    ratios = {"wall": round(ratio, 3)}
    print("\nnew/old wall time: %.2fx (load average at the end: %s)" % (ratio, load))
    old_cpu = [result["old"]["median_controller_cpu_seconds"], result["old"]["median_host_cpu_seconds"]]
    new_cpu = [result["new"]["median_controller_cpu_seconds"], result["new"]["median_host_cpu_seconds"]]
    if None not in old_cpu + new_cpu:
        ratios["cpu"] = round(sum(new_cpu) / sum(old_cpu), 3)
        print("new/old CPU (controller + host): %.2fx" % ratios["cpu"])
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nochange_ab.json").write_text(json.dumps({"runs": result, "ratio": ratios["wall"], "ratios": ratios,
                                                      "load": load}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ABError as exc:
        print("nochange_ab: %s" % exc, file=sys.stderr)
        sys.exit(1)
