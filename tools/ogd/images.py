"""The systemd base images ``ogd-base:<suite>`` (debootstrap + ``docker import``;
``trixie`` always, ``bookworm`` on request: BASE_SUITES) and ``ogd-pkgs:trixie``,
the trixie base image with every package the roles install.

A scenario whose molecule.yml names ``ogd-base:bookworm`` gets it from
ensure_scenario_images() (tools/test.py calls it for the scenarios it runs;
``hostprep.py images --suite bookworm`` builds it by hand)."""

from __future__ import annotations

import hashlib
import os
import re
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
# Suites a base image can be built for, by the same recipe: ogd-base:<suite>.
# trixie is DEBIAN_SUITE (built by ensure_all); the others only on request.
BASE_SUITES = ("trixie", "bookworm")

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
PKGS_DISABLED_UNITS = ("caddy.service", "nginx.service", "ssh.service", "fail2ban.service")


def sources_list(suite: str = DEBIAN_SUITE) -> str:
    return (f"deb {DEBIAN_MIRROR} {suite} main\n"
            f"deb {DEBIAN_MIRROR} {suite}-updates main\n"
            f"deb {DEBIAN_SECURITY_MIRROR} {suite}-security main\n")


def base_image_name(suite: str = DEBIAN_SUITE) -> str:
    """``ogd-base:<suite>``; ValueError for a suite not in BASE_SUITES."""
    if suite not in BASE_SUITES:
        raise ValueError(f"no base image recipe for suite {suite!r} (known: {', '.join(BASE_SUITES)})")
    return BASE_IMAGE if suite == DEBIAN_SUITE else f"ogd-base:{suite}"


def base_image_recipe(suite: str = DEBIAN_SUITE) -> dict:
    """Everything that determines the base image's content. The same dict for
    every suite but the suite's name and sources.list (so trixie's hash, hence
    its cached image, did not change when other suites came)."""
    base_image_name(suite)  # validates the suite
    return {
        "revision": BASE_IMAGE_REVISION,
        "suite": suite,
        "variant": DEBOOTSTRAP_VARIANT,
        "mirror": DEBIAN_MIRROR,
        "packages": sorted(BASE_PACKAGES),
        "sources.list": sources_list(suite),
        "post": ["empty /etc/machine-id", "hostname localhost",
                 "drop downloaded .debs"],
        "cmd": IMAGE_CMD,
    }


def base_image_recipe_hash(recipe: dict | None = None, suite: str = DEBIAN_SUITE) -> str:
    return hashlib.sha256(canonical_json(recipe or base_image_recipe(suite)).encode()).hexdigest()


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


def prepare_rootfs(rootfs: Path, suite: str = DEBIAN_SUITE) -> None:
    """The post-debootstrap edits named in the recipe's "post"."""
    (rootfs / "etc/apt/sources.list").write_text(sources_list(suite))
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


def ensure_base_image(force: bool = False, suite: str = DEBIAN_SUITE) -> str:
    """Ensure ``ogd-base:<suite>`` (default trixie) carries the current recipe
    label of that suite; return the image name."""
    image = base_image_name(suite)
    # trixie keeps the step and lock names it always had
    name = "images" if suite == DEBIAN_SUITE else f"images-{suite}"
    with step(name) as done, cache_lock(name):
        want = base_image_recipe_hash(suite=suite)
        have = image_label(image, BASE_IMAGE_LABEL)
        if have == want and not force:
            done(f"{image} up to date (recipe {want[:12]})")
            return image
        reason = ("missing" if have is None else "forced" if have == want
                  else f"recipe changed ({(have or 'none')[:12]} -> {want[:12]})")
        require_root("building the base image (debootstrap)")
        if not which("debootstrap"):
            apt_install(["debootstrap"])
        old_id = image_id(image) if have is not None else None

        work = cache_dir() / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
        log = log_path("debootstrap" if suite == DEBIAN_SUITE else f"debootstrap-{suite}")
        t0 = time.monotonic()
        try:
            run_logged([which("debootstrap") or "debootstrap",
                        f"--variant={DEBOOTSTRAP_VARIANT}",
                        "--include=" + ",".join(BASE_PACKAGES),
                        suite, str(rootfs), DEBIAN_MIRROR],
                       log, "debootstrap", timeout=1800)
            t_boot = time.monotonic() - t0
            leftover = mounts_under(rootfs)
            if leftover:
                raise HostPrepError(f"debootstrap left mounts behind: {', '.join(leftover)}")
            prepare_rootfs(rootfs, suite)
            _docker_import(rootfs, want, image)
        finally:
            remove_rootfs(rootfs)
        drop_superseded(image, old_id)
        done(f"built {image} ({reason}; debootstrap {t_boot:.0f} s, "
             f"recipe {want[:12]})")
        return image


# An image a molecule.yml names: `image: NAME` or `image: ${VAR:-NAME}`.
_IMAGE_LINE_RE = re.compile(r"^\s*(?:-\s+)?image:\s*[\"']?(?:\$\{\w+:-)?(?P<image>[\w.:/-]+?)\}?[\"']?\s*(?:#.*)?$")


def scenario_base_suites(molecule_yml: Path) -> list[str]:
    """The suites of the ``ogd-base:<suite>`` images other than trixie that a
    scenario's molecule.yml names (directly or as a ``${VAR:-...}`` default)."""
    suites = []
    for line in molecule_yml.read_text().splitlines():
        m = _IMAGE_LINE_RE.match(line)
        if not m or not m.group("image").startswith("ogd-base:"):
            continue
        suite = m.group("image").split(":", 1)[1]
        if suite != DEBIAN_SUITE and suite not in suites:
            suites.append(suite)
    return suites


def ensure_scenario_images(scenario_dirs: list[Path]) -> list[str]:
    """Build (or find cached) the extra base images the scenarios name; the
    trixie images are ensure_all()'s. Returns the images ensured. A suite with
    no recipe raises HostPrepError naming the scenario."""
    ensured = []
    for scenario in scenario_dirs:
        molecule_yml = Path(scenario) / "molecule.yml"
        if not molecule_yml.is_file():
            continue
        for suite in scenario_base_suites(molecule_yml):
            if suite not in BASE_SUITES:
                raise HostPrepError(f"{molecule_yml} names ogd-base:{suite}, which has no recipe "
                                    f"(tools/ogd/images.py BASE_SUITES: {', '.join(BASE_SUITES)})")
            image = base_image_name(suite)
            if image not in ensured:
                ensured.append(ensure_base_image(suite=suite))
    return ensured


def _docker_import(rootfs: Path, recipe_hash: str, image: str = BASE_IMAGE) -> None:
    log = log_path("docker-import")
    with open(log, "w") as fh:
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
                               stdout=subprocess.PIPE, stderr=fh, stdin=subprocess.DEVNULL)
        imp = subprocess.run(["docker", "import",
                              "-c", f"CMD {IMAGE_CMD}",
                              "-c", f"LABEL {BASE_IMAGE_LABEL}={recipe_hash}",
                              "-", image],
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
