#!/usr/bin/env python3
"""Make the dependency lock of one Opengram release (reviewed and committed like code).

    python3 tools/lock.py VERSION [--tarball PATH] [--before DATE] [--registry URL]
                                  [--cafile PEM] [--out DIR] [--offline]

Writes DIR/VERSION/package-lock.json (default DIR: roles/opengram/files/locks,
where the role looks: opengram_npm_locks_dir) and DIR/VERSION/origin.json (how
it was made, for the review). The lock is npm's own format (lockfileVersion 3)
of a project that depends on nothing but the package: every dependency at an
exact version with its integrity hash. Hosts install it with `npm ci`: exact
versions, integrity checked, no resolution at install time.

  --tarball PATH  lock the dependencies of a packed release (`npm pack`) instead
                  of the registry's package; the lock then records the tarball's
                  integrity for the package itself (a registry install checks the
                  registry's bytes against it).
  --before DATE   resolve as npm would have on DATE (npm's --before): the tree a
                  contract was proven on, not whatever was published today.
  --registry URL, --cafile PEM   a private registry / the CA of a TLS proxy
                  (default: $NODE_EXTRA_CA_CERTS when set).
  --offline       resolve from npm's cache only (a package without dependencies,
                  such as the stand-in test fixture, needs nothing else).

Registry entries are written without `resolved` URLs: `npm ci` fetches each
name@version from the registry the host is configured with (a mirror works)
and checks it against the lock's integrity. Importable: ``make_lock(...)``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "roles/opengram/files/locks"
DEFAULT_PACKAGE = "@opengramsh/opengram"


def _release_filters():
    path = ROOT / "plugins/filter/opengram_release.py"
    spec = importlib.util.spec_from_file_location("opengram_release", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = _release_filters()


class LockError(RuntimeError):
    pass


def tarball_manifest(tarball: Path) -> dict:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("package/package.json")
        if member is None:
            raise LockError(f"{tarball}: no package/package.json (not an npm pack tarball)")
        return json.loads(member.read().decode("utf-8"))


def make_lock(version: str, package: str = DEFAULT_PACKAGE, tarball: Path | None = None,
              before: str = "", registry: str = "", cafile: str = "", offline: bool = False) -> dict:
    """The normalised lock (parsed JSON) of `package`@`version`."""
    if tarball is not None:
        manifest = tarball_manifest(tarball)
        if manifest.get("name") != package or manifest.get("version") != version:
            raise LockError(f"{tarball} is {manifest.get('name')} {manifest.get('version')}, not {package} {version}")
    with tempfile.TemporaryDirectory(prefix="ogd-lock-") as tmp:
        work = Path(tmp)
        spec = version
        if tarball is not None:
            shutil.copy(tarball, work / tarball.name)
            spec = "file:" + tarball.name
        (work / "package.json").write_text(json.dumps(
            {"name": release.PROJECT_NAME, "private": True, "dependencies": {package: spec}}))
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
               "npm_config_audit": "false"}
        if cafile:
            env["NODE_EXTRA_CA_CERTS"] = cafile
            env["npm_config_cafile"] = cafile
        cmd = ["npm", "install", "--package-lock-only", "--ignore-scripts", "--lockfile-version", "3"]
        if before:
            cmd += ["--before", before]
        if registry:
            cmd += ["--registry", registry]
        if offline:
            cmd += ["--offline"]
        result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise LockError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        lock = json.loads((work / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/" + package]
    if tarball is not None:
        entry["integrity"] = release.opengram_file_integrity(tarball)
    lock["packages"][""]["dependencies"] = {package: version}
    for path, meta in lock["packages"].items():
        if path and str(meta.get("resolved", "")).startswith(("http://", "https://", "file:")):
            del meta["resolved"]
    problems = release.lock_problems(lock, package, version)
    if problems:
        raise LockError("; ".join(problems))
    return lock


def npm_version() -> str:
    result = subprocess.run(["npm", "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def write_lock(lock: dict, version: str, out: Path, command: list[str] | None = None) -> Path:
    """DIR/VERSION/package-lock.json (and origin.json when `command` is given)."""
    target = out / version
    target.mkdir(parents=True, exist_ok=True)
    path = target / "package-lock.json"
    path.write_text(release.canonical_json(lock))
    if command is not None:
        origin = {"command": command, "npm": npm_version(),
                  "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "packages": len(lock["packages"]) - 1}
        (target / "origin.json").write_text(json.dumps(origin, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lock.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("version")
    parser.add_argument("--package", default=DEFAULT_PACKAGE)
    parser.add_argument("--tarball", type=Path)
    parser.add_argument("--before", default="")
    parser.add_argument("--registry", default="")
    parser.add_argument("--cafile", default=os.environ.get("NODE_EXTRA_CA_CERTS", ""))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args(argv)
    try:
        lock = make_lock(args.version, args.package, args.tarball, args.before, args.registry,
                         args.cafile, args.offline)
    except LockError as exc:
        print(f"lock.py: {exc}", file=sys.stderr)
        return 1
    command = ["python3", "tools/lock.py", args.version]
    if args.tarball:
        command += ["--tarball", args.tarball.name]
    if args.before:
        command += ["--before", args.before]
    if args.registry:
        command += ["--registry", args.registry]
    path = write_lock(lock, args.version, args.out, command)
    versions = {k.split("node_modules/")[-1]: v.get("version") for k, v in lock["packages"].items() if k}
    print(f"{path}: {len(versions)} packages", file=sys.stderr)
    for name in ("hono", "better-sqlite3", "sharp"):
        if name in versions:
            print(f"  {name} {versions[name]}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
