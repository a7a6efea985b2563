"""The Docker engine (started once, detached) and the images it holds."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from tools.ogd.common import (HostPrepError, apt_install, cache_lock, require_root, run_logged,
                              step, tail, which)

DOCKERD_LOG = Path("/var/log/ogd-dockerd.log")
DOCKER_WAIT_SECONDS = 60.0
# Every systemd container takes several inotify instances of the host's root
# user (systemd, journald, path units); at the kernel default of 128 the
# containers created last on a busy machine (25 systemd containers were seen)
# fail to boot, and `docker exec` into them exits 1 ("Failed to create
# temporary directory" from ansible). Raised, never lowered.
INOTIFY_SYSCTL = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_MIN_INSTANCES = 1024


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


def drop_superseded(image: str, old_id: str | None) -> None:
    """After a rebuild of ``image``: drop the image it replaced (``old_id``) if
    nothing names or uses it any more."""
    new_id = image_id(image)
    if old_id and new_id and old_id != new_id:
        remove_if_untagged(old_id)


def remove_if_untagged(iid: str) -> None:
    """Drop image ``iid`` when no tag names it any more (best effort: docker keeps
    an image a container uses)."""
    proc = subprocess.run(["docker", "image", "inspect", "--format",
                           "{{len .RepoTags}}", iid], capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip() == "0":
        subprocess.run(["docker", "image", "rm", iid], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def apt_build_script(packages: list[str] | tuple[str, ...], disable_units: tuple[str, ...] = (),
                     install_recommends: bool = False) -> str:
    """Shell run in a build container: install without starting anything
    (policy-rc.d), then disable what the packages enabled (``disable_units``).
    Without recommended packages by default, as roles/common/tasks/packages.yml
    installs them (common_packages_install_recommends: false), so an image
    holds what the roles would install on a bare host and no more."""
    return (
        "set -eu\n"
        "export DEBIAN_FRONTEND=noninteractive\n"
        "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d\n"
        "chmod 755 /usr/sbin/policy-rc.d\n"
        "apt-get update -q\n"
        "apt-get install -y -q " + ("" if install_recommends else "--no-install-recommends ")
        + f"{' '.join(shlex.quote(p) for p in packages)}\n"
        "rm -f /usr/sbin/policy-rc.d\n"
        + (f"systemctl disable {' '.join(disable_units)}\n" if disable_units else "")
        + "apt-get clean\n")


def build_image(image: str, base: str, script: str, label: str, key: str, cmd: str, log: Path,
                builder: str, run_args: tuple[str, ...] = ()) -> None:
    """``image`` = ``base`` after ``script`` (sh -c in a container ``builder``),
    committed with ``CMD cmd`` and ``LABEL label=key``; the image it replaces is
    dropped when nothing else names it. Output goes to ``log``."""
    if subprocess.run(["docker", "container", "inspect", builder], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL).returncode == 0:
        raise HostPrepError(f"a container {builder} exists already; not touching it")
    old_id = image_id(image)
    try:
        run_logged(["docker", "run", "--name", builder, *run_args, base, "sh", "-c", script], log,
                   f"building {image}", timeout=1800)
        run_logged(["docker", "commit", "--change", f"CMD {cmd}",
                    "--change", f"LABEL {label}={key}", builder, image],
                   log, f"docker commit {image}", timeout=600, append=True)
    finally:
        subprocess.run(["docker", "rm", "-f", builder], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    drop_superseded(image, old_id)
