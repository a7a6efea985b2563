#!/usr/bin/env python3
"""Measure the Debian package sets of a lean install (issue 15 item 3).

    python3 bench/lean_install.py apt [--rounds N]   package count, bytes, apt time per set
    python3 bench/lean_install.py build SET          npm install of the real release on SET
    python3 bench/lean_install.py clean              remove the index image and leftovers

Every run starts a fresh container of ``ogd-lean-idx:trixie``: ``ogd-base:trixie``
(the bare host) after one ``apt-get update``, so all runs see the same apt index.
The sets run alternately (a, b, c, a, b, c, ...) because the machine is noisy.
Containers and the index image carry the label ``ogd.lean=1``; ``clean`` removes
only those. Results are printed as JSON lines (and appended to the file --out
names). docs/lean-install.md has the results and what they mean.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BASE = "ogd-base:trixie"
IDX = "ogd-lean-idx:trixie"
LABEL = "ogd.lean"
CA = "/etc/ssl/certs/ca-certificates.crt"
TARBALL = Path(__file__).resolve().parents[2] / "shared/opengram/opengramsh-opengram-0.2.1.tgz"
# npm as Node.js 20.19 upstream bundles it (option c only).
NPM_CLI_VERSION = "10.8.2"

COMMON = ["python3", "make", "g++", "curl", "nftables", "sqlite3"]
SETS = {
    # today: roles/opengram (nodejs npm + opengram_build_packages + tools), apt with recommends
    "a": {"packages": ["nodejs", "npm", *COMMON], "recommends": True},
    # the same packages without recommends
    "b": {"packages": ["nodejs", "npm", *COMMON], "recommends": False},
    # without Debian's npm (npm CLI from the registry); libnode-dev for node-gyp's headers
    "c": {"packages": ["nodejs", "libnode-dev", *COMMON], "recommends": False},
    # option c without libnode-dev (node-gyp then needs the headers from nodejs.org)
    "c0": {"packages": ["nodejs", *COMMON], "recommends": False},
}


def sh(args: list[str], check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def dexec(name: str, script: str, check: bool = True, timeout: float = 3600) -> str:
    proc = sh(["docker", "exec", name, "sh", "-c", script], check=False, timeout=timeout)
    if check and proc.returncode:
        raise SystemExit(f"{name}: `{script[:200]}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                         f"\n{proc.stderr[-3000:]}")
    return proc.stdout


def ensure_index_image() -> None:
    if sh(["docker", "image", "inspect", IDX], check=False).returncode == 0:
        return
    name = "ogd-lean-idx-build"
    sh(["docker", "rm", "-f", name], check=False)
    sh(["docker", "run", "--name", name, "--label", f"{LABEL}=1", BASE, "sh", "-c", "apt-get update -q"])
    sh(["docker", "commit", "--change", f"LABEL {LABEL}=1", name, IDX])
    sh(["docker", "rm", "-f", name])


def start(name: str) -> None:
    sh(["docker", "rm", "-f", name], check=False)
    sh(["docker", "run", "--detach", "--name", name, "--label", f"{LABEL}=1",
        "-v", f"{CA}:/opt/ogd-ca.crt:ro", "-v", f"{TARBALL}:/opt/opengram.tgz:ro",
        IDX, "sleep", "infinity"])


def state(name: str) -> dict:
    out = dexec(name, "dpkg-query -W -f='${db:Status-Status} ${Installed-Size}\\n' | "
                      "awk '$1==\"installed\"{n++; k+=$2} END{print n, k}'; "
                      "du -sxb / 2>/dev/null | cut -f1")
    first, du = out.split("\n")[:2]
    n, kib = first.split()
    return {"packages": int(n), "dpkg_kib": int(kib), "du_bytes": int(du)}


def apt_args(spec: dict) -> str:
    return ("apt-get install -y -q " + ("" if spec["recommends"] else "--no-install-recommends ")
            + " ".join(spec["packages"]))


def install(name: str, spec: dict) -> dict:
    """Download, then install (timed apart: the download is network, the rest CPU and disk)."""
    env = "export DEBIAN_FRONTEND=noninteractive; "
    t0 = time.monotonic()
    dexec(name, env + apt_args(spec).replace("install", "install --download-only", 1))
    t1 = time.monotonic()
    dexec(name, env + apt_args(spec))
    t2 = time.monotonic()
    dexec(name, "apt-get clean")
    return {"download_s": round(t1 - t0, 1), "install_s": round(t2 - t1, 1), "apt_s": round(t2 - t0, 1)}


def cmd_apt(args: argparse.Namespace) -> None:
    ensure_index_image()
    for rnd in range(1, args.rounds + 1):
        for key in args.sets:
            name = f"ogd-lean-{key}"
            start(name)
            try:
                before = state(name)
                times = install(name, SETS[key])
                after = state(name)
            finally:
                sh(["docker", "rm", "-f", name], check=False)
            row = {"set": key, "round": rnd, **times,
                   "new_packages": after["packages"] - before["packages"],
                   "new_dpkg_mib": round((after["dpkg_kib"] - before["dpkg_kib"]) / 1024, 1),
                   "new_du_mib": round((after["du_bytes"] - before["du_bytes"]) / 2**20, 1),
                   "total_packages": after["packages"]}
            emit(row, args.out)


def cmd_build(args: argparse.Namespace) -> None:
    """The role's npm install (roles/opengram/tasks/package.yml) on a fresh host of SET."""
    ensure_index_image()
    key = args.set
    name = f"ogd-lean-build-{key}"
    start(name)
    try:
        t0 = time.monotonic()
        install(name, SETS[key])
        t_apt = time.monotonic() - t0
        npm = "npm"
        if "npm" not in SETS[key]["packages"]:
            # The npm CLI from the registry, as an unpacked global package.
            dexec(name, "set -eu; cd /tmp; curl -fsS --cacert /opt/ogd-ca.crt -o npm.tgz "
                        f"https://registry.npmjs.org/npm/-/npm-{NPM_CLI_VERSION}.tgz; "
                        "mkdir -p /usr/local/lib/node_modules/npm; "
                        "tar -xzf npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1; "
                        "ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; "
                        "ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx")
            npm = "/usr/local/bin/npm"
        versions = dexec(name, f"node --version; {npm} --version").split()
        env = ("export npm_config_allow_scripts=better-sqlite3,sharp npm_config_cafile=/opt/ogd-ca.crt "
               "NODE_EXTRA_CA_CERTS=/opt/ogd-ca.crt; ")
        if args.nodedir:
            # The registry's node-gyp fetches the headers from nodejs.org unless
            # told where they are (Debian's node-gyp is patched to use these).
            env += f"export npm_config_nodedir={args.nodedir}; "

        t1 = time.monotonic()
        out = dexec(name, env + f"{npm} install --global --prefix /opt/og --no-fund --no-audit "
                                "--no-update-notifier --foreground-scripts /opt/opengram.tgz 2>&1",
                    check=False, timeout=3600)
        t_npm = time.monotonic() - t1
        pkg = "/opt/og/lib/node_modules/@opengramsh/opengram"
        probe = dexec(name, f"cd {pkg} && node -e \"const D=require('better-sqlite3'); const d=new D(':memory:'); "
                            "console.log('sqlite', d.prepare('select sqlite_version() v').get().v)\" 2>&1; "
                            f"ls {pkg}/node_modules/better-sqlite3/build/Release/*.node 2>&1; true",
                    check=False)
        from_source = "gyp info ok" in out
        row = {"set": key, "nodedir": args.nodedir, "node": versions[0], "npm": versions[1], "apt_s": round(t_apt, 1),
               "npm_install_s": round(t_npm, 1), "built_from_source": from_source,
               "probe": probe.strip().splitlines()}
        emit(row, args.out)
        if args.log:
            Path(args.log).write_text(out)
    finally:
        if not args.keep:
            sh(["docker", "rm", "-f", name], check=False)


def cmd_clean(_: argparse.Namespace) -> None:
    ids = sh(["docker", "ps", "-aq", "--filter", f"label={LABEL}=1"]).stdout.split()
    if ids:
        sh(["docker", "rm", "-f", *ids])
    sh(["docker", "image", "rm", IDX], check=False)


def emit(row: dict, out: str | None) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as fh:
            fh.write(line + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apt")
    a.add_argument("--rounds", type=int, default=2)
    a.add_argument("--sets", nargs="+", default=["a", "b", "c"], choices=sorted(SETS))
    a.add_argument("--out")
    b = sub.add_parser("build")
    b.add_argument("set", choices=sorted(SETS))
    b.add_argument("--out")
    b.add_argument("--log", help="write npm's output here")
    b.add_argument("--nodedir", help="npm_config_nodedir (libnode-dev: /usr/include/nodejs)")
    b.add_argument("--keep", action="store_true", help="leave the container (ogd-lean-build-SET)")
    sub.add_parser("clean")
    args = ap.parse_args()
    {"apt": cmd_apt, "build": cmd_build, "clean": cmd_clean}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
