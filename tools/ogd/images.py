"""The systemd base image ``ogd-base:trixie`` (debootstrap + ``docker import``)
and ``ogd-pkgs:trixie``, the base image with every package the roles install."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tools.ogd import roles
from tools.ogd.common import (HostPrepError, apt_install, cache_dir, cache_lock, canonical_json, log_path,
                              require_root, run_logged, sha256_hex, step, tail, which)
from tools.ogd.docker import drop_superseded, apt_build_script, build_image, image_id, image_label

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
# from the role variables those tasks name; see roles.package_list().
PKGS_IMAGE = "ogd-pkgs:trixie"
PKGS_IMAGE_LABEL = "ogd.pkgs"
PKGS_IMAGE_REVISION = 1
# Units the packages enable and start at install time: disabled in the image so
# a container boots like a fresh host that merely has the packages (the roles
# enable and start what they use). pebble ships no unit (prepare.yml adds one).
PKGS_DISABLED_UNITS = ("caddy.service", "nginx.service", "ssh.service")


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
        drop_superseded(BASE_IMAGE, old_id)
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


def pkgs_image_key(packages: list[str], base_id: str) -> str:
    """The label of the packages image: what it was built on and how (the build
    script names the packages, in order, and the units it disables)."""
    return sha256_hex(f"pkgs-r{PKGS_IMAGE_REVISION}", base_id, pkgs_build_script(sorted(packages)))


def pkgs_build_script(packages: list[str]) -> str:
    """Shell run in a container of the base image (see docker.apt_build_script)."""
    return apt_build_script(packages, PKGS_DISABLED_UNITS)


def ensure_pkgs_image(force: bool = False) -> str:
    """Ensure ``ogd-pkgs:trixie`` = the base image + package_list(), labelled
    with pkgs_image_key(); return the image name. Needs the base image."""
    with step("pkgs-image") as done, cache_lock("pkgs-image"):
        base_id = image_id(BASE_IMAGE)
        if not base_id:
            raise HostPrepError(f"{BASE_IMAGE} is missing: run `hostprep.py images` first")
        packages = roles.package_list()
        want = pkgs_image_key(packages, base_id)
        have = image_label(PKGS_IMAGE, PKGS_IMAGE_LABEL)
        if have == want and not force:
            done(f"{PKGS_IMAGE} up to date ({len(packages)} packages, key {want[:12]})")
            return PKGS_IMAGE
        reason = "missing" if have is None else "forced" if have == want else "packages or base changed"
        builder = f"{os.environ.get('OGD_RUN_PREFIX') or 'ogd'}-pkgs-build-{os.getpid()}"
        t0 = time.monotonic()
        build_image(PKGS_IMAGE, BASE_IMAGE, pkgs_build_script(packages), PKGS_IMAGE_LABEL, want,
                    IMAGE_CMD, log_path("pkgs-image"), builder)
        done(f"built {PKGS_IMAGE} ({reason}; {len(packages)} packages, "
             f"{time.monotonic() - t0:.0f} s, key {want[:12]})")
        return PKGS_IMAGE
