#!/usr/bin/env python3
"""Debian's Caddy and upstream Caddy side by side, in one run (issue 27 item 7).

  python3 bench/caddy_sources.py                 # the real release (../shared/opengram/...0.2.1.tgz)
  python3 bench/caddy_sources.py --rounds 3      # fewer rounds
  python3 bench/caddy_sources.py --standin       # the offline stand-in (a harness check, minutes)
  python3 bench/run.py --cleanup                 # after --keep

One site.yml run deploys Opengram on three hosts of one inventory that differ
only where the comparison needs it: ogdbench-caddy-dist (opengram_proxy: caddy,
opengram_caddy_source: distribution, Debian's caddy package),
ogdbench-caddy-upstream (the same with opengram_caddy_source: upstream: Caddy's
own repository in Cloudsmith's layout, served by ogdbench-vendor as
vendor.opengram.test with a test CA, molecule/shared/vendor_repo.yml) and
ogdbench-ours-nginx (our nginx). Pebble is the ACME CA, as in bench/run.py.

The client container reads, with wrk at 8 keep-alive connections, the health
path and the authenticated chat list (20 chats) through: direct (HTTP to the
app on the distribution Caddy host), Debian's Caddy, upstream Caddy, our nginx,
and, as a control, direct to the app on the upstream Caddy host (the verdict is
about that host's proxy, so its app must answer like the other). Paths are
measured interleaved (round-robin, the start rotating every round), several
rounds; CPU time per request of wrk, proxy and Node is read around each run.

Reports requests/s (median of the rounds), the ratio to direct (of the
medians, and per round), upstream Caddy against Debian's, and whether upstream
Caddy reaches 75 % of direct on each path: a ratio, never a timing threshold
(the exit status does not depend on it). Writes docs/bench/caddy_sources/results.json
(--out DIR for elsewhere). The containers are removed at the end (--keep leaves them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import topology  # noqa: E402  (first: puts the repository on sys.path)
from measure import (AUTHENTICATED, ENDPOINTS, FULL, PROFILE_CONNS, add_release_args, bench_env,  # noqa: E402
                     bench_session, choose_release, container_procs,
                     cpu_per_request, cpu_snapshot, median, noise, playbook, seed_chats, summarize_cpu, summarize_throughput, wrk)
from report import git_state, machine_info  # noqa: E402
from topology import (APP_PORT, BENCH_IMAGE, BENCH_SECRET, CLIENT, DOMAIN, PEBBLE, PROXY_HOSTS, ROOT,  # noqa: E402
                      BenchError, BenchPath, Host, cname, create_containers, dexec,
                      ensure_bench_image, ensure_network, prepare_client, say,
                      write_inventory)

DEFAULT_PACKAGE = ROOT.parent / "shared/opengram/opengramsh-opengram-0.2.1.tgz"
DEFAULT_OUT = ROOT / "docs/bench/caddy_sources"
AIM = 0.75  # issue 15: our Caddy >= 75 % of direct (8 connections, real app)
CONNS = PROFILE_CONNS  # 8: the connections of the aim, and where CPU per request is read

VENDOR_HOST = "vendor.opengram.test"  # the network alias molecule/shared/vendor_repo.yml expects
VENDOR = Host(cname("vendor"), VENDOR_HOST, "vendor", BENCH_IMAGE)
CADDY_DIST = Host(cname("caddy-dist"), f"caddy-dist.{DOMAIN}", "ours-caddy", BENCH_IMAGE)
CADDY_UPSTREAM = Host(cname("caddy-upstream"), f"caddy-upstream.{DOMAIN}", "ours-caddy", BENCH_IMAGE)
NGINX = PROXY_HOSTS[1]  # ogdbench-ours-nginx
APP_HOSTS = (CADDY_DIST, CADDY_UPSTREAM, NGINX)
HOSTS = (PEBBLE, CLIENT, VENDOR, *APP_HOSTS)

# Every app host gets the same variables (Caddy's repository at the vendor
# host); only opengram_caddy_source differs between the two Caddy hosts.
OPENGRAM_VARS = {
    "opengram_caddy_repository_url": f"https://{VENDOR_HOST}/caddy/stable/deb/debian",
    "opengram_caddy_repository_key_url": f"https://{VENDOR_HOST}/caddy/stable/gpg.key",
}
HOST_VARS = {CADDY_DIST.name: {"opengram_caddy_source": "distribution"},
             CADDY_UPSTREAM.name: {"opengram_caddy_source": "upstream"}}

DIRECT = "direct"
DIST = "caddy-distribution"
UPSTREAM = "caddy-upstream"
CONTROL = "direct-upstream-host"


def paths() -> list[BenchPath]:
    return [
        BenchPath(DIRECT, "direct to Opengram (HTTP :3000, the distribution Caddy host's app)",
                  f"http://{CADDY_DIST.name}:{APP_PORT}", CADDY_DIST.name, "direct"),
        BenchPath(DIST, "Debian's Caddy (opengram_caddy_source: distribution)",
                  f"https://{CADDY_DIST.domain}", CADDY_DIST.name, "ours"),
        BenchPath(UPSTREAM, "upstream Caddy (opengram_caddy_source: upstream)",
                  f"https://{CADDY_UPSTREAM.domain}", CADDY_UPSTREAM.name, "ours"),
        BenchPath("nginx", "our nginx (roles/nginx)", f"https://{NGINX.domain}", NGINX.name, "ours"),
        BenchPath(CONTROL, "control: direct to the upstream Caddy host's app (HTTP :3000)",
                  f"http://{CADDY_UPSTREAM.name}:{APP_PORT}", CADDY_UPSTREAM.name, "control"),
    ]


# ---------------------------------------------------------------------------
# pure parts (bench/tests/test_caddy_sources.py)
# ---------------------------------------------------------------------------


def rotated(items: list, rnd: int) -> list:
    """Round rnd's order: the list started at rnd (mod its length)."""
    k = rnd % len(items) if items else 0
    return items[k:] + items[:k]


