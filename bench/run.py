#!/usr/bin/env python3
"""Benchmarks of opengram-deploy: proxy overhead and deployment cost.

  python3 bench/run.py --smoke     seconds-scale proof that the harness works (CI)
  python3 bench/run.py             the full run: docs/bench/results.json, PNGs, RESULTS.md
  python3 bench/run.py --package opengramsh-opengram-0.2.1.tgz   the same on the real release

From a fresh clone: tools/hostprep.py prepares the machine (docker engine, the
ogd-base:trixie image, the Ansible venv, the collections), then everything
runs in systemd containers named ogdbench-* on the network ogdbench-net,
removed at the end (also on failure or Ctrl-C; --keep leaves them).

Proxy overhead: Opengram (the offline stand-in test fixture, or the real
release with --package) deployed with site.yml behind our Caddy and our nginx, and behind the upstream guide's
configurations put by hand (bench/guide.yml, bench/baseline/); a client
container measures every path interleaved (round-robin over the paths, several
rounds): throughput and latency with wrk at 1, 8 and 32 keep-alive
connections on the health path and on an authenticated chat list (20 chats),
CPU time per request of wrk, proxy and app at 8 connections, TLS handshakes, SSE event delay, a large multipart upload.
The proxy hosts start from a cached image (ogdbench-image:trixie: the base
image with the packages the roles install) so that setup takes seconds, not
minutes; site.yml still does the whole deployment on them.

Deployment cost (full mode): the no-change rerun of one host through docker
exec and over SSH; a cold converge of 1 fresh host from the bare base image
(the install path users hit); and the controller's time per extra host:
no-change runs on 1, 2, 4 and 8 converged hosts (from the cached image), wall
time and CPU time of the controller (ansible-playbook and its children), of
the hosts and of the docker engine, with the ten slowest tasks of each run
(ansible.posix.profile_tasks). In --smoke: only the no-change rerun of 1 host.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import topology  # first: it puts the repository on sys.path for tools.ogd
from configs import install_caddy_variant, install_ceilings, install_nginx_variant
from measure import FULL, SMOKE, PlaybookRun, bench_env, bench_session, deploy_cost, measure_proxies, noise, playbook
from report import (aims, git_state, machine_info, markdown, plot_all, problems, render, tables,
                    update_results_md, versions)
from topology import (BENCH, BENCH_IMAGE, CEILING_PORT, CLIENT, KEEPALIVE_PORT, PEBBLE, PROXY_HOSTS, ROOT,
                      BenchError, BenchPath, Host, bench_paths, cleanup_all, create_containers,
                      ensure_bench_image, ensure_network, prepare_client,
                      say, write_inventory)

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def setup_proxies(env: dict, work: Path) -> tuple[list[Host], list[PlaybookRun], list[BenchPath]]:
    say(f"bench image {BENCH_IMAGE}: checking (a first build takes a few minutes)")
    say(f"bench image {BENCH_IMAGE}: {ensure_bench_image()}")
    hosts = [PEBBLE, CLIENT, *PROXY_HOSTS]
    ensure_network()
    create_containers(hosts)
    say(f"containers up: {', '.join(h.name for h in hosts)}")
    inv = write_inventory(work, hosts)
    runs = [playbook("prepare", "molecule/shared/prepare.yml", inv, env, work),
            playbook("deploy-proxy-hosts", "site.yml", inv, env, work,
                     limit=[h.name for h in PROXY_HOSTS]),
            playbook("guide-baselines", "bench/guide.yml", inv, env, work)]
    variant = install_nginx_variant()
    say(f"variant path {variant.name}: {variant.label} on :{KEEPALIVE_PORT}")
    extra = [variant]
    try:  # an A/B extra: the run goes on without it
        caddy_variant = install_caddy_variant()
        say(f"variant path {caddy_variant.name}: {caddy_variant.label} ({caddy_variant.url})")
        extra.append(caddy_variant)
    except BenchError as exc:
        say(f"the Caddy variant path could not be set up, measuring without it: {exc}")
    ceilings = install_ceilings()
    say(f"ceiling paths on :{CEILING_PORT}: {', '.join(p.name for p in ceilings)}")
    prepare_client()
    return hosts, runs, [*extra, *ceilings]


def packed_release(path: Path) -> dict:
    """{"path", "name", "version"} of an npm pack tarball, read from its package.json."""
    import tarfile
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("package/package.json"))
    return {"path": str(path.resolve()), "name": manifest["name"], "version": str(manifest["version"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny durations, no fleet converges (CI: proves the harness)")
    parser.add_argument("--out", type=Path,
                        help="output directory (default: docs/bench, or bench/results/smoke "
                             "with --smoke)")
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    parser.add_argument("--package", type=Path, metavar="PATH",
                        help="deploy this packed release (npm pack tarball of @opengramsh/opengram) "
                             "instead of the offline stand-in")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="rounds of the proxy measurements (default: 1 with --smoke, else 5)")
    parser.add_argument("--wrk-seconds", type=float, metavar="S",
                        help="seconds of each wrk run (default: 1 with --smoke, else 6)")
    parser.add_argument("--skip-deploy-cost", action="store_true")
    parser.add_argument("--skip-proxy", action="store_true")
    parser.add_argument("--cleanup", action="store_true",
                        help="only remove the ogdbench-* containers and network (after --keep)")
    parser.add_argument("--render", type=Path, metavar="DIR",
                        help="only render DIR/results.json again (tables, plot, RESULTS.md)")
    args = parser.parse_args(argv)
    if args.render:
        return render(args.render.resolve())
    if args.cleanup:
        cleanup_all()
        return 0
    if args.package:
        package = topology.PACKAGE = packed_release(args.package)
        say(f"package: the real {package['name']} {package['version']} from {package['path']}")
    else:
        say("package: the offline stand-in (tests/fixtures/opengram-standin), not the real app")
    settings = SMOKE if args.smoke else FULL
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)
    if args.wrk_seconds:
        settings = replace(settings, wrk_seconds=args.wrk_seconds)
    out_dir = (args.out or (BENCH / "results/smoke" if args.smoke else ROOT / "docs/bench")).resolve()
    started = dt.datetime.now(dt.timezone.utc)
    prepared = bench_env("bench")
    if prepared is None:
        return 1
    env, work = prepared
    results: dict = {"schema": 1, "mode": settings.mode, "started": started.isoformat(timespec="seconds"),
                     "settings": asdict(settings), "machine": machine_info(), "tree": git_state(),
                     "package": topology.PACKAGE}
    timings: dict[str, float] = {}
    with bench_session("bench", args.keep) as session:
        t = time.monotonic()
        hosts, setup_runs, extra_paths = setup_proxies(env, work)
        timings["setup"] = time.monotonic() - t
        results["setup_runs"] = {r.name: {"seconds": r.seconds, "changed": r.changed}
                                 for r in setup_runs}
        results["versions"] = versions({h.role: h.name for h in hosts})
        paths = [*bench_paths(), *extra_paths]
        results["paths"] = [asdict(p) for p in paths]
        if not args.skip_proxy:
            t = time.monotonic()
            results["proxy"] = measure_proxies(settings, paths)
            timings["proxy"] = time.monotonic() - t
        if not args.skip_deploy_cost:
            t = time.monotonic()
            results["deploy"] = deploy_cost(settings, env, work, hosts, args.keep)
            timings["deploy"] = time.monotonic() - t
    results["noise"] = noise(session)
    if "cleanup_s" in session:
        timings["cleanup"] = session["cleanup_s"]
    rc = session["rc"]
    if rc:
        return rc
    results["duration_s"] = time.monotonic() - topology.T0
    results["timings_s"] = timings
    results["aims"] = aims(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    results["problems"] = problems(results)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(tables(results, md=False))
    if results["problems"]:
        print("bench: the harness did not measure everything:\n  "
              + "\n  ".join(results["problems"]), file=sys.stderr)
        rc = 1
    pngs: list[str] = []
    try:
        pngs = plot_all(results, json_path, out_dir)
    except BenchError as exc:
        print(f"bench: the plot failed: {exc}", file=sys.stderr)
        rc = 1
    if settings.mode == "full":
        update_results_md(out_dir / "RESULTS.md", markdown(results, pngs))
    say(f"results: {json_path}" + "".join(f", {out_dir / n}" for n in pngs)
        + (f", {out_dir / 'RESULTS.md'}" if settings.mode == "full" else ""))
    say("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; total {results['duration_s']:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
