#!/usr/bin/env python3
"""Idempotent preparation of a machine for the tests and the sandbox.

Steps (each is a subcommand and a function):

  docker       ensure a Docker engine answers ``docker info`` (installs docker.io
               and starts ``dockerd`` detached when needed; never a second one)
  images       ensure the systemd base image ``ogd-base:trixie`` (debootstrap +
               ``docker import``), rebuilt when its recipe changes, and
               ``ogd-pkgs:trixie`` = it + the packages the roles install
               (rebuilt when that list or the base image changes)
  venv         ensure ``$OGD_CACHE/venv-<key>`` with requirements-dev.txt installed
  collections  extract the collections pinned in requirements.yml from the
               ``ansible`` wheel on PyPI (Galaxy is not reachable)
  browser      ensure Debian's ``chromium`` and ``chromium-driver`` (the headless
               browser of molecule/shared/tests/test_browser.py); prints the
               driver's path. Not part of ``all``: only the browser test needs it.
  all          all of the above, then print a shell-sourceable env block
  env          print the env block only (no checks, no installs)

Progress lines go to stderr, one per step, with the time taken; what a caller
may want to capture (a path, the env block) goes to stdout, so
``eval "$(python3 tools/hostprep.py all)"`` works.

Everything is cached under ``$OGD_CACHE`` (default ``~/.cache/opengram-deploy``);
nothing is written into the repository. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS_DEV = REPO_ROOT / "requirements-dev.txt"
REQUIREMENTS_YML = REPO_ROOT / "requirements.yml"

# --- base image recipe -------------------------------------------------------
# Bump BASE_IMAGE_REVISION whenever the way the image is built changes in a way
# the recipe dict below does not capture; any change to the recipe rebuilds.
BASE_IMAGE_REVISION = 1
BASE_IMAGE = "ogd-base:trixie"
BASE_IMAGE_LABEL = "ogd.recipe"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DEBIAN_SUITE = "trixie"
DEBOOTSTRAP_VARIANT = "minbase"
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "python3",
    "ca-certificates",
    "iproute2",
    "curl",
    "openssl",
    "procps",
)
IMAGE_CMD = '["/lib/systemd/systemd"]'

# --- packages image ---------------------------------------------------------------
# The base image plus every Debian package the roles and the shared Molecule
# prepare install, so a fresh container skips the minutes of apt. The list is
# read from the apt tasks of these files (one source of truth: the roles), and
# from the role variables those tasks name; see package_list().
PKGS_IMAGE = "ogd-pkgs:trixie"
PKGS_IMAGE_LABEL = "ogd.pkgs"
PKGS_IMAGE_REVISION = 1
PKGS_TASK_GLOBS = ("roles/*/tasks/*.yml", "molecule/shared/prepare.yml")
PKGS_VARS_GLOBS = ("roles/*/defaults/main.yml", "roles/*/vars/*.yml")
# Not named by any apt task: python3-apt is what the apt module installs for
# itself on its first run; python3-certbot-nginx is the nginx plugin the
# upstream guide's nginx setup uses (bench) and users add to our certbot.
PKGS_EXTRA = ("python3-apt", "python3-certbot-nginx")
# Units the packages enable and start at install time: disabled in the image so
# a container boots like a fresh host that merely has the packages (the roles
# enable and start what they use). pebble ships no unit (prepare.yml adds one).
PKGS_DISABLED_UNITS = ("caddy.service", "nginx.service", "ssh.service")

# --- Python venv ---------------------------------------------------------------
VENV_REVISION = 1

# --- collections -----------------------------------------------------------------
# The ``ansible`` community package whose wheel carries the collections.
ANSIBLE_BUNDLE_VERSION = "12.3.0"
COLLECTIONS_REVISION = 1

STAMP_NAME = ".ogd-stamp.json"
DOCKERD_LOG = Path("/var/log/ogd-dockerd.log")
DOCKER_WAIT_SECONDS = 60.0
# Every systemd container takes several inotify instances of the host's root
# user (systemd, journald, path units); at the kernel default of 128 the
# containers created last on a busy machine (25 systemd containers were seen)
# fail to boot, and `docker exec` into them exits 1 ("Failed to create
# temporary directory" from ansible). Raised, never lowered.
INOTIFY_SYSCTL = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_MIN_INSTANCES = 1024
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class HostPrepError(RuntimeError):
    """A step failed; the message says what and what to look at."""


# ---------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$OGD_CACHE`` or ``~/.cache/opengram-deploy`` (not created)."""
    value = os.environ.get("OGD_CACHE")
    if value:
        return Path(value).expanduser().resolve()
    return Path("~/.cache/opengram-deploy").expanduser()


def sha256_hex(*parts: bytes | str) -> str:
    """sha256 over length-prefixed parts, so ("ab","c") != ("a","bc")."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(str(len(data)).encode() + b":")
        h.update(data)
    return h.hexdigest()


def canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def read_stamp(path: Path) -> dict | None:
    """The stamp's content, or None when missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stamp_matches(path: Path, key: str) -> bool:
    stamp = read_stamp(path)
    return stamp is not None and stamp.get("key") == key