def caddy_release(text: str) -> str | None:
    """The release in `caddy version`'s output ("v2.11.7 h1:..." upstream,
    "2.6.2" in Debian's build): "2.11.7", or None."""
    m = re.search(r"\bv?(\d+\.\d+\.\d+)\b", text or "")
    return m.group(1) if m else None


def per_round_ratios(runs: list[dict], base_runs: list[dict]) -> list[float]:
    """rps / the base's rps of the same round, for the rounds both have."""
    base = {r["round"]: r["rps"] for r in base_runs if r.get("rps")}
    return [r["rps"] / base[r["round"]] for r in sorted(runs, key=lambda r: r["round"])
            if r["round"] in base and r.get("rps") is not None]


def ratio_summary(runs: list[dict], base_runs: list[dict]) -> dict:
    """The ratio of the medians (as bench/run.py reports it) and the per-round ratios."""
    mine, base = median([r["rps"] for r in runs]), median([r["rps"] for r in base_runs])
    rounds = per_round_ratios(runs, base_runs)
    return {"ratio": mine / base if mine is not None and base else None,
            "per_round": rounds, "per_round_median": median(rounds),
            "per_round_min": min(rounds) if rounds else None,
            "per_round_max": max(rounds) if rounds else None}


# A second reading: upstream Caddy over the app it proxies to (the same Node
# process, read directly: the control path). The verdict stays on direct.
OWN_DIRECT = {UPSTREAM: CONTROL}


def summarize(runs: dict[str, dict[str, list[dict]]], direct: str = DIRECT,
              dist: str = DIST) -> dict:
    """{endpoint: {path: [wrk results with "round"]}} -> per endpoint and path:
    the medians (summarize_throughput), to_direct, for the other Caddy paths
    to_distribution_caddy, and where OWN_DIRECT names one, to_own_host_direct
    (ratio_summary)."""
    out: dict = {}
    for e, by_path in runs.items():
        out[e] = {}
        for name, rs in by_path.items():
            s = summarize_throughput(rs)
            s["to_direct"] = ratio_summary(rs, by_path.get(direct, []))
            if name != dist and name.startswith("caddy-"):
                s["to_distribution_caddy"] = ratio_summary(rs, by_path.get(dist, []))
            if name in OWN_DIRECT:
                s["to_own_host_direct"] = ratio_summary(rs, by_path.get(OWN_DIRECT[name], []))
            out[e][name] = s
    return out


