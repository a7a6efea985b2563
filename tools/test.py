#!/usr/bin/env python3
"""The test command of opengram-deploy (README: `python3 tools/test.py`).

Prepares the machine (Docker engine, base image, venv, collections: see
tools/hostprep.py), then runs these stages (in this order with --jobs 1; two
at a time, see below) and stops at nothing until the end:
  lint      ansible-lint (production profile, offline), yamllint, actionlint,
            shellcheck of the operator programs (tools/shellcheck.py),
            `ansible-builder create` of execution-environment.yml (tools/ee.py)
            and `ansible-test sanity` of the built and installed collection
            (tools/collection.py)
  pytest    unit tests, the stand-in's own tests (tests/) and bench/tests
  molecule  `molecule test -s NAME` for every scenario under molecule/, except
            the stand-in twins of `real` (caddy, nginx) when the real release
            is here: `real` runs their checks on it (STANDIN_TWINS)
  bench     `bench/run.py --smoke`: the benchmark harness end to end (no timing
            threshold anywhere; the full benchmark is `python3 bench/run.py`)
Prints one line per step with its time as it ends; at the end of the log, per
scenario, the time of each molecule phase (create, prepare, converge,
idempotence, verify, destroy) and, for a failing one, which checks or tasks
failed with their first assertion line; the last line is 'N passed, N failed'.

Scenarios run two at a time (--jobs, or OGD_TEST_JOBS): each has its own
containers and network, and much of a scenario's time is waiting (boot,
ACME, the native build of the real release on one host); the longest
(`real`) starts first, and the linters and pytest run beside it, in the
other place of the pool, before the next scenario. With more than one job
each step's output is printed whole when it ends, so the log stays readable.

  python3 tools/test.py                  # everything
  python3 tools/test.py --only molecule --scenario caddy
  python3 tools/test.py --jobs 1         # one scenario at a time, streamed
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.ogd.common import HostPrepError  # noqa: E402
from tools.ogd.env import ensure_all  # noqa: E402
from tools.ogd.images import ensure_scenario_images  # noqa: E402

STAGES = ("lint", "pytest", "molecule", "bench")


def scenarios() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def real_package() -> Path:
    """The packed real Opengram release the `real` scenario deploys: $OGD_REAL_PACKAGE,
    else this workplace's ../shared/opengram/ (absent on other machines)."""
    return Path(os.environ.get("OGD_REAL_PACKAGE")
                or ROOT.parent / "shared" / "opengram" / "opengramsh-opengram-0.2.1.tgz")


def note(scenario: str) -> str | None:
    """What a scenario does differently on this machine, in one line; None when nothing."""
    if scenario == "real" and not real_package().is_file():
        return (f"the real Opengram release {real_package()} is absent: `real` deploys the stand-in on its "
                "Debian 12 hosts (set OGD_REAL_PACKAGE to a packed @opengramsh/opengram tarball)")
    return None


# Stand-in scenarios whose every check the `real` scenario runs on the real
# release behind the same proxy (real-caddy, real-nginx). A run that includes
# `real` leaves them out unless they are named with --scenario; a machine
# without the packed release (the public forge) runs them too (there `real`
# deploys the stand-in on Debian 12, they on Debian 13).
STANDIN_TWINS = {"caddy": "real-caddy", "nginx": "real-nginx"}


def left_out(scenario: str, candidates: list[str], named: bool) -> str | None:
    """Why a runnable scenario is left out of this run, in one line; None when it runs."""
    if (not named and scenario in STANDIN_TWINS and "real" in candidates
            and real_package().is_file()):
        return (f"covered by the real scenario: its host {STANDIN_TWINS[scenario]} runs these checks on "
                f"the real release (run it alone with --scenario {scenario})")
    return None


def run(name: str, cmd: list[str], env: dict[str, str], log: MoleculeLog | None = None) -> bool:
    """Run ``cmd``; with ``log``, stream its output through it (timestamps per line)."""
    print(f"==> {name}: {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    if log is None:
        code = subprocess.call(cmd, cwd=ROOT, env=env)
    else:
        with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              bufsize=1) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()  # a CI log shows each line as it comes
                log.feed(line, time.monotonic())
            code = proc.wait()
        log.close(time.monotonic())
    print(f"<== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f} s",
          flush=True)
    return code == 0


