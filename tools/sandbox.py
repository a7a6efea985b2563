#!/usr/bin/env python3
"""Deploy Opengram to a local sandbox host (a systemd container on this machine).

  python3 tools/sandbox.py up [--standin | --real | --package PATH]
                                                      create/start it, run site.yml, prove HTTPS
  python3 tools/sandbox.py status                     is it running, URL, health
  python3 tools/sandbox.py down                       remove the container and its network

`up` prepares the machine (tools/hostprep.py: docker engine, base image, venv,
collections), creates the docker network and container `ogd-sandbox` from
`ogd-base:trixie`, waits for systemd inside, runs
`ansible-playbook site.yml -i inventories/sandbox/hosts.yml`, then fetches
Caddy's local root and calls the health endpoint with curl against it.

Package: the role default `opengram_version` of `opengram_npm_package`. When the
npm registry (asked with this machine's npm) does not serve it, the OFFLINE
STAND-IN test fixture (tests/fixtures/opengram-standin) is deployed instead,
and every summary says so. `--standin` / `--real` force the choice;
`--package PATH` deploys a packed release (an `npm pack` tarball of
@opengramsh/opengram, e.g. ../shared/opengram/opengramsh-opengram-0.2.1.tgz) at
the version its package.json names: its dependencies come from the npm
registry and its native modules are built in the container (minutes).

The site is private like any deployment (docs/access.md: "Who can reach your
Opengram"): the sandbox makes its own login, user `admin` with a random
password, kept in $OGD_CACHE/sandbox/access.yml (0600) and handed to
ansible-playbook as an extra-vars FILE (never on a command line); `up` prints
where to read it.

Only the container and network named `ogd-sandbox` are ever touched. Files
(stand-in tarball, Caddy root, logs) live in $OGD_CACHE/sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.ogd import containers, roles  # noqa: E402
from tools.ogd.common import (HostPrepError, cache_dir, cache_lock, read_stamp, run_captured,  # noqa: E402
                              write_stamp)
from tools.ogd.docker import docker_info_ok  # noqa: E402
from tools.ogd.env import ensure_all  # noqa: E402
from tools.ogd.images import BASE_IMAGE  # noqa: E402
from tools.ogd.recap import recap_lines  # noqa: E402

NAME = "ogd-sandbox"  # container, its network, and the inventory host
LABEL = "ogd.sandbox"  # set on what we create; `down` removes nothing without it
IMAGE = BASE_IMAGE
INVENTORY = "inventories/sandbox/hosts.yml"
GROUP_VARS = ROOT / "inventories/sandbox/group_vars/opengram.yml"
ROLE_DEFAULTS = roles.defaults_file("opengram")
STANDIN_BUILD = ROOT / "tests/fixtures/opengram-standin/build.py"
CADDY_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
SYSTEMD_DEADLINE = 90.0


class SandboxError(RuntimeError):
    """Something failed; the message says what and what to do."""


# ---------------------------------------------------------------------------
# pure parts (unit-tested)
# ---------------------------------------------------------------------------


def read_setting(path: Path, key: str) -> str:
    return roles.setting(path, key, SandboxError)


@dataclass(frozen=True)
class Choice:
    standin: bool
    reason: str
    # A packed release to deploy (--package): its path and the version it holds.
    tarball: Path | None = None
    version: str | None = None


def packed_release(path: Path, package: str) -> Choice:
    """Choice for --package PATH: the tarball's package.json must name `package`."""
    import tarfile
    if not path.is_file():
        raise SandboxError(f"--package {path}: no such file")
    try:
        with tarfile.open(path) as tar:
            manifest = json.load(tar.extractfile("package/package.json"))
    except (tarfile.TarError, KeyError, TypeError, ValueError) as exc:
        raise SandboxError(f"--package {path}: not an npm package tarball ({exc})") from exc
    if manifest.get("name") != package:
        raise SandboxError(f"--package {path} holds {manifest.get('name')!r}, not {package}")
    return Choice(False, f"the packed release {path}", path.resolve(), str(manifest["version"]))