def verdict(summary: dict, path: str = UPSTREAM, aim: float = AIM) -> dict:
    """Whether path reaches aim x direct's requests/s on each endpoint (the
    ratio of the medians), and in how many rounds its own ratio did."""
    out = {"path": path, "aim": aim, "connections": CONNS}
    for e, by_path in summary.items():
        r = by_path.get(path, {}).get("to_direct", {})
        rounds = r.get("per_round") or []
        ratio = r.get("ratio")
        own = by_path.get(path, {}).get("to_own_host_direct", {}).get("ratio")
        out[e] = {"ratio": ratio, "reaches": None if ratio is None else ratio >= aim,
                  "rounds_reaching": sum(x >= aim for x in rounds), "rounds": len(rounds),
                  "ratio_to_own_host_direct": own}
    return out


def problems(summary: dict, rounds: int) -> list[str]:
    """Missing samples or wrk errors (not timings)."""
    out = []
    for e, by_path in summary.items():
        for name, s in by_path.items():
            n = len(s.get("rounds", []))
            if n != rounds:
                out.append(f"{e} through {name}: {n} of {rounds} rounds measured")
            if s.get("errors"):
                out.append(f"{e} through {name}: {s['errors']} wrk errors")
    return out


ENDPOINT_LABEL = {"health": "health", "chats": "chat list"}


def markdown_table(results: dict) -> str:
    """The docs/benchmarks.md table: requests/s per path, share of direct."""
    thr, v, ver = results["throughput"], results["verdict"], results.get("versions", {})
    eps = [e for e in ENDPOINTS if e in thr]
    dist_v = caddy_release(ver.get(CADDY_DIST.name, {}).get("caddy", "")) or "?"
    up_v = caddy_release(ver.get(CADDY_UPSTREAM.name, {}).get("caddy", "")) or "?"
    labels = [(DIRECT, "direct (HTTP to Opengram), requests/s"),
              (DIST, f"Debian's Caddy {dist_v} (`distribution`)"),
              (UPSTREAM, f"upstream Caddy {up_v} (`upstream`)"),
              ("nginx", "our nginx"),
              (CONTROL, "control: direct to the upstream Caddy host's app")]
    head = f"| at {CONNS} connections, keep-alive | " + " | ".join(ENDPOINT_LABEL[e] for e in eps) + " |"
    lines = [head, "| --- |" + " ---: |" * len(eps)]

    def cell(e: str, name: str) -> str:
        s = thr[e].get(name)
        if not s or s.get("rps") is None:
            return "-"
        if name == DIRECT:
            return f"{s['rps']:.0f}"
        text = f"{s['rps']:.0f}: {s['to_direct']['ratio']:.0%}"
        vs = s.get("to_distribution_caddy", {}).get("ratio")
        return text + (f", {vs:.2f}x Debian's" if vs is not None else "")

    for name, label in labels:
        lines.append(f"| {label} | " + " | ".join(cell(e, name) for e in eps) + " |")
    verdicts = []
    for e in eps:
        x = v[e]
        word = "-" if x["reaches"] is None else ("reached" if x["reaches"] else "missed")
        own = x.get("ratio_to_own_host_direct")
        verdicts.append(f"{x['ratio']:.0%}: {word} ({x['rounds_reaching']} of {x['rounds']} rounds)"
                        + (f"; {own:.0%} of its own host's direct" if own is not None else "")
                        if x["ratio"] is not None else "-")
    lines.append(f"| upstream Caddy >= {AIM:.0%} of direct | " + " | ".join(verdicts) + " |")
    return "\n".join(lines).replace("%", " %")


