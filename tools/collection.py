#!/usr/bin/env python3
"""The collection opengram_deploy.opengram as users get it: built, installed
from its tarball into an empty path, and checked by ansible-test there.

  python3 tools/collection.py install DEST   # build, then install into DEST
  python3 tools/collection.py sanity         # build, install, ansible-test sanity
  python3 tools/collection.py check          # galaxy.yml's dependencies agree with requirements.yml

`install` runs `ansible-galaxy collection build` into a temporary directory and
`ansible-galaxy collection install --offline -p DEST` of the tarball, with
only the pinned collections of requirements*.yml on the collections path (not
this checkout): the dependencies of galaxy.yml must be met by those pins, and
what lands in DEST is the tarball's content (its MANIFEST.json is checked).
The molecule scenario fleet converges through DEST (molecule/fleet/prepare.yml).

`sanity` runs `ansible-test sanity --local` in the installed copy (the tarball's
files, tests/sanity/ignore-*.txt with them). ansible-test puts each test's
requirements in a venv of its own, installed from PyPI; to create those venvs
it runs a pip bootstrap script it downloads from ci-files.testing.ansible.com,
which these machines cannot reach. The script it runs instead (written to
ansible-test's cache in a HOME of our own, under the tools' cache) installs
pip with the Python's own ensurepip, then the packages ansible-test asks for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.ogd.common import cache_dir  # noqa: E402
from tools.ogd.galaxy import REQUIREMENTS_YML, parse_requirements_yml  # noqa: E402

GALAXY_YML = ROOT / "galaxy.yml"
# ansible-test's pip bootstrap (ansible_test/_util/target/setup/requirements.py
# runs it as: python SCRIPT [pip options] pip==VERSION --no-setuptools --no-wheel).
PIP_BOOTSTRAP = '''\
"""pip for ansible-test's sanity venvs, without ci-files.testing.ansible.com
(written by opengram-deploy's tools/collection.py)."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
'''


def galaxy() -> dict:
    return yaml.safe_load(GALAXY_YML.read_text())


def fqcn() -> str:
    meta = galaxy()
    return f"{meta['namespace']}.{meta['name']}"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def satisfies(version: str, spec: str) -> bool:
    """Whether version meets a galaxy.yml dependency spec ('*', '>=1.2.0',
    '>=1.2.0,<2.0.0', '1.2.0')."""
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "!=": lambda a, b: a != b,
           ">": lambda a, b: a > b, "<": lambda a, b: a < b, "==": lambda a, b: a == b}
    for part in str(spec).split(","):
        part = part.strip()
        if part in ("", "*"):
            continue
        op = next((o for o in (">=", "<=", "!=", "==", ">", "<") if part.startswith(o)), "==")
        wanted = part[len(op):] if part.startswith(op) else part
        if not ops[op](_version_tuple(version), _version_tuple(wanted.strip())):
            return False
    return True


def dependency_problems(meta: dict, pins: dict[str, str]) -> list[str]:
    """Where galaxy.yml's dependencies and requirements.yml's pins disagree:
    the same collections, each pin meeting its dependency's range."""
    deps = meta.get("dependencies") or {}
    out = [f"galaxy.yml depends on {name} ({spec}), which requirements.yml does not pin: add it there"
           for name, spec in deps.items() if name not in pins]
    out += [f"requirements.yml pins {name}, which galaxy.yml's dependencies do not list: add it there, "
            "or move it to requirements-dev.yml if only the tests need it"
            for name in pins if name not in deps]
    out += [f"requirements.yml pins {name} {pins[name]}, outside galaxy.yml's {deps[name]!r}"
            for name in pins if name in deps and not satisfies(pins[name], deps[name])]
    return out


def ansible_env(collections_path: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if collections_path is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    return env


def build(outdir: Path) -> Path:
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(outdir), str(ROOT)],
                   check=True, stdout=subprocess.DEVNULL, env=ansible_env(None))
    meta = galaxy()
    tarball = outdir / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    if not tarball.is_file():
        raise SystemExit(f"ansible-galaxy collection build made no {tarball.name} in {outdir}")
    return tarball


def install(dest: Path) -> Path:
    """Build, then install the tarball into dest (which must hold no copy of
    the collection). Returns the installed collection's directory."""
    meta = galaxy()
    target = dest / "ansible_collections" / meta["namespace"] / meta["name"]
    if target.exists():
        raise SystemExit(f"{target} exists: install into an empty path")
    # Only the pinned collections besides dest: never this checkout.
    pinned = os.environ.get("OGD_DEV_COLLECTIONS")
    if not pinned:
        raise SystemExit("OGD_DEV_COLLECTIONS is not set: run through tools/test.py, or "
                         "eval \"$(python3 tools/hostprep.py env)\" first")
    with tempfile.TemporaryDirectory(prefix="collection-build-") as tmp:
        tarball = build(Path(tmp))
        subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(dest), str(tarball)],
                       check=True, stdout=subprocess.DEVNULL, env=ansible_env(pinned))
    manifest = json.loads((target / "MANIFEST.json").read_text())["collection_info"]
    if (manifest["namespace"], manifest["name"], manifest["version"]) != (meta["namespace"], meta["name"],
                                                                          meta["version"]):
        raise SystemExit(f"{target}/MANIFEST.json names {manifest['namespace']}.{manifest['name']} "
                         f"{manifest['version']}, not the built {fqcn()} {meta['version']}")
    return target


def sanity() -> int:
    home = cache_dir() / "ansible-test-home"
    script = home / ".ansible" / "test" / "cache"
    script.mkdir(parents=True, exist_ok=True)
    # The one pip version ansible-test 2.19 asks for (get_venv_packages).
    (script / "get_pip_24_2.py").write_text(PIP_BOOTSTRAP)
    with tempfile.TemporaryDirectory(prefix="collection-sanity-") as tmp:
        target = install(Path(tmp))
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        env = dict(ansible_env(None), HOME=str(home))
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)
        return subprocess.run(["ansible-test", "sanity", "--local", "--python", python, "--color", "no"],
                              cwd=target, env=env).returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"] and len(argv) == 2:
        print(install(Path(argv[1]).resolve()))
        return 0
    if argv == ["sanity"]:
        return sanity()
    if argv == ["check"]:
        pins = parse_requirements_yml(REQUIREMENTS_YML.read_text())
        found = dependency_problems(galaxy(), pins)
        for line in found:
            print(line)
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