# --- reading molecule's output -------------------------------------------------------

_PHASE_RE = re.compile(r"\[(?P<scenario>[\w.-]+) > (?P<phase>[\w-]+)\] Executing\s*$")
# pytest's short summary ("FAILED path::test - AssertionError: assert ...").
_PYTEST_FAIL_RE = re.compile(r"^(?:FAILED|ERROR) \S+")
_ANSIBLE_FATAL_RE = re.compile(r"^(?:fatal|failed): \[[^\]]+\]")
MAX_FAILURE_LINES = 20


class MoleculeLog:
    """Follows the output of ``molecule test``: when each phase starts and ends,
    and what failed (pytest's short summary lines, ansible's fatal task lines,
    the tasks idempotence found changed)."""

    def __init__(self, started: float | None = None) -> None:
        self.phases: list[tuple[str, float, float | None]] = []  # name, start, end
        self.failures: list[str] = []
        self._task = ""
        self._idempotence = False
        self._want_msg = False
        self._started = started

    def feed(self, line: str, now: float) -> None:
        text = line.rstrip("\n")
        body = text.strip()
        m = _PHASE_RE.search(text)
        if m:
            self._end_phase(now)
            self.phases.append((m.group("phase"), now, None))
            self._idempotence = False
            return
        if body.startswith("TASK ["):
            self._task = body[6:body.find("]")] if "]" in body else body[6:]
        elif _PYTEST_FAIL_RE.match(body):
            self._add(body)
        elif _ANSIBLE_FATAL_RE.match(body):
            phase = self.phases[-1][0] if self.phases else "?"
            detail = body if len(body) < 300 else body[:300] + " ..."
            self._add(f"{phase}: task '{self._task}': {detail}")
            # the yaml result format puts the message on a later line
            self._want_msg = body.endswith("=>")
        elif self._want_msg and body.startswith(("msg:", "stderr:", "assertion:")):
            self.failures[-1] += " " + (body if len(body) < 300 else body[:300] + " ...")
            self._want_msg = False
        elif self._want_msg and not body:
            self._want_msg = False
        elif "Idempotence test failed because of the following tasks" in body:
            self._idempotence = True
        elif self._idempotence and body.startswith("*"):
            self._add(f"idempotence: changed on the second run: {body.lstrip('* ')}")

    def _add(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    def _end_phase(self, now: float) -> None:
        if self.phases and self.phases[-1][2] is None:
            name, start, _ = self.phases[-1]
            self.phases[-1] = (name, start, now)

    def close(self, now: float) -> None:
        self._end_phase(now)

    def phase_times(self) -> list[tuple[str, float]]:
        """(phase, seconds) in order; a repeated phase (destroy) appears twice."""
        return [(name, (end if end is not None else start) - start) for name, start, end in self.phases]

    def summary(self, name: str, ok: bool) -> list[str]:
        times = ", ".join(f"{phase} {secs:.0f}" for phase, secs in self.phase_times())
        lines = [f"{name}: {'ok' if ok else 'FAILED'}; phases (s): {times or 'none seen'}"]
        if not ok:
            shown = self.failures[:MAX_FAILURE_LINES]
            lines += [f"    {msg}" for msg in shown] or ["    (no failed check found in the output; see above)"]
            if len(self.failures) > len(shown):
                lines.append(f"    ... and {len(self.failures) - len(shown)} more")
        return lines


# Scenarios known to take longest start first, so the pool ends together.
LONGEST_FIRST = ("real", "fleet", "nginx", "caddy", "upgrade")
_PRINT = threading.Lock()


def scenario_order(names: list[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def run_quiet(name: str, cmd: list[str], env: dict[str, str], log: MoleculeLog) -> bool:
    """Run ``cmd`` with its output captured (timestamps per line fed to ``log``);
    print it whole, framed by the usual ==> / <== lines, when it ends."""
    started = time.monotonic()
    with _PRINT:
        print(f"==> {name}: started ({' '.join(cmd)}); its output follows when it ends", flush=True)
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", bufsize=1) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                log.feed(line, time.monotonic())
            code = proc.wait()
        log.close(time.monotonic())
        out.seek(0)
        with _PRINT:
            print(f"==> {name}: output", flush=True)
            for line in out:
                sys.stdout.write(line)
            print(f"<== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    return code == 0


def run_scenarios(names: list[str], env: dict[str, str], jobs: int,
                  extra: list[tuple[str, list[str]]] = (),
                  beside: list[tuple[str, list[str]]] = ()) -> list[tuple[str, bool, list[str]]]:
    """`molecule test` for each scenario, `jobs` at a time, then the `extra`
    (name, command) jobs in the same pool; the `beside` jobs are queued right
    after the first (longest) scenario, so they run beside it instead of before
    everything. (name, ok, summary lines) in queue order."""
    def one(job: tuple[str, list[str]]) -> tuple[str, bool, list[str]]:
        name, cmd = job
        log = MoleculeLog()
        ok = run(name, cmd, env, log) if jobs == 1 else run_quiet(name, cmd, env, log)
        return name, ok, (log.summary(name, ok) if name.startswith("molecule ") else [])

    queue = [(f"molecule {scenario}", ["molecule", "test", "-s", scenario]) for scenario in scenario_order(names)]
    queue = queue[:1] + list(beside) + queue[1:] + list(extra)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, queue))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=STAGES, action="append", help="run only these stages")
    parser.add_argument("--scenario", action="append", help="molecule scenarios to run (default: all)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("OGD_TEST_JOBS", "2")),
                        help="molecule scenarios run at the same time (default 2, or $OGD_TEST_JOBS)")
    args = parser.parse_args(argv)
    stages = args.only or list(STAGES)

    started = time.monotonic()
    env = dict(os.environ, **ensure_all())
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["PY_COLORS"] = "0"

    results: list[tuple[str, bool]] = []
    summaries: list[str] = []
    checks = []
    if "lint" in stages:
        checks += [("ansible-lint", ["ansible-lint", "--offline", "--profile", "production"]),
                   ("yamllint", ["yamllint", "--strict", "."]),
                   ("actionlint", ["actionlint"]),
                   ("shellcheck", ["python3", "tools/shellcheck.py"]),
                   ("execution-environment", ["python3", "tools/ee.py"]),
                   ("collection sanity", ["python3", "tools/collection.py", "sanity"])]
    if "pytest" in stages:
        checks.append(("pytest", ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "bench/tests"]))
    # The bench smoke has its own containers (ogdbench-*): it takes the first
    # free place in the scenarios' pool instead of waiting for all of them.
    extra = []
    if "bench" in stages and (ROOT / "bench" / "run.py").exists():
        extra.append(("bench smoke", ["python3", "bench/run.py", "--smoke"]))
    runnable = []
    if "molecule" in stages:
        candidates = args.scenario or scenarios()
        for scenario in candidates:
            reason = left_out(scenario, candidates, bool(args.scenario))
            if reason:
                print(f"==> molecule {scenario}: skipped: {reason}", flush=True)
            else:
                if note(scenario):
                    print(f"==> molecule {scenario}: {note(scenario)}", flush=True)
                runnable.append(scenario)
    # Base images beyond ensure_all()'s trixie ones (ogd-base:bookworm...) that
    # the scenarios of this run name in their molecule.yml: built (or found
    # cached) here, once, before any scenario starts.
    if runnable:
        try:
            ensure_scenario_images([ROOT / "molecule" / name for name in runnable])
        except HostPrepError as exc:
            print(f"==> scenario images: FAILED: {exc}", flush=True)
            results.append(("scenario images", False))
    # Two or more at a time: the linters and pytest run beside the longest
    # scenario (CI's time is its lane's), else first, one after the other.
    beside = checks if runnable and args.jobs > 1 else []
    for name, cmd in checks:
        if not beside:
            results.append((name, run(name, cmd, env)))
    for name, ok, summary in run_scenarios(runnable, env, args.jobs, extra, beside):
        results.append((name, ok))
        summaries += summary

    failed = [name for name, ok in results if not ok]
    if summaries:
        print("\nmolecule scenarios:")
        print("\n".join(summaries))
    print(f"\ntotal {time.monotonic() - started:.0f} s; failed: {', '.join(failed) or 'none'}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