# ---------------------------------------------------------------------------
# setup and measurement
# ---------------------------------------------------------------------------


def setup(env: dict, work: Path) -> list:
    say(f"bench image {BENCH_IMAGE}: {ensure_bench_image()}")
    ensure_network()
    create_containers(list(HOSTS))
    say(f"containers up: {', '.join(h.name for h in HOSTS)}")
    inv = write_inventory(work, list(HOSTS), HOST_VARS, name="inventory-caddy-sources.yml",
                          opengram_vars=OPENGRAM_VARS)
    runs = [playbook("vendor-repo", "molecule/shared/vendor_repo.yml", inv, env, work),
            playbook("prepare", "molecule/shared/prepare.yml", inv, env, work),
            playbook("deploy-app-hosts", "site.yml", inv, env, work, limit=[h.name for h in APP_HOSTS])]
    prepare_client()
    return runs


def running_exe(container: str, comm: str) -> str | None:
    """The executable of the container's process comm, read from this machine's
    /proc (same kernel; inside the container, without CAP_SYS_PTRACE, root
    cannot read the exe link of the caddy user's process)."""
    for pid, name in container_procs(container).items():
        if name == comm:
            try:
                return os.readlink(f"/proc/{pid}/exe")
            except OSError as exc:
                return f"unreadable: {exc}"
    return None


def host_versions() -> dict:
    """What runs on each host: caddy version (of the binary the running process
    started from), the caddy package and where it came from, nginx, node, wrk."""
    out: dict = {}
    for h in (CADDY_DIST, CADDY_UPSTREAM):
        def sh(cmd: str) -> str:
            p = dexec(h.name, "sh", "-c", cmd, check=False)
            return (p.stdout or p.stderr).strip()
        out[h.name] = {
            "caddy": sh("caddy version"),
            "package": sh("dpkg-query -W -f '${Version}' caddy"),
            "origin": sh("apt-cache policy caddy | sed -n '/\\*\\*\\*/{n;p}'"),
            # "(deleted)" would mean the running Caddy is the binary from before a package switch
            "running_exe": running_exe(h.name, "caddy"),
            "node": sh("node --version"),
        }
    out[NGINX.name] = {"nginx": (dexec(NGINX.name, "sh", "-c", "nginx -v 2>&1", check=False).stdout or "").strip(),
                       "node": dexec(NGINX.name, "node", "--version", check=False).stdout.strip()}
    out[CLIENT.name] = {"wrk": dexec(CLIENT.name, "sh", "-c", "wrk -v 2>&1 | head -1", check=False).stdout.strip()}
    return out


def check_versions(ver: dict) -> None:
    """The comparison means nothing unless the two hosts run different Caddys."""
    dist = caddy_release(ver[CADDY_DIST.name]["caddy"])
    up = caddy_release(ver[CADDY_UPSTREAM.name]["caddy"])
    for h in (CADDY_DIST, CADDY_UPSTREAM):
        exe = ver[h.name]["running_exe"] or ""
        if not exe.startswith("/") or "deleted" in exe:
            raise BenchError(f"{h.name}: the running caddy is not the installed binary ({exe!r})")
    if not dist or not up or dist == up:
        raise BenchError(f"the two Caddy hosts do not run different releases: {dist} / {up}")


