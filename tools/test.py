#!/usr/bin/env python3
"""The test command of opengram-deploy (README: `python3 tools/test.py`).

Prepares the machine (Docker engine, base image, venv, collections: see
tools/hostprep.py), then runs, in order, and stops at nothing until the end:
  lint      ansible-lint (production profile, offline) and yamllint
  pytest    unit tests, the stand-in's own tests (tests/) and bench/tests
  molecule  `molecule test -s NAME` for every scenario under molecule/
  bench     `bench/run.py --smoke`: the benchmark harness end to end (no timing
            threshold anywhere; the full benchmark is `python3 bench/run.py`)
Prints one line per step with its time and a closing 'N passed, N failed'.

  python3 tools/test.py                  # everything
  python3 tools/test.py --only molecule --scenario caddy
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import hostprep  # noqa: E402

STAGES = ("lint", "pytest", "molecule", "bench")


def scenarios() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def real_package() -> Path:
    """The packed real Opengram release the `real` scenario deploys: $OGD_REAL_PACKAGE,
    else this workplace's ../shared/opengram/ (absent on other machines)."""
    return Path(os.environ.get("OGD_REAL_PACKAGE")
                or ROOT.parent / "shared" / "opengram" / "opengramsh-opengram-0.2.1.tgz")


def skip_reason(scenario: str) -> str | None:
    """Why a scenario cannot run on this machine, in one line; None when it can."""
    if scenario == "real" and not real_package().is_file():
        return (f"the real Opengram release {real_package()} is absent "
                "(set OGD_REAL_PACKAGE to a packed @opengramsh/opengram tarball to run it)")
    return None


def run(name: str, cmd: list[str], env: dict[str, str]) -> bool:
    print(f"==> {name}: {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    print(f"<== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f} s",
          flush=True)
    return code == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=STAGES, action="append", help="run only these stages")
    parser.add_argument("--scenario", action="append", help="molecule scenarios to run (default: all)")
    args = parser.parse_args(argv)
    stages = args.only or list(STAGES)

    started = time.monotonic()
    env = dict(os.environ, **hostprep.ensure_all())
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["PY_COLORS"] = "0"

    results: list[tuple[str, bool]] = []
    if "lint" in stages:
        results.append(("ansible-lint", run("ansible-lint", ["ansible-lint", "--offline", "--profile", "production"], env)))
        results.append(("yamllint", run("yamllint", ["yamllint", "--strict", "."], env)))
        results.append(("actionlint", run("actionlint", ["actionlint"], env)))
    if "pytest" in stages:
        code_ok = run("pytest", ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "bench/tests"], env)
        results.append(("pytest", code_ok))
    if "molecule" in stages:
        for scenario in args.scenario or scenarios():
            reason = skip_reason(scenario)
            if reason:
                print(f"==> molecule {scenario}: skipped: {reason}", flush=True)
                continue
            results.append((f"molecule {scenario}",
                            run(f"molecule {scenario}", ["molecule", "test", "-s", scenario], env)))

    if "bench" in stages and (ROOT / "bench" / "run.py").exists():
        results.append(("bench smoke", run("bench smoke", ["python3", "bench/run.py", "--smoke"], env)))

    failed = [name for name, ok in results if not ok]
    print(f"\ntotal {time.monotonic() - started:.0f} s; failed: {', '.join(failed) or 'none'}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
