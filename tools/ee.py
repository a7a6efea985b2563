#!/usr/bin/env python3
"""Check execution-environment.yml (lint stage): ansible-builder accepts it,
and what it installs is what the repository pins elsewhere.

  python3 tools/ee.py

`ansible-builder create` writes the build context (the Containerfile and its
inputs) into a temporary directory; nothing is built and no image is pulled.
Then: the execution environment's ansible-core and every Python package it
lists carry the same exact pins as requirements.txt (what a run needs; the
venv the tests run in installs it too), every package requirements.txt pins
is in it, its collections file is requirements.yml, ansible-runner is pinned
exactly, and the context holds those files as given. Exit status 0 when all
agree; otherwise each disagreement on a line.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EE_FILE = ROOT / "execution-environment.yml"
PIP_PINS = ROOT / "requirements.txt"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)$")


def normal(name: str) -> str:
    """A Python package's name as pip compares it (case and _ versus - ignored)."""
    return name.lower().replace("_", "-")


def pins(text: str) -> dict[str, str]:
    """{lower-case name: version} of the exact pins (name==version) in a pip
    requirements text; comments and other lines are ignored."""
    out = {}
    for line in text.splitlines():
        m = PIN.match(line.split("#", 1)[0].strip())
        if m:
            out[normal(m.group(1))] = m.group(3)
    return out


def problems(ee: dict, run_pins: dict[str, str]) -> list[str]:
    """Where execution-environment.yml (parsed) disagrees with requirements.txt's pins."""
    out = []
    deps = ee.get("dependencies") or {}
    if ee.get("version") != 3:
        out.append(f"version is {ee.get('version')!r}: this file is written for ansible-builder's format 3")
    wanted = {}
    for key in ("ansible_core", "ansible_runner"):
        spec = (deps.get(key) or {}).get("package_pip", "")
        m = PIN.match(spec)
        if not m:
            out.append(f"dependencies.{key}.package_pip is {spec!r}: pin it exactly (name==version)")
        elif key == "ansible_core":
            wanted["ansible-core"] = m.group(3)
    python = deps.get("python") or []
    if not isinstance(python, list):
        out.append("dependencies.python must be a list of name==version pins (one source: requirements.txt)")
        python = []
    for spec in python:
        m = PIN.match(str(spec))
        if not m:
            out.append(f"dependencies.python: {spec!r} is not an exact pin (name==version)")
            continue
        wanted[normal(m.group(1))] = m.group(3)
    for name, version in wanted.items():
        if run_pins.get(name) != version:
            out.append(f"{name}=={version} in execution-environment.yml, but requirements.txt pins "
                       f"{name}=={run_pins.get(name, '(nothing)')}: change both together")
    for name, version in run_pins.items():
        if name not in wanted:
            out.append(f"requirements.txt pins {name}=={version}, which a run needs, but execution-environment.yml "
                       f"does not install it: add it to dependencies.python")
    if deps.get("galaxy") != "requirements.yml":
        out.append(f"dependencies.galaxy is {deps.get('galaxy')!r}: it must be requirements.yml (what a run needs)")
    return out


def main() -> int:
    ee = yaml.safe_load(EE_FILE.read_text())
    found = problems(ee, pins(PIP_PINS.read_text()))
    with tempfile.TemporaryDirectory(prefix="ogd-ee-") as context:
        proc = subprocess.run(["ansible-builder", "create", "--file", str(EE_FILE), "--context", context],
                              cwd=ROOT, capture_output=True, text=True)
        print((proc.stdout + proc.stderr).strip())
        if proc.returncode:
            found.append(f"ansible-builder create failed (exit {proc.returncode})")
        else:
            build = Path(context) / "_build"
            if (build / "requirements.yml").read_text() != (ROOT / "requirements.yml").read_text():
                found.append("the build context's requirements.yml is not the repository's")
            listed = pins((build / "requirements.txt").read_text())
            for spec in ee.get("dependencies", {}).get("python") or []:
                m = PIN.match(str(spec))
                if m and listed.get(normal(m.group(1))) != m.group(3):
                    found.append(f"the build context does not install {spec}")
    for p in found:
        print("execution-environment.yml: " + p, file=sys.stderr)
    if not found:
        print("execution-environment.yml: ansible-builder accepts it; its pins are requirements.txt's "
              "and requirements.yml")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