def choose_package(package: str, version: str, force: str | None,
                   npm: subprocess.CompletedProcess | None) -> Choice:
    """Real package or stand-in, from `--standin/--real` or `npm view PKG@VER version`."""
    if force == "standin":
        return Choice(True, "forced with --standin")
    if force == "real":
        return Choice(False, "forced with --real")
    assert npm is not None
    out, err = (npm.stdout or "").strip(), (npm.stderr or "")
    if npm.returncode == 0 and version in out.split():
        return Choice(False, f"the npm registry serves {package}@{version}")
    if npm.returncode == 0 and not out:
        return Choice(True, f"the npm registry does not serve {package}@{version} (no such version)")
    if "E404" in err or "404 Not Found" in err:
        return Choice(True, f"the npm registry does not serve {package}@{version} (404)")
    detail = " | ".join(line for line in err.splitlines()[-3:] if line.strip()) or out
    raise SandboxError(
        f"could not tell whether the npm registry serves {package}@{version} "
        f"(`npm view` exit {npm.returncode}: {detail}). "
        "Fix npm's access to the registry, or force the choice with --standin or --real.")


def banner(choice: Choice, package: str, version: str) -> str:
    if choice.tarball is not None:
        return f"Sandbox deploys the REAL {package}@{choice.version} from {choice.reason}."
    if not choice.standin:
        return f"Sandbox deploys the REAL {package}@{version} from the npm registry ({choice.reason})."
    bar = "!" * 78
    return (f"{bar}\n!! SANDBOX RUNS THE OFFLINE STAND-IN (test fixture), NOT OPENGRAM:\n"
            f"!! {choice.reason}.\n"
            f"!! It only mimics {package}@{version}'s deployment-relevant behaviour "
            "(tests/fixtures/opengram-standin).\n"
            f"{bar}")


def network_create_cmd() -> list[str]:
    return ["docker", "network", "create", "--label", f"{LABEL}=1", NAME]


def container_run_cmd(domain: str) -> list[str]:
    return containers.systemd_run_cmd(NAME, IMAGE, NAME, domain, LABEL)


def playbook_cmd(tarball: Path | None, version: str | None = None,
                 access_file: Path | None = None, locks_dir: Path | None = None) -> list[str]:
    cmd = ["ansible-playbook", "site.yml", "-i", INVENTORY]
    if tarball is not None:
        extra = {"opengram_npm_tarball": str(tarball)}
        if version:
            extra["opengram_version"] = version
        if locks_dir is not None:
            # The stand-in's own lock (build.py writes it beside the tarball).
            extra["opengram_npm_locks_dir"] = str(locks_dir)
        cmd += ["-e", json.dumps(extra)]
    if access_file is not None:
        # A file, so the password is never on a command line.
        cmd += ["-e", "@" + str(access_file)]
    return cmd


ACCESS_USER = "admin"


def ensure_access_file(work: Path) -> Path:
    """The sandbox's login for the password gate, made once (0600) and reused."""
    import secrets
    path = work / "access.yml"
    if not path.exists():
        password = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# The sandbox's login (tools/sandbox.py); keep it private.\n"
                     f"opengram_access_users:\n  - name: {ACCESS_USER}\n    password: {password}\n")
    return path


def curl_cmd(domain: str, ip: str, root_crt: Path) -> list[str]:
    return ["curl", "--silent", "--show-error", "--fail", "--max-time", "15",
            "--cacert", str(root_crt), "--resolve", f"{domain}:443:{ip}",
            f"https://{domain}/api/v1/health"]


def health_ok(body: str) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("status") == "ok"


# ---------------------------------------------------------------------------
# docker and the rest
# ---------------------------------------------------------------------------


def say(msg: str = "") -> None:
    print(msg, flush=True)