def measure_paths(ps: list[BenchPath], rounds: int, seconds: float, warmup: float) -> tuple[dict, dict, dict]:
    runs = {e: {p.name: [] for p in ps} for e in ENDPOINTS}
    cpu = {e: {p.name: [] for p in ps} for e in ENDPOINTS}
    seeded = seed_chats(FULL, ps)  # FULL.seed_chats (20) chats on every app host
    say(f"warm-up: {warmup:.0f} s of wrk -c{CONNS} per path and endpoint")
    for p in ps:
        for e in ENDPOINTS:
            r = wrk(p, CONNS, warmup, e, BENCH_SECRET if e in AUTHENTICATED else None)
            if r["errors"] or not r["requests"]:
                raise BenchError(f"warm-up through {p.name} ({p.url}{ENDPOINTS[e]}): {r['requests']} "
                                 f"requests, errors {r['error_detail']}")
    for rnd in range(rounds):
        order = rotated(ps, rnd)
        say(f"round {rnd + 1}/{rounds}: order {', '.join(p.name for p in order)}")
        for e in ENDPOINTS:
            for p in order:
                profiled = [CLIENT.name, p.host]
                before = cpu_snapshot(profiled)
                r = wrk(p, CONNS, seconds, e, BENCH_SECRET if e in AUTHENTICATED else None)
                cpu[e][p.name].append(cpu_per_request(before, cpu_snapshot(profiled), r))
                r["round"] = rnd
                runs[e][p.name].append(r)
            say(f"  wrk {e} -c{CONNS}: " + ", ".join(
                f"{name} {rs[-1]['rps']:.0f}/s" for name, rs in runs[e].items()))
    return runs, {e: {n: summarize_cpu(s) for n, s in by.items()} for e, by in cpu.items()}, seeded


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/caddy_sources.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_release_args(ap, DEFAULT_PACKAGE)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=6, help="seconds of each wrk run")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--keep", action="store_true", help="leave the ogdbench-* containers running")
    args = ap.parse_args(argv)
    if not choose_release(args):
        return 1
    started = dt.datetime.now(dt.timezone.utc)
    prepared = bench_env("bench")
    if prepared is None:
        return 1
    env, work = prepared
    ps = paths()
    results: dict = {"schema": 1, "what": "issue 27 item 7: Debian's Caddy and upstream Caddy side by side",
                     "started": started.isoformat(timespec="seconds"),
                     "settings": {"rounds": args.rounds, "wrk_seconds": args.seconds,
                                  "warmup_seconds": args.warmup, "connections": CONNS,
                                  "seed_chats": FULL.seed_chats, "endpoints": ENDPOINTS, "aim": AIM},
                     "machine": machine_info(), "tree": git_state(), "package": topology.PACKAGE,
                     "hosts": {h.name: {"domain": h.domain, "role": h.role, **HOST_VARS.get(h.name, {})}
                               for h in HOSTS},
                     "opengram_vars": OPENGRAM_VARS, "paths": [asdict(p) for p in ps]}
    timings: dict[str, float] = {}
    with bench_session("bench", args.keep) as session:
        t = time.monotonic()
        setup_runs = setup(env, work)
        timings["setup"] = time.monotonic() - t
        results["setup_runs"] = {r.name: {"seconds": r.seconds, "changed": r.changed} for r in setup_runs}
        results["versions"] = host_versions()
        say("versions: " + json.dumps(results["versions"]))
        check_versions(results["versions"])
        t = time.monotonic()
        runs, cpu, seeded = measure_paths(ps, args.rounds, args.seconds, args.warmup)
        timings["measure"] = time.monotonic() - t
        results["seeded"] = seeded
        results["throughput"] = summarize(runs)
        results["cpu_per_request"] = cpu
        results["verdict"] = verdict(results["throughput"])
    results["noise"] = noise(session)
    if "cleanup_s" in session:
        timings["cleanup"] = session["cleanup_s"]
    if session["rc"]:
        return session["rc"]
    results["duration_s"] = time.monotonic() - topology.T0
    results["timings_s"] = timings
    results["problems"] = problems(results["throughput"], args.rounds)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown_table(results))
    loads = [s["load1"] for s in results["noise"]["load_samples"] if s["load1"] is not None]
    print(f"\nwall time {results['duration_s']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"); load average (1 min) median {median(loads) or 0:.1f}; other containers "
          f"{results['noise']['other_containers_at_start']} at start, {results['noise']['other_containers_at_end']} at end")
    for name in (CADDY_DIST.name, CADDY_UPSTREAM.name):
        print(f"{name}: caddy {results['versions'][name]['caddy']} (package {results['versions'][name]['package']})")
    print(f"results: {out / 'results.json'}")
    if results["problems"]:
        print("bench: the harness did not measure everything:\n  " + "\n  ".join(results["problems"]),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
