#!/usr/bin/env python3
"""Which directive of our Caddyfile costs throughput? (bench only, interleaved A/B)

  python3 bench/run.py --smoke --keep --skip-deploy-cost   # bring the bench hosts up
  python3 bench/caddy_ab.py [--rounds 6] [--seconds 5]     # then this
  python3 bench/run.py --cleanup                            # remove the containers afterwards

On ogdbench-ours-caddy, the site that site.yml rendered (its own file,
imported by the Caddyfile) is reloaded in variants, each with one of our
directives taken out, plus the upstream guide's
bare `reverse_proxy`; wrk runs against each variant, round-robin, several
rounds. The original file (content, owner, mode) is put back at the end.
Prints a table and writes bench/results/caddy_ab.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
import topology  # noqa: E402

HOST = topology.PROXY_HOSTS[0]
CADDYFILE = "/etc/caddy/Caddyfile"
# Our site, imported by the Caddyfile (roles/caddy): the variants are of this file.
SITE = "/etc/caddy/opengram-deploy/site.caddy"


def strip(text: str, pattern: str) -> str:
    out, n = re.subn(pattern, "", text, flags=re.S | re.M)
    if not n:
        raise topology.BenchError(f"pattern not in the Caddyfile: {pattern}")
    return out


def variants(original: str) -> dict[str, str]:
    body_limit = r"^\t@body_too_large .*?^\trequest_body \{.*?^\t\}\n"
    header_up = r"^\t\theader_up [^\n]*\n"
    flush = r"^\t\t(# Server-Sent[^\n]*\n\t\t)?flush_interval -1\n"
    hsts = r"^\theader Strict-Transport-Security [^\n]*\n"
    out = {"as deployed": original}
    for name, pattern in (("without flush_interval -1", flush),
                          ("without the body limit (expression + request_body)", body_limit),
                          ("without header_up", header_up),
                          ("without the HSTS header", hsts)):
        try:
            out[name] = strip(original, pattern)
        except topology.BenchError as exc:
            print(f"skipping '{name}': {exc}", file=sys.stderr)
    bare = original
    for pattern in (body_limit, header_up, flush, hsts):
        try:
            bare = strip(bare, pattern)
        except topology.BenchError:
            pass
    out["none of them (guide-like)"] = bare
    # Added, not taken out: Go's transport asks the app for gzip on its own and
    # unpacks it again for a client that did not ask (UPSTREAM.md).
    upstream = re.search(r"^\treverse_proxy [^\n]*\{\n", original, flags=re.M)
    if upstream:
        out["with transport http { compression off }"] = (
            original[:upstream.end()] + "\t\ttransport http {\n\t\t\tcompression off\n\t\t}\n"
            + original[upstream.end():])
    return out


def bench_secret() -> str | None:
    """The instance secret of the kept hosts (the inventory run.py wrote)."""
    from tools.ogd.common import cache_dir
    try:
        inv = json.loads((cache_dir() / "bench" / "inventory.yml").read_text())
    except (OSError, ValueError):
        return None
    return inv["all"]["children"]["opengram"]["vars"].get("opengram_instance_secret")


def load(text: str) -> None:
    topology.dexec(HOST.name, "sh", "-c", f"cat > {SITE}.ab && sed 's#^import {SITE}$#import {SITE}.ab#' {CADDYFILE}"
              f" > {CADDYFILE}.ab && caddy reload --adapter caddyfile --config {CADDYFILE}.ab", input=text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--conns", default="1,8")
    p.add_argument("--endpoint", choices=sorted(measure.ENDPOINTS), default="health")
    args = p.parse_args()
    if HOST.name not in topology.our_objects("container"):
        print(f"{HOST.name} is not running: python3 bench/run.py --smoke --keep "
              "--skip-deploy-cost first", file=sys.stderr)
        return 1
    original = topology.dexec(HOST.name, "cat", SITE).stdout
    vs = variants(original)
    url = f"https://{HOST.domain}"
    secret = bench_secret() if args.endpoint in measure.AUTHENTICATED else None
    path = topology.BenchPath("ab", "ab", url, HOST.name, "ours")
    conns = [int(c) for c in args.conns.split(",")]
    samples: dict[str, dict[int, list[float]]] = {v: {c: [] for c in conns} for v in vs}
    names = list(vs)
    try:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                load(vs[name])
                measure.wrk(path, 8, 1, args.endpoint, secret)  # settle
                for c in conns:
                    samples[name][c].append(measure.wrk(path, c, args.seconds, args.endpoint, secret)["rps"])
            topology.say(f"round {r + 1}/{args.rounds} done")
    finally:
        topology.dexec(HOST.name, "caddy", "reload", "--adapter", "caddyfile", "--config", CADDYFILE)
        topology.dexec(HOST.name, "rm", "-f", f"{CADDYFILE}.ab", f"{SITE}.ab")
    base = {c: measure.median(samples["as deployed"][c]) for c in conns}
    print(f"\nrequests/s, median of {args.rounds} rounds (ratio to 'as deployed'):")
    for name in names:
        cells = [f"c={c}: {measure.median(samples[name][c]):7.0f} ({measure.median(samples[name][c]) / base[c]:.2f}x)"
                 for c in conns]
        print(f"  {name:52s} " + "  ".join(cells))
    out = Path(__file__).resolve().parent / "results" / "caddy_ab.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": args.rounds, "seconds": args.seconds, "endpoint": args.endpoint,
                               "variants": vs, "rps": samples}, indent=2) + "\n")
    print(f"\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