def write_stamp(path: Path, key: str, **extra: object) -> None:
    """Write atomically (temp file + rename): a stamp is either whole or absent."""
    data = {"key": key, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def which(name: str) -> str | None:
    """shutil.which, also looking in the sbin dirs (not on every PATH)."""
    path = os.environ.get("PATH", os.defpath)
    extra = [d for d in SBIN_DIRS if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([path, *extra]))


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[Callable[[str], None]]:
    """Time a step and print one line: ``name: what it did (1.2 s)``.

    The body calls the yielded ``done(message)``; on error nothing is printed
    here (the caller reports the error)."""
    started = time.monotonic()
    result: list[str] = []
    yield result.append
    elapsed = time.monotonic() - started
    _say(f"{name}: {result[-1] if result else 'done'} ({elapsed:.1f} s)")


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialize one step between concurrent hostprep runs on this machine."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"{name}: waiting for another hostprep run ({locks / name}.lock)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def log_path(name: str) -> Path:
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.log"


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(cmd: list[str], log: Path, what: str, *, env: dict | None = None,
               timeout: float | None = None, append: bool = False) -> None:
    """Run ``cmd`` with its output in ``log``; raise with the log's tail on failure."""
    with open(log, "a" if append else "w") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, timeout=timeout)
        except FileNotFoundError as exc:
            raise HostPrepError(f"{what}: {cmd[0]} not found ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise HostPrepError(f"{what}: timed out after {timeout:.0f} s; log: {log}") from exc
    if proc.returncode != 0:
        raise HostPrepError(
            f"{what} failed (exit {proc.returncode}); log: {log}\n{tail(log)}")


def run_captured(cmd: list[str], *, error: type[Exception] = HostPrepError, check: bool = True,
                 timeout: float = 120, input: str | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` with its output captured. A missing program, a timeout or
    (with ``check``) a non-zero exit raise ``error`` naming the command and the
    tail of what it printed. Shared by tools/sandbox.py and bench/run.py."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, **kw)
    except FileNotFoundError as exc:
        raise error(f"{cmd[0]} not found: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"`{shlex.join(cmd)}` timed out after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        raise error(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}):\n"
                    f"{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HostPrepError(f"{what} needs root (run hostprep as root)")


_apt_updated = False


def apt_install(packages: list[str]) -> None:
    """``apt-get update`` (once per process) and ``apt-get install -y``."""
    global _apt_updated
    require_root(f"installing {' '.join(packages)}")
    if not which("apt-get"):
        raise HostPrepError(f"cannot install {' '.join(packages)}: no apt-get on this machine")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = log_path("apt")
    if not _apt_updated:
        run_logged(["apt-get", "update"], log, "apt-get update", env=env, timeout=600)
        _apt_updated = True
    run_logged(["apt-get", "install", "-y", *packages], log,
               f"apt-get install {' '.join(packages)}", env=env, timeout=1200, append=True)


# ---------------------------------------------------------------------------------
# docker
# ---------------------------------------------------------------------------------


def docker_info_ok(timeout: float = 20.0) -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def running_dockerd_pids() -> list[int]:
    """PIDs of dockerd processes visible in /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "dockerd":
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def inotify_limit_to_set(current: int, minimum: int = INOTIFY_MIN_INSTANCES) -> int | None:
    """The value to write to max_user_instances, or None when it is high enough."""
    return minimum if current < minimum else None


def ensure_inotify_instances() -> str:
    """Raise fs.inotify.max_user_instances to INOTIFY_MIN_INSTANCES (best effort)."""
    try:
        current = int(INOTIFY_SYSCTL.read_text().strip())
    except (OSError, ValueError):
        return "inotify limit unknown"
    value = inotify_limit_to_set(current)
    if value is None:
        return f"inotify instances {current}"
    try:
        INOTIFY_SYSCTL.write_text(f"{value}\n")
    except OSError as exc:
        return f"inotify instances {current} (could not raise to {value}: {exc}; containers may fail to boot)"
    return f"inotify instances {current} -> {value}"


def ensure_docker() -> None:
    """Make ``docker info`` succeed, starting at most one detached dockerd."""
    with step("docker") as done, cache_lock("docker"):
        inotify = ensure_inotify_instances()
        if docker_info_ok():
            done(f"engine already running; {inotify}")
            return
        actions = []
        if not which("dockerd") or not shutil.which("docker"):
            apt_install(["docker.io"])
            actions.append("installed docker.io")
            if not which("dockerd") or not shutil.which("docker"):
                raise HostPrepError("docker.io installed but dockerd/docker still not found")
        pids = running_dockerd_pids()
        proc = None
        if pids:
            actions.append(f"waited for the running dockerd (pid {pids[0]})")
        else:
            require_root("starting dockerd")
            # A dockerd that was killed (e.g. at the end of a session) leaves its
            # pid file behind; no dockerd runs now, so it is stale.
            for stale in (Path("/var/run/docker.pid"),):
                if stale.exists():
                    stale.unlink()
                    actions.append(f"removed stale {stale}")
            DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
            with open(DOCKERD_LOG, "a") as log:
                log.write(f"\n--- hostprep starting dockerd at {time.ctime()} ---\n")
                log.flush()
                # new session (setsid): no controlling terminal, so no SIGHUP when
                # the caller's shell goes away; stdin closed, output to the log.
                proc = subprocess.Popen([which("dockerd")], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True)
            actions.append(f"started dockerd (pid {proc.pid}, log {DOCKERD_LOG})")
        deadline = time.monotonic() + DOCKER_WAIT_SECONDS
        while True:
            if docker_info_ok(timeout=5):
                break
            if proc is not None and proc.poll() is not None:
                raise HostPrepError(
                    f"dockerd exited with code {proc.returncode} before answering; "
                    f"log: {DOCKERD_LOG}\n{tail(DOCKERD_LOG)}")
            if proc is None and not any(_pid_alive(p) for p in pids):
                raise HostPrepError(
                    f"the dockerd that was running (pid {pids[0]}) went away without "
                    f"answering `docker info`; run hostprep docker again")
            if time.monotonic() > deadline:
                raise HostPrepError(
                    f"`docker info` still fails {DOCKER_WAIT_SECONDS:.0f} s after "
                    f"{'starting' if proc else 'finding'} dockerd; log: {DOCKERD_LOG}\n"
                    f"{tail(DOCKERD_LOG)}")
            time.sleep(0.5)
        done(", ".join(actions) + f", engine answers; {inotify}")


# ---------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------


def sources_list(suite: str = DEBIAN_SUITE) -> str:
    return (f"deb {DEBIAN_MIRROR} {suite} main\n"
            f"deb {DEBIAN_MIRROR} {suite}-updates main\n"
            f"deb {DEBIAN_SECURITY_MIRROR} {suite}-security main\n")


def base_image_recipe() -> dict:
    """Everything that determines the base image's content."""
    return {
        "revision": BASE_IMAGE_REVISION,
        "suite": DEBIAN_SUITE,
        "variant": DEBOOTSTRAP_VARIANT,
        "mirror": DEBIAN_MIRROR,
        "packages": sorted(BASE_PACKAGES),
        "sources.list": sources_list(),
        "post": ["empty /etc/machine-id", "hostname localhost",
                 "drop downloaded .debs"],
        "cmd": IMAGE_CMD,
    }


def base_image_recipe_hash(recipe: dict | None = None) -> str:
    return hashlib.sha256(canonical_json(recipe or base_image_recipe()).encode()).hexdigest()


def image_label(image: str, label: str) -> str | None:
    """The label's value; "" when the image has no such label; None when no image."""
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format",
         "{{ if .Config.Labels }}{{ index .Config.Labels \"%s\" }}{{ end }}" % label, image],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if proc.returncode != 0:
        if "no such image" in (proc.stderr + proc.stdout).lower():
            return None
        raise HostPrepError(f"docker image inspect {image} failed: {proc.stderr.strip()}")
    value = proc.stdout.strip()
    return "" if value == "<no value>" else value


def image_id(image: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else None


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first)."""
    prefix = str(path.resolve())
    found = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        mnt = fields[1].replace("\\040", " ")
        if mnt == prefix or mnt.startswith(prefix + "/"):
            found.append(mnt)
    return sorted(found, key=len, reverse=True)


def remove_rootfs(path: Path) -> None:
    """Remove a debootstrap target, first unmounting what a failed run left."""
    if not path.exists():
        return
    for mnt in mounts_under(path):
        subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    left = mounts_under(path)
    if left:
        raise HostPrepError(f"cannot remove {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def prepare_rootfs(rootfs: Path) -> None:
    """The post-debootstrap edits named in the recipe's "post"."""
    (rootfs / "etc/apt/sources.list").write_text(sources_list())
    # Empty file: systemd generates a machine id at every boot (no first-boot
    # wizard, which a missing file or "uninitialized" would trigger).
    (rootfs / "etc/machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()
    # debootstrap copies the build host's hostname; docker mounts its own anyway.
    (rootfs / "etc/hostname").write_text("localhost\n")
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def ensure_base_image(force: bool = False) -> str:
    """Ensure ``ogd-base:trixie`` carries the current recipe label; return the image name."""
    with step("images") as done, cache_lock("images"):
        want = base_image_recipe_hash()
        have = image_label(BASE_IMAGE, BASE_IMAGE_LABEL)
        if have == want and not force:
            done(f"{BASE_IMAGE} up to date (recipe {want[:12]})")
            return BASE_IMAGE
        reason = ("missing" if have is None else "forced" if have == want
                  else f"recipe changed ({(have or 'none')[:12]} -> {want[:12]})")
        require_root("building the base image (debootstrap)")
        if not which("debootstrap"):
            apt_install(["debootstrap"])
        old_id = image_id(BASE_IMAGE) if have is not None else None

        work = cache_dir() / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
        log = log_path("debootstrap")
        t0 = time.monotonic()
        try:
            run_logged([which("debootstrap") or "debootstrap",
                        f"--variant={DEBOOTSTRAP_VARIANT}",
                        "--include=" + ",".join(BASE_PACKAGES),
                        DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
                       log, "debootstrap", timeout=1800)
            t_boot = time.monotonic() - t0
            leftover = mounts_under(rootfs)
            if leftover:
                raise HostPrepError(f"debootstrap left mounts behind: {', '.join(leftover)}")
            prepare_rootfs(rootfs)
            _docker_import(rootfs, want)
        finally:
            remove_rootfs(rootfs)
        _drop_superseded(BASE_IMAGE, old_id)
        done(f"built {BASE_IMAGE} ({reason}; debootstrap {t_boot:.0f} s, "
             f"recipe {want[:12]})")
        return BASE_IMAGE


def _docker_import(rootfs: Path, recipe_hash: str) -> None:
    log = log_path("docker-import")
    with open(log, "w") as fh:
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
                               stdout=subprocess.PIPE, stderr=fh, stdin=subprocess.DEVNULL)
        imp = subprocess.run(["docker", "import",
                              "-c", f"CMD {IMAGE_CMD}",
                              "-c", f"LABEL {BASE_IMAGE_LABEL}={recipe_hash}",
                              "-", BASE_IMAGE],
                             stdin=tar.stdout, stdout=fh, stderr=subprocess.STDOUT)
        tar.stdout.close()
        tar_rc = tar.wait()
    if tar_rc != 0 or imp.returncode != 0:
        raise HostPrepError(f"tar | docker import failed (tar {tar_rc}, import "
                            f"{imp.returncode}); log: {log}\n{tail(log)}")


def _drop_superseded(image: str, old_id: str | None) -> None:
    """After a rebuild of ``image``: drop the image it replaced (``old_id``) if
    nothing names or uses it any more."""
    new_id = image_id(image)
    if old_id and new_id and old_id != new_id:
        _remove_if_untagged(old_id)


def _remove_if_untagged(iid: str) -> None:
    """Drop the superseded base image if nothing names or uses it (best effort)."""
    proc = subprocess.run(["docker", "image", "inspect", "--format",
                           "{{len .RepoTags}}", iid], capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip() == "0":
        subprocess.run(["docker", "image", "rm", iid], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------
# packages image (ogd-pkgs:trixie)
# ---------------------------------------------------------------------------------
# A tiny reader for the YAML shapes the roles use for package names (standard
# library only: hostprep runs before the venv exists). tests/unit checks that it
# agrees with PyYAML on the repository's own files.

_KEY_RE = re.compile(r"^(?P<indent> *)(?:- +)?(?P<key>[A-Za-z_][\w.]*):(?:\s+(?P<value>.*))?$")
_JINJA_NAME_RE = re.compile(r"\b[A-Za-z_]\w*\b")
_FLOW_LIST_RE = re.compile(r"\[([^\[\]]*)\]")
_PKG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def _yaml_scalar(raw: str) -> str:
    raw = _strip_comment(raw).strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _flow_items(raw: str) -> list[str]:
    inner = raw.strip()[1:-1]
    return [_yaml_scalar(x) for x in inner.split(",") if x.strip()]


def _block_value(lines: list[str], start: int, indent: int, value: str | None) -> str | list[str] | None:
    """The value of the key on lines[start] (at ``indent``): a scalar, a flow or
    block list of scalars, or a folded/literal block joined with spaces."""
    value = _strip_comment(value or "").strip()
    if value.startswith("["):
        return _flow_items(value)
    if value and value[0] not in ">|":
        return _yaml_scalar(value)
    items: list[str] = []
    text: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        ind = len(line) - len(line.lstrip(" "))
        if value:  # folded or literal block: every deeper line
            if ind <= indent:
                break
            text.append(line.strip())
            continue
        body = line.strip()
        if ind < indent or (ind == indent and not body.startswith("- ")):
            break
        if body.startswith("- ") and ind >= indent:
            items.append(_yaml_scalar(body[2:]))
        elif ind > indent:
            break  # a mapping under the key: not a package list
    if value:
        return " ".join(text)
    return items or None


def yaml_top_level_values(text: str) -> dict[str, str | list[str]]:
    """Top-level keys of a vars/defaults file whose value is a scalar, a list of
    scalars or a folded expression."""
    lines = text.splitlines()
    found: dict[str, str | list[str]] = {}
    for i, line in enumerate(lines):
        m = _KEY_RE.match(line)
        if not m or m.group("indent") or line.startswith("-"):
            continue
        value = _block_value(lines, i, 0, m.group("value"))
        if value is not None:
            found[m.group("key")] = value
    return found


def apt_task_names(text: str) -> list[str | list[str]]:
    """The ``name:`` of every ``ansible.builtin.apt`` task that installs
    (state present or default), and every ``common_packages:`` given to
    roles/common's packages entry point, as written: a string or a list."""
    lines = text.splitlines()
    found: list[str | list[str]] = []
    for i, line in enumerate(lines):
        m = _KEY_RE.match(line)
        if m and m.group("key") == "common_packages":
            # The input of roles/common's packages entry point (vars of an include_role).
            value = _block_value(lines, i, len(m.group("indent")), m.group("value"))
            if value:
                found.append(value)
            continue
        if not m or m.group("key") not in ("ansible.builtin.apt", "apt"):
            continue
        base = len(line) - len(line.lstrip(" -"))
        args: dict[str, str | list[str] | None] = {}
        for j in range(i + 1, len(lines)):
            sub = lines[j]
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            ind = len(sub) - len(sub.lstrip(" "))
            if ind <= base:
                break
            km = _KEY_RE.match(sub)
            if km and len(km.group("indent")) == ind and not sub.lstrip().startswith("-"):
                args[km.group("key")] = _block_value(lines, j, ind, km.group("value"))
        names = args.get("name") or args.get("pkg")
        if names and args.get("state", "present") in ("present", "latest"):
            found.append(names)
    return found


def resolve_packages(names: list[str | list[str]], variables: dict[str, str | list[str]]) -> list[str]:
    """Package names from apt ``name:`` values, following the role variables a
    Jinja expression names (every branch of a conditional: the union) and the
    quoted names in its list literals (``['nftables']``)."""
    out: set[str] = set()
    seen: set[str] = set()

    def expr(text: str) -> None:
        for flow in _FLOW_LIST_RE.findall(text):
            for item in flow.split(","):
                item = item.strip()
                if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
                    add(item[1:-1])
        for ident in _JINJA_NAME_RE.findall(text):
            if ident in variables and ident not in seen:
                seen.add(ident)
                value = variables[ident]
                if isinstance(value, list):
                    for item in value:
                        add(item)
                elif "{{" in value or ident != value:
                    # an expression (folded ">-" blocks carry no braces)
                    if any(n in variables for n in _JINJA_NAME_RE.findall(value)) or "[" in value:
                        expr(value)

    def add(item: str) -> None:
        if "{{" in item:
            expr(item)
        elif _PKG_NAME_RE.match(item):
            out.add(item)

    for entry in names:
        for item in (entry if isinstance(entry, list) else [entry]):
            add(item)
    return sorted(out)


def package_list(root: Path = REPO_ROOT) -> list[str]:
    """Every package the roles' and the shared prepare's apt tasks install, plus
    PKGS_EXTRA, sorted."""
    variables: dict[str, str | list[str]] = {}
    for pattern in PKGS_VARS_GLOBS:
        for path in sorted(root.glob(pattern)):
            variables.update(yaml_top_level_values(path.read_text()))
    names: list[str | list[str]] = []
    for pattern in PKGS_TASK_GLOBS:
        for path in sorted(root.glob(pattern)):
            names.extend(apt_task_names(path.read_text()))
    packages = set(resolve_packages(names, variables)) | set(PKGS_EXTRA)
    if not packages:
        raise HostPrepError(f"no apt packages found under {root} ({', '.join(PKGS_TASK_GLOBS)})")
    return sorted(packages)


def pkgs_image_key(packages: list[str], base_id: str) -> str:
    """The label of the packages image: what it was built on and how (the build
    script names the packages, in order, and the units it disables)."""
    return sha256_hex(f"pkgs-r{PKGS_IMAGE_REVISION}", base_id, pkgs_build_script(sorted(packages)))


def pkgs_build_script(packages: list[str]) -> str:
    """Shell run in a container of the base image: install without starting
    anything (policy-rc.d), then disable what the packages enabled."""
    return (
        "set -eu\n"
        "export DEBIAN_FRONTEND=noninteractive\n"
        "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d\n"
        "chmod 755 /usr/sbin/policy-rc.d\n"
        "apt-get update -q\n"
        f"apt-get install -y -q {' '.join(shlex.quote(p) for p in packages)}\n"
        "rm -f /usr/sbin/policy-rc.d\n"
        f"systemctl disable {' '.join(PKGS_DISABLED_UNITS)}\n"
        "apt-get clean\n")


def ensure_pkgs_image(force: bool = False) -> str:
    """Ensure ``ogd-pkgs:trixie`` = the base image + package_list(), labelled
    with pkgs_image_key(); return the image name. Needs the base image."""
    with step("pkgs-image") as done, cache_lock("pkgs-image"):
        base_id = image_id(BASE_IMAGE)
        if not base_id:
            raise HostPrepError(f"{BASE_IMAGE} is missing: run `hostprep.py images` first")
        packages = package_list()
        want = pkgs_image_key(packages, base_id)
        have = image_label(PKGS_IMAGE, PKGS_IMAGE_LABEL)
        if have == want and not force:
            done(f"{PKGS_IMAGE} up to date ({len(packages)} packages, key {want[:12]})")
            return PKGS_IMAGE
        reason = "missing" if have is None else "forced" if have == want else "packages or base changed"
        builder = f"{os.environ.get('OGD_RUN_PREFIX') or 'ogd'}-pkgs-build-{os.getpid()}"
        log = log_path("pkgs-image")
        old_id = image_id(PKGS_IMAGE) if have is not None else None
        t0 = time.monotonic()
        try:
            run_logged(["docker", "run", "--name", builder, BASE_IMAGE, "sh", "-c",
                        pkgs_build_script(packages)], log, f"building {PKGS_IMAGE}", timeout=1800)
            run_logged(["docker", "commit", "--change", f"CMD {IMAGE_CMD}",
                        "--change", f"LABEL {PKGS_IMAGE_LABEL}={want}", builder, PKGS_IMAGE],
                       log, f"docker commit {PKGS_IMAGE}", timeout=600, append=True)
        finally:
            subprocess.run(["docker", "rm", "-f", builder], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        _drop_superseded(PKGS_IMAGE, old_id)
        done(f"built {PKGS_IMAGE} ({reason}; {len(packages)} packages, "
             f"{time.monotonic() - t0:.0f} s, key {want[:12]})")
        return PKGS_IMAGE


# ---------------------------------------------------------------------------------
# venv
# ---------------------------------------------------------------------------------


def python_tag() -> str:
    return f"{sys.implementation.name}-{platform.python_version()}"


def venv_key(requirements: bytes, python: str | None = None) -> str:
    return sha256_hex(f"venv-r{VENV_REVISION}", python or python_tag(), requirements)


def venv_path(requirements: bytes | None = None) -> Path:
    if requirements is None:
        requirements = _read_bytes(REQUIREMENTS_DEV)
    return cache_dir() / f"venv-{venv_key(requirements)[:16]}"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HostPrepError(f"cannot read {path}: {exc}") from exc


def _venv_usable(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    try:
        return subprocess.run([str(python), "-c", ""], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _create_venv(venv: Path, log: Path) -> None:
    try:
        run_logged([sys.executable, "-m", "venv", str(venv)], log, "python3 -m venv")
    except HostPrepError:
        # Debian's python3 without python3-venv has no ensurepip: install it once.
        no_ensurepip = subprocess.run([sys.executable, "-c", "import ensurepip"],
                                      capture_output=True).returncode != 0
        if not (no_ensurepip and os.geteuid() == 0 and which("apt-get")):
            raise
        shutil.rmtree(venv, ignore_errors=True)
        v = sys.version_info
        apt_install([f"python{v.major}.{v.minor}-venv"])
        run_logged([sys.executable, "-m", "venv", str(venv)], log, "python3 -m venv",
                   append=True)


def ensure_venv() -> Path:
    """Ensure the dev venv exists and is complete; return its path."""
    with step("venv") as done, cache_lock("venv"):
        requirements = _read_bytes(REQUIREMENTS_DEV)
        key = venv_key(requirements)
        venv = venv_path(requirements)
        stamp = venv / STAMP_NAME
        removed = _remove_other_venvs(venv)
        extra = f", removed {removed} old" if removed else ""
        if stamp_matches(stamp, key) and _venv_usable(venv):
            os.utime(stamp)  # in use: other checkouts' cleanups leave it alone
            done(f"{venv} up to date{extra}")
            return venv
        rebuilt = venv.exists()
        shutil.rmtree(venv, ignore_errors=True)
        if venv.exists():
            raise HostPrepError(f"cannot remove the incomplete venv {venv}")
        log = log_path("venv")
        _create_venv(venv, log)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        run_logged([*pip, "install", "-r", str(REQUIREMENTS_DEV)], log,
                   "pip install -r requirements-dev.txt", timeout=1800, append=True)
        write_stamp(stamp, key, python=python_tag(), requirements=str(REQUIREMENTS_DEV))
        done(f"{'rebuilt' if rebuilt else 'created'} {venv}{extra}")
        return venv


# Venvs of other requirement sets stay this long after their last use: another
# checkout on this machine (a branch with other pins) may be running from one.
OTHER_VENV_GRACE_SECONDS = 2 * 24 * 3600


def _remove_other_venvs(keep: Path, now: float | None = None) -> int:
    """Remove the venvs of other requirement sets unused for OTHER_VENV_GRACE_SECONDS
    (judged by their stamp, touched each time ensure_venv finds a venv up to date)."""
    removed = 0
    base = keep.parent
    if not base.is_dir():
        return 0
    now = time.time() if now is None else now
    for other in base.glob("venv-*"):
        if other.is_dir() and other.name != keep.name and re.fullmatch(
                r"venv-[0-9a-f]{16}", other.name):
            marker = other / STAMP_NAME
            used = max((p.stat().st_mtime for p in (other, marker) if p.exists()), default=0)
            if now - used < OTHER_VENV_GRACE_SECONDS:
                continue
            shutil.rmtree(other, ignore_errors=True)
            removed += 1
    return removed


# ---------------------------------------------------------------------------------
# collections
# ---------------------------------------------------------------------------------

_FQCN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")
_ITEM_KEYS = {"name", "version", "type", "source"}


def _scalar(raw: str, where: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value[:1] in "'\"[{&*!|>":
        raise HostPrepError(f"{where}: unsupported YAML value {value!r}")
    return value


def _strip_comment(line: str) -> str:
    # a '#' starts a comment at line start or after whitespace, outside quotes
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def parse_requirements_yml(text: str, source: str = "requirements.yml") -> dict[str, str]:
    """Parse the restricted requirements.yml this project uses.

    Accepted shape (a subset of ansible-galaxy's format, without PyYAML)::

        ---
        collections:
          - name: community.docker
            version: 4.8.5        # exact versions only

    Returns ``{fqcn: version}`` in file order; raises HostPrepError otherwise.
    """
    pins: dict[str, str] = {}
    items: list[dict[str, str]] = []
    in_collections = False
    item_indent = None
    current: dict[str, str] | None = None
    key_indent: int | None = None  # column of the current item's keys
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise HostPrepError(f"{where}: tabs are not allowed for indentation")
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            key, sep, rest = body.partition(":")
            if not sep:
                raise HostPrepError(f"{where}: expected 'collections:'")
            if key.strip() != "collections":
                raise HostPrepError(f"{where}: unsupported top-level key {key.strip()!r} "
                                    "(only 'collections' is supported)")
            if rest.strip() not in ("", "[]"):
                raise HostPrepError(f"{where}: 'collections:' must be followed by a list")
            in_collections = True
            continue
        if not in_collections:
            raise HostPrepError(f"{where}: unexpected indented line")
        if body.startswith("- ") or body == "-":
            if item_indent is None:
                item_indent = indent
            elif indent != item_indent:
                raise HostPrepError(f"{where}: inconsistent list indentation")
            current = {}
            items.append(current)
            key_indent = None
            rest_of_line = body[1:]
            body = rest_of_line.strip()
            if not body:
                continue
            # the rest of a "- key: v" line is item content at its own column
            indent = indent + 1 + len(rest_of_line) - len(rest_of_line.lstrip())
        elif current is None or item_indent is None or indent <= item_indent:
            raise HostPrepError(f"{where}: expected a list item '- name: ...'")
        if key_indent is None:
            key_indent = indent
        elif indent != key_indent:
            raise HostPrepError(f"{where}: indentation differs from the item's other keys")
        key, sep, rest = body.partition(":")
        key = key.strip()
        if not sep or not rest.strip():
            raise HostPrepError(f"{where}: expected 'key: value', got {body!r}")
        if key not in _ITEM_KEYS:
            raise HostPrepError(f"{where}: unsupported key {key!r} "
                                f"(supported: {', '.join(sorted(_ITEM_KEYS))})")
        if key in current:
            raise HostPrepError(f"{where}: duplicate key {key!r}")
        current[key] = _scalar(rest, where)
    for n, item in enumerate(items, 1):
        name = item.get("name")
        if not name:
            raise HostPrepError(f"{source}: collection #{n} has no name")
        if not _FQCN.match(name):
            raise HostPrepError(f"{source}: {name!r} is not a namespace.name")
        version = item.get("version")
        if not version:
            raise HostPrepError(f"{source}: {name} has no version (pin it exactly)")
        if not _EXACT_VERSION.match(version):
            raise HostPrepError(f"{source}: {name} version {version!r} is not an exact "
                                "version (ranges cannot be checked against the wheel)")
        if item.get("type", "galaxy") != "galaxy":
            raise HostPrepError(f"{source}: {name}: only type 'galaxy' is supported")
        if name in pins:
            raise HostPrepError(f"{source}: {name} is listed twice")
        pins[name] = version
    if not pins:
        raise HostPrepError(f"{source}: no collections listed")
    return pins


def collections_path() -> Path:
    """The directory for ``collections_path`` / ``ANSIBLE_COLLECTIONS_PATH``."""
    return cache_dir() / "collections"


def collections_key(requirements_text: bytes, bundle: str = ANSIBLE_BUNDLE_VERSION) -> str:
    return sha256_hex(f"collections-r{COLLECTIONS_REVISION}", f"ansible=={bundle}",
                      requirements_text)


def extract_collections(wheel: Path, pins: dict[str, str], dest: Path) -> dict[str, str]:
    """Extract ``ansible_collections/<ns>/<name>/`` of each pinned collection from
    ``wheel`` into ``dest/ansible_collections/...``; check each MANIFEST.json
    version equals its pin and that every dependency is pinned too.

    Returns {fqcn: version}. ``dest`` should be new/empty."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise HostPrepError(f"cannot open {wheel}: {exc}") from exc
    found: dict[str, str] = {}
    with zf:
        names = zf.namelist()
        for fqcn, pinned in pins.items():
            ns, coll = fqcn.split(".")
            prefix = f"ansible_collections/{ns}/{coll}/"
            members = [n for n in names if n.startswith(prefix)]
            if f"{prefix}MANIFEST.json" not in members:
                raise HostPrepError(f"{fqcn} is not in {wheel.name} "
                                    f"(requirements.yml pins {fqcn} {pinned})")
            for member in members:
                rel = PurePosixPath(member)
                if rel.is_absolute() or ".." in rel.parts:
                    raise HostPrepError(f"unsafe path {member!r} in {wheel.name}")
                target = dest.joinpath(*rel.parts)
                if member.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                mode = (zf.getinfo(member).external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode | 0o600)
    deps: dict[str, dict] = {}
    for fqcn, pinned in pins.items():
        info = read_manifest(dest, fqcn)
        version = info.get("version")
        if version != pinned:
            raise HostPrepError(
                f"requirements.yml pins {fqcn} {pinned}, but {wheel.name} ships "
                f"{version}: change the pin to {version} (or the ansible bundle version)")
        found[fqcn] = version
        deps[fqcn] = info.get("dependencies") or {}
    for fqcn, needed in deps.items():
        missing = sorted(d for d in needed if d not in pins)
        if missing:
            raise HostPrepError(f"{fqcn} depends on {', '.join(missing)}, which "
                                "requirements.yml does not list")
    return found


def read_manifest(root: Path, fqcn: str) -> dict:
    ns, coll = fqcn.split(".")
    path = root / "ansible_collections" / ns / coll / "MANIFEST.json"
    try:
        return json.loads(path.read_text())["collection_info"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HostPrepError(f"bad or missing {path}: {exc}") from exc


def installed_collections_ok(root: Path, pins: dict[str, str]) -> bool:
    try:
        return all(read_manifest(root, f).get("version") == v for f, v in pins.items())
    except HostPrepError:
        return False


def _pip_command() -> list[str]:
    """pip of the running interpreter, or of the dev venv when it has none."""
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    venv = venv_path()
    if _venv_usable(venv):
        return [str(venv / "bin" / "python"), "-m", "pip"]
    return [str(ensure_venv() / "bin" / "python"), "-m", "pip"]


def ansible_wheel(bundle: str = ANSIBLE_BUNDLE_VERSION) -> tuple[Path, bool]:
    """The cached ``ansible-<bundle>`` wheel, downloaded once. (path, downloaded?)"""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"ansible-{bundle}-*.whl"
    for whl in sorted(wheels.glob(pattern)):
        if zipfile.is_zipfile(whl):
            return whl, False
        whl.unlink()
    log = log_path("pip-download")
    run_logged([*_pip_command(), "--disable-pip-version-check", "download", "--no-deps",
                "--only-binary=:all:", f"ansible=={bundle}", "-d", str(wheels)],
               log, f"pip download ansible=={bundle}", timeout=1800)
    for whl in sorted(wheels.glob(pattern)):
        if zipfile.is_zipfile(whl):
            return whl, True
    raise HostPrepError(f"pip download left no {pattern} in {wheels}; log: {log}")


def ensure_collections() -> Path:
    """Ensure the pinned collections are on the collections path; return that path."""
    with step("collections") as done, cache_lock("collections"):
        text = _read_bytes(REQUIREMENTS_YML)
        pins = parse_requirements_yml(text.decode(), str(REQUIREMENTS_YML))
        key = collections_key(text)
        dest = collections_path()
        listing = ", ".join(f"{k} {v}" for k, v in pins.items())
        if stamp_matches(dest / STAMP_NAME, key) and installed_collections_ok(dest, pins):
            done(f"up to date in {dest} ({listing})")
            return dest
        wheel, downloaded = ansible_wheel()
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="collections-", dir=dest.parent))
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700
        try:
            extract_collections(wheel, pins, staging)
            write_stamp(staging / STAMP_NAME, key, ansible=ANSIBLE_BUNDLE_VERSION,
                        collections=pins)
            old = None
            if dest.exists():
                old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
            os.replace(staging, dest)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        how = "downloaded ansible " if downloaded else "cached ansible "
        done(f"extracted from {how}{ANSIBLE_BUNDLE_VERSION} wheel into {dest} ({listing})")
        return dest


# ---------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------


def environment(ensure: bool = False, base_path: str | None = None) -> dict[str, str]:
    """Env vars for subprocesses that run ansible / molecule / pytest from the venv.

    Paths are computed, not checked; pass ``ensure=True`` to run the venv and
    collections steps first (not docker/images). Merge into ``os.environ``:
    ``subprocess.run(cmd, env={**os.environ, **hostprep.environment()})``."""
    if ensure:
        venv = ensure_venv()
        colls = ensure_collections()
    else:
        venv, colls = venv_path(), collections_path()
    ansible_home = cache_dir() / "ansible-home"
    if ensure:
        ansible_home.mkdir(parents=True, exist_ok=True)
    path = base_path if base_path is not None else os.environ.get("PATH", os.defpath)
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}{path}" if path else str(venv / "bin"),
        "VIRTUAL_ENV": str(venv),
        "OGD_VENV": str(venv),
        "ANSIBLE_COLLECTIONS_PATH": str(colls),
        "ANSIBLE_HOME": str(ansible_home),
    }


def env_block(env: dict[str, str] | None = None) -> str:
    """Shell-sourceable exports; PATH keeps the caller's own ``$PATH`` at the end."""
    env = dict(env or environment(base_path=""))
    bin_dir = str(Path(env["OGD_VENV"]) / "bin")
    lines = [f'export PATH={shlex.quote(bin_dir)}:"$PATH"']
    for name in ("OGD_VENV", "VIRTUAL_ENV", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_HOME"):
        lines.append(f"export {name}={shlex.quote(env[name])}")
    return "\n".join(lines) + "\n"


def ensure_all() -> dict[str, str]:
    started = time.monotonic()
    ensure_docker()
    ensure_base_image()
    ensure_pkgs_image()
    env = environment(ensure=True)
    _say(f"all: ready ({time.monotonic() - started:.1f} s)")
    return env


# ---------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# browser (molecule/shared/tests/test_browser.py)
# ---------------------------------------------------------------------------------

BROWSER_PACKAGES = ["chromium", "chromium-driver"]


def ensure_browser() -> str:
    """Debian's chromium and its driver, installed when missing; the driver's path."""
    with step("browser") as note:
        with cache_lock("browser"):
            if not (which("chromium") and which("chromedriver")):
                apt_install(BROWSER_PACKAGES)
                note("installed " + " ".join(BROWSER_PACKAGES))
            else:
                note("already installed")
        driver = which("chromedriver")
        if not driver or not which("chromium"):
            raise HostPrepError("chromium or chromedriver missing after apt-get install")
        return driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hostprep", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Progress goes to stderr; paths and the env block to stdout.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("docker", help="ensure a running Docker engine")
    p_img = sub.add_parser("images", help=f"ensure the {BASE_IMAGE} and {PKGS_IMAGE} images (needs docker)")
    p_img.add_argument("--force", action="store_true", help="rebuild even if up to date")
    sub.add_parser("venv", help="ensure the dev venv; print its path")
    sub.add_parser("collections", help="ensure the pinned collections; print the path")
    sub.add_parser("browser", help="ensure chromium and chromium-driver; print the driver's path")
    sub.add_parser("packages", help=f"print the packages baked into {PKGS_IMAGE}, one a line")
    sub.add_parser("all", help="all steps, then print the env block")
    sub.add_parser("env", help="print the env block without checking anything")
    args = parser.parse_args(argv)
    try:
        if args.command == "docker":
            ensure_docker()
        elif args.command == "images":
            ensure_docker()
            ensure_base_image(force=args.force)
            ensure_pkgs_image(force=args.force)
        elif args.command == "venv":
            print(ensure_venv())
        elif args.command == "collections":
            print(ensure_collections())
        elif args.command == "browser":
            print(ensure_browser())
        elif args.command == "packages":
            print("\n".join(package_list()))
        elif args.command == "all":
            print(env_block(ensure_all()), end="")
        elif args.command == "env":
            print(env_block(), end="")
    except HostPrepError as exc:
        _say(f"hostprep {args.command}: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say(f"hostprep {args.command}: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
