#!/usr/bin/env python3
"""What the password gate costs the proxy, side by side in one run (issue 28 item 3).

  python3 bench/login_cost.py                  # the real release (../shared/opengram/...0.2.1.tgz)
  python3 bench/login_cost.py --rounds 2       # fewer rounds
  python3 bench/login_cost.py --standin        # the offline stand-in (a harness check)

One site.yml run deploys Opengram behind our Caddy (ogdbench-ours-caddy) and
our nginx (ogdbench-ours-nginx), with the password gate and Pebble as the ACME
CA, the login ban off (the bench's client fails logins on purpose) and, for
the first half, nginx's limit on password checks opened wide. The client
container then loads the web app as a browser without a cache does (the page
with browser headers, then every file it names; bench/client.py pageload):

  session    one browser keeping its cookies: the first page load logs in,
             nginx's login session carries the rest (the new behaviour);
  nosession  the same browser never sending a cookie: every request carries
             only the password, which is what every browser cost nginx before
             the login sessions (and what Caddy does with any browser);
  wrong      GET / with a wrong password.

Modes and proxies are measured interleaved (the order rotating every round);
the CPU time of the proxy and of Node is read from /proc around each batch.
The second half runs site.yml again on the nginx host with the role's
default limit on password checks and sends the wrong passwords once more:
how many nginx refused before any check (429) and what each cost.
Reports CPU milliseconds per page load and per wrong-password request, and
the ratios; never a timing threshold. Writes docs/bench/login_cost/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import topology  # noqa: E402  (first: puts the repository on sys.path)
from measure import (CLK_TCK, add_release_args, bench_env, bench_session, choose_release, client_json,  # noqa: E402
                     cpu_snapshot, noise, playbook)
from report import git_state, machine_info  # noqa: E402
from topology import (BENCH_LOGIN, BENCH_IMAGE, CLIENT, PEBBLE, PEBBLE_ROOT, PROXY_HOSTS, ROOT,  # noqa: E402
                      BenchError, create_containers, ensure_bench_image, ensure_network, prepare_client,
                      say, write_inventory)

DEFAULT_PACKAGE = ROOT.parent / "shared/opengram/opengramsh-opengram-0.2.1.tgz"
DEFAULT_OUT = ROOT / "docs/bench/login_cost"
CADDY, NGINX = PROXY_HOSTS[0], PROXY_HOSTS[1]
HOSTS = (PEBBLE, CLIENT, CADDY, NGINX)
PROXY = {CADDY.name: "caddy", NGINX.name: "nginx"}
MODES = ("session", "nosession", "wrong")
# The bench's client fails logins on purpose: no ban. The first half also
# opens nginx's limit on password checks, so the no-session browser (one
# check per request) is measured, not refused.
OPENGRAM_VARS = {"opengram_login_ban": False}
WIDE_OPEN = {"nginx_login_check_rate": "100r/s", "nginx_login_check_burst": 1000}


# ---------------------------------------------------------------------------
# pure parts (bench/tests/test_login_cost.py)
# ---------------------------------------------------------------------------


def cpu_seconds(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds of each profiled process kind between two cpu_snapshot()s."""
    out: dict[str, float] = {}
    for pid, (comm, ticks) in after["procs"].items():
        if pid in before["procs"]:
            out[comm] = out.get(comm, 0.0) + (ticks - before["procs"][pid][1]) / CLK_TCK
    return out


def summarize(samples: list[dict]) -> dict:
    """Samples of one proxy and mode ({loads, requests, statuses, proxy_s, node_s, ...})
    -> totals and CPU milliseconds per page load (per request for wrong)."""
    loads = sum(s["loads"] for s in samples)
    requests = sum(s["requests"] for s in samples)
    proxy = sum(s["proxy_s"] for s in samples)
    node = sum(s["node_s"] for s in samples)
    statuses: dict[str, int] = {}
    for s in samples:
        for k, v in s["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {"rounds": len(samples), "loads": loads, "requests": requests, "statuses": statuses,
            "proxy_cpu_s": proxy, "node_cpu_s": node,
            "proxy_ms_per_load": 1000 * proxy / loads if loads else None,
            "node_ms_per_load": 1000 * node / loads if loads else None,
            "proxy_ms_per_request": 1000 * proxy / requests if requests else None,
            "requests_per_load": requests / loads if loads else None,
            "bytes_per_load": sum(s["bytes_on_wire"] for s in samples) / loads if loads else None,
            "per_round_proxy_ms_per_load": [1000 * s["proxy_s"] / s["loads"] for s in samples if s["loads"]]}


def ratios(summary: dict) -> dict:
    """Per proxy: a logged-in browser's proxy CPU per page load over the same
    browser without a session (nginx: after over before)."""
    out = {}
    for proxy, modes in summary.items():
        s, n = modes.get("session", {}), modes.get("nosession", {})
        out[proxy] = {"session_over_nosession": (s["proxy_cpu_s"] / n["proxy_cpu_s"])
                      if s and n and n["proxy_cpu_s"] else None}
    return out


def problems(summary: dict, rounds: int) -> list[str]:
    """What did not answer as it must (the harness, not timings)."""
    out = []
    for proxy, modes in summary.items():
        for mode, s in modes.items():
            if s["rounds"] != rounds:
                out.append(f"{proxy} {mode}: {s['rounds']} of {rounds} rounds measured")
            good = {"wrong": {"401"}}.get(mode, {"200"})
            if set(s["statuses"]) - good:
                out.append(f"{proxy} {mode}: answers {s['statuses']} (expected only {sorted(good)})")
    return out