def run(cmd: list[str], *, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return run_captured(cmd, error=SandboxError, check=check, timeout=timeout, **kw)


def work_dir() -> Path:
    path = cache_dir() / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def inspect(kind: str, fmt: str) -> str | None:
    """`docker <kind> inspect` of NAME with a format; None when it does not exist."""
    proc = run(["docker", kind, "inspect", "--format", fmt, NAME], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ours(kind: str) -> bool | None:
    """None: NAME does not exist; else whether it carries our label."""
    value = inspect(kind, "{{ index .Config.Labels \"%s\" }}" % LABEL if kind == "container"
                    else "{{ index .Labels \"%s\" }}" % LABEL)
    return None if value is None else value == "1"


def refuse_foreign(kind: str) -> None:
    if ours(kind) is False:
        raise SandboxError(f"a docker {kind} named {NAME} exists but was not created by "
                           f"tools/sandbox.py (no label {LABEL}); not touching it")


def ensure_container(domain: str) -> bool:
    """Network and container exist and run; True when the container was created now."""
    refuse_foreign("network")
    refuse_foreign("container")
    if inspect("network", "{{.Name}}") is None:
        run(network_create_cmd())
    state = inspect("container", "{{.State.Status}}")
    if state is None:
        run(container_run_cmd(domain))
        return True
    if state != "running":
        run(["docker", "start", NAME])
    return False


def wait_for_systemd(deadline_s: float = SYSTEMD_DEADLINE) -> str:
    """systemd's state in NAME once it is running or degraded."""
    return containers.wait_for_systemd([NAME], deadline_s, SandboxError)[NAME]


def ask_registry(package: str, version: str) -> subprocess.CompletedProcess:
    try:
        return run(["npm", "view", f"{package}@{version}", "version", "--no-update-notifier"],
                   check=False, timeout=90)
    except SandboxError as exc:
        raise SandboxError(f"{exc}. This machine's npm is needed to ask the registry and "
                           "to build the stand-in (apt-get install npm).") from exc


def build_standin(version: str, out: Path) -> Path:
    proc = run([sys.executable, str(STANDIN_BUILD), "--version", version, "--out", str(out)],
               timeout=300)
    return Path(proc.stdout.strip().splitlines()[-1]).resolve()


def run_playbook(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, str]:
    """Run ansible-playbook in the repo, streaming its output and keeping a copy in log."""
    say(f"$ {shlex.join(cmd)}")
    lines = []
    with open(log, "w") as fh, subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
            lines.append(line)
    return proc.returncode, "".join(lines)


def container_ip() -> str:
    ip = inspect("container", "{{ (index .NetworkSettings.Networks \"%s\").IPAddress }}" % NAME)
    if not ip:
        raise SandboxError(f"{NAME} has no address on network {NAME}")
    return ip


def proof(domain: str, ip: str, work: Path) -> tuple[list[str], str]:
    """Fetch Caddy's local root, curl the health URL against it; (command, body)."""
    root_crt = work / "caddy-local-root.crt"
    run(["docker", "cp", f"{NAME}:{CADDY_ROOT}", str(root_crt)])
    cmd = curl_cmd(domain, ip, root_crt)
    proc = run(cmd, check=False, timeout=30)
    body = proc.stdout.strip()
    if proc.returncode != 0 or not health_ok(body):
        raise SandboxError(f"the curl proof failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip() or body}\n  $ {shlex.join(cmd)}")
    return cmd, body


def state_file(work: Path) -> Path:
    return work / "state.json"


def record(choice: Choice, version: str, work: Path) -> None:
    """Which package the sandbox runs. Switching between the stand-in and the real release is a
    normal run: the role installs the other package as a release of its own (issue 26); from
    the stand-in to the real release it first refuses the stand-in's JSON document at
    data/opengram.db (the real release needs SQLite there) and says how to move it away."""
    kind = "standin" if choice.standin else "real"
    write_stamp(state_file(work), kind, package=kind, version=version)


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def cmd_up(force: str | None, package_path: Path | None = None) -> int:
    started = time.monotonic()
    timings: list[str] = []

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings.append(f"{name} {now - since:.1f} s")
        return now

    domain = read_setting(GROUP_VARS, "opengram_domain")
    package = read_setting(ROLE_DEFAULTS, "opengram_npm_package")
    version = read_setting(ROLE_DEFAULTS, "opengram_version")
    work = work_dir()

    t = time.monotonic()
    if package_path is not None:
        choice = packed_release(package_path, package)
        version = choice.version
    else:
        choice = choose_package(package, version, force,
                                None if force else ask_registry(package, version))
    say(banner(choice, package, version))
    tarball = build_standin(version, work) if choice.standin else choice.tarball
    if choice.standin:
        say(f"stand-in tarball: {tarball}")
    access_file = ensure_access_file(work)
    t = lap("package check", t)

    try:
        # Task timings in the log (ansible.cfg enables no callback of a collection).
        env = {**os.environ, **ensure_all(), "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    except HostPrepError as exc:
        raise SandboxError(f"preparing the machine failed: {exc}") from exc
    t = lap("hostprep", t)

    with cache_lock("sandbox"):
        created = ensure_container(domain)
        systemd = wait_for_systemd()
        say(f"container {NAME}: {'created' if created else 'already there'}, systemd {systemd}")
        record(choice, version, work)
        t = lap("container", t)

        log = work / "playbook.log"
        rc, output = run_playbook(playbook_cmd(tarball, version, access_file,
                                                  work / "locks" if choice.standin else None), env, log)
        t = lap("playbook", t)
        if rc != 0:
            raise SandboxError(f"ansible-playbook failed (exit {rc}); full output: {log}")

        ip = container_ip()
        curl, body = proof(domain, ip, work)
        lap("proof", t)

    say()
    say("=" * 30 + " sandbox is up " + "=" * 33)
    say(banner(choice, package, version))
    say(f"URL:        https://{domain}/")
    say(f"login:      user {ACCESS_USER}, password in {access_file} (the web app; agents use the "
        f"instance secret: docker exec {NAME} cat /etc/opengram/instance-secret)")
    say(f"container:  {NAME} ({'created' if created else 'reused'}), IP {ip} on network {NAME}")
    for line in recap_lines(output):
        say(f"recap:      {line}")
    say(f"timings:    {', '.join(timings)}; total {time.monotonic() - started:.1f} s")
    say("proof (paste it; the name is resolved by --resolve, no DNS or /etc/hosts needed):")
    say(f"  $ {shlex.join(curl)}")
    say(f"  {body}")
    if choice.standin:
        say("REMINDER: that answer comes from the OFFLINE STAND-IN (test fixture), NOT OPENGRAM.")
    return 0


def cmd_status() -> int:
    domain = read_setting(GROUP_VARS, "opengram_domain")
    if not docker_info_ok():
        say(f"{NAME}: not running (no docker engine answers)")
        return 3
    state = inspect("container", "{{.State.Status}}")
    if state != "running":
        say(f"{NAME}: {'absent' if state is None else state}; start it with "
            "`python3 tools/sandbox.py up`")
        return 3
    ip = container_ip()
    recorded = read_stamp(state_file(work_dir())) or {}
    say(f"{NAME}: running, IP {ip}")
    say(f"URL: https://{domain}/")
    if recorded.get("package") == "standin":
        say(f"package: OFFLINE STAND-IN (test fixture), NOT OPENGRAM (as {recorded.get('version')})")
    elif recorded.get("package") == "real":
        say(f"package: the real Opengram {recorded.get('version')}")
    try:
        curl, body = proof(domain, ip, work_dir())
    except SandboxError as exc:
        say(f"health: NOT OK: {exc}")
        return 1
    say(f"health: {body}\n  $ {shlex.join(curl)}")
    return 0


def cmd_down() -> int:
    if not docker_info_ok():
        say("no docker engine answers: nothing to remove")
        return 0
    with cache_lock("sandbox"):
        removed = []
        for kind, rm in (("container", ["docker", "rm", "--force", "--volumes", NAME]),
                         ("network", ["docker", "network", "rm", NAME])):
            refuse_foreign(kind)
            if ours(kind):
                run(rm)
                removed.append(f"{kind} {NAME}")
        state_file(work_dir()).unlink(missing_ok=True)
    say(f"removed: {', '.join(removed)}" if removed else f"nothing to remove ({NAME} absent)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="create or update the sandbox and prove it over HTTPS")
    which = p_up.add_mutually_exclusive_group()
    which.add_argument("--standin", dest="force", action="store_const", const="standin",
                       help="deploy the offline stand-in (test fixture) without asking npm")
    which.add_argument("--real", dest="force", action="store_const", const="real",
                       help="deploy the real package from the registry without asking first")
    which.add_argument("--package", type=Path, metavar="PATH",
                       help="deploy this packed release (npm pack tarball of the package)")
    sub.add_parser("status", help="is it running, its URL and health")
    sub.add_parser("down", help=f"remove the {NAME} container and network")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return cmd_up(args.force, args.package)
        if args.command == "status":
            return cmd_status()
        return cmd_down()
    except SandboxError as exc:
        print(f"sandbox {args.command}: ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"sandbox {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