def markdown_table(results: dict) -> str:
    rows = ["| proxy CPU, ms | Caddy | nginx |", "| --- | ---: | ---: |"]
    summ = results["summary"]

    def cell(proxy: str, mode: str, key: str) -> str:
        v = summ.get(proxy, {}).get(mode, {}).get(key)
        return "-" if v is None else f"{v:.1f}"

    rows.append("| per page load, browser with its login session | "
                + " | ".join(cell(p, "session", "proxy_ms_per_load") for p in ("caddy", "nginx")) + " |")
    rows.append("| per page load, browser without a session (nginx before) | "
                + " | ".join(cell(p, "nosession", "proxy_ms_per_load") for p in ("caddy", "nginx")) + " |")
    rows.append("| per request with a wrong password (checked) | "
                + " | ".join(cell(p, "wrong", "proxy_ms_per_request") for p in ("caddy", "nginx")) + " |")
    lim = results.get("limited", {})
    if lim:
        rows.append(f"| per request with a wrong password, nginx's default limit ({lim['statuses']}) | - | "
                    f"{lim['proxy_ms_per_request']:.1f} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------


def batch(host: str, mode: str, count: int) -> dict:
    url = f"https://{next(h.domain for h in HOSTS if h.name == host)}"
    before = cpu_snapshot([host])
    r = client_json("pageload", "--url", url, "--ca", PEBBLE_ROOT, "--user", BENCH_LOGIN["name"],
                    "--password", BENCH_LOGIN["password"], "--count", str(count), "--mode", mode)
    cpu = cpu_seconds(before, cpu_snapshot([host]))
    r["loads"] = count if mode != "wrong" else 0
    r["proxy_s"] = cpu.get(PROXY[host], 0.0)
    r["node_s"] = cpu.get("node", 0.0)
    return r


def measure(rounds: int, loads: int, wrong: int) -> dict:
    samples: dict = {PROXY[h.name]: {m: [] for m in MODES} for h in (CADDY, NGINX)}
    jobs = [(h.name, m) for h in (CADDY, NGINX) for m in MODES]
    for host, mode in jobs:  # warm-up: the first loads fill caches, Caddy's included
        batch(host, mode, 2)
    for rnd in range(rounds):
        k = rnd % len(jobs)
        for host, mode in jobs[k:] + jobs[:k]:
            r = batch(host, mode, wrong if mode == "wrong" else loads)
            r["round"] = rnd
            samples[PROXY[host]][mode].append(r)
        say(f"round {rnd + 1}/{rounds}: " + ", ".join(
            f"{p} {m} {s[-1]['proxy_s'] * 1000 / max(s[-1]['loads'] or s[-1]['requests'], 1):.1f} ms"
            for p, ms in samples.items() for m, s in ms.items()))
    return samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/login_cost.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_release_args(ap, DEFAULT_PACKAGE)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loads", type=int, default=20, help="page loads per batch")
    ap.add_argument("--wrong", type=int, default=30, help="wrong-password requests per batch")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--keep", action="store_true", help="leave the ogdbench-* containers running")
    args = ap.parse_args(argv)
    if not choose_release(args):
        return 1
    prepared = bench_env("bench")
    if prepared is None:
        return 1
    env, work = prepared
    results: dict = {"schema": 1, "what": "issue 28 item 3: the password gate's CPU cost, Caddy and nginx",
                     "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "settings": {"rounds": args.rounds, "loads": args.loads, "wrong": args.wrong,
                                  "opengram_vars": OPENGRAM_VARS, "first_half": WIDE_OPEN},
                     "machine": machine_info(), "tree": git_state(), "package": topology.PACKAGE}
    with bench_session("bench", args.keep) as session:
        say(f"bench image {BENCH_IMAGE}: {ensure_bench_image()}")
        ensure_network()
        create_containers(list(HOSTS))
        inv = write_inventory(work, list(HOSTS), name="inventory-login-cost.yml", opengram_vars=OPENGRAM_VARS)
        runs = [playbook("prepare", "molecule/shared/prepare.yml", inv, env, work),
                playbook("deploy", "site.yml", inv, env, work, limit=[CADDY.name, NGINX.name], extra=WIDE_OPEN)]
        prepare_client()
        samples = measure(args.rounds, args.loads, args.wrong)
        runs.append(playbook("nginx-default-limit", "site.yml", inv, env, work, limit=[NGINX.name]))
        limited = [batch(NGINX.name, "wrong", args.wrong)]
        results["setup_runs"] = {r.name: {"seconds": r.seconds, "changed": r.changed} for r in runs}
        results["samples"] = samples
        results["summary"] = {p: {m: summarize(s) for m, s in ms.items()} for p, ms in samples.items()}
        results["ratios"] = ratios(results["summary"])
        results["limited"] = summarize(limited)
        results["files_per_page"] = samples["nginx"]["session"][0]["files"]
    results["noise"] = noise(session)
    if session["rc"]:
        return session["rc"]
    results["problems"] = problems(results["summary"], args.rounds)
    if "429" not in results["limited"]["statuses"]:
        results["problems"].append(f"nginx's default limit refused none of {args.wrong} wrong passwords: "
                                   f"{results['limited']['statuses']}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown_table(results))
    print("\nratios: " + json.dumps(results["ratios"]))
    print(f"results: {out / 'results.json'}")
    if results["problems"]:
        print("bench: " + "\n  ".join(results["problems"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
